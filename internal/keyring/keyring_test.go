package keyring

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeyring(t *testing.T) {
	t.Parallel()

	oldKey, newKey := Generate(), Generate()
	old, err := Parse(oldKey)
	require.NoError(t, err)
	ct, oldID, err := old.Encrypt([]byte("whsec_abc"), []byte("wh_1"))
	require.NoError(t, err)
	require.NotContains(t, string(ct), "whsec_abc")

	rotated, err := Parse(newKey + "," + oldKey)
	require.NoError(t, err)
	require.NotEqual(t, oldID, rotated.PrimaryID())

	pt, err := rotated.Decrypt(ct, oldID, []byte("wh_1"))
	require.NoError(t, err)
	require.Equal(t, "whsec_abc", string(pt))

	_, err = rotated.Decrypt(ct, oldID, []byte("wh_2"))
	require.Error(t, err, "bound to its row")

	ct2, id2, err := rotated.Encrypt([]byte("x"), nil)
	require.NoError(t, err)
	_, err = old.Decrypt(ct2, id2, nil)
	require.ErrorIs(t, err, ErrUnknownKey)
}

func TestParseErrors(t *testing.T) {
	t.Parallel()

	for _, spec := range []string{"", " , ", "not base64!!", "c2hvcnQ="} {
		_, err := Parse(spec)
		require.Error(t, err, spec)
	}
}
