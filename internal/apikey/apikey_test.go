package apikey

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGenerate(t *testing.T) {
	t.Parallel()

	key, display, hash := Generate()
	require.True(t, LooksLikeKey(key))
	require.Equal(t, key[:DisplayLen], display)
	require.Equal(t, Hash(key), hash)
	require.Len(t, hash, 32)

	other, _, _ := Generate()
	require.NotEqual(t, key, other)
	require.False(t, LooksLikeKey("whk_short"))
}
