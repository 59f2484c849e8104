package webhookrule

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
)

// A webhook's encrypted secrets decrypt for that webhook only: each
// ciphertext is bound to its webhook and to its kind (a header ciphertext
// is no client certificate), so none can be copied to another row.
func TestSecretsBoundToTheirWebhook(t *testing.T) {
	t.Parallel()

	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)

	headers, headersKey, err := EncryptHeaders(keys, "wh_a", map[string]string{"x-api-key": "k1"})
	require.NoError(t, err)
	got, err := DecryptHeaders(keys, "wh_a", headers, headersKey)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"X-Api-Key": "k1"}, got, "names canonicalised")
	_, err = DecryptHeaders(keys, "wh_b", headers, headersKey)
	require.Error(t, err)
	none, noneKey, err := EncryptHeaders(keys, "wh_a", nil)
	require.NoError(t, err)
	require.Nil(t, none)
	require.Nil(t, noneKey)

	material := &outbound.TLSMaterial{CertificatePEM: []byte("cert"), KeyPEM: []byte("key")}
	tlsCT, tlsKey, err := EncryptTLS(keys, "wh_a", material)
	require.NoError(t, err)
	cert, key, err := DecryptTLS(keys, "wh_a", tlsCT, *tlsKey)
	require.NoError(t, err)
	require.Equal(t, "cert", string(cert))
	require.Equal(t, "key", string(key))
	_, _, err = DecryptTLS(keys, "wh_b", tlsCT, *tlsKey)
	require.Error(t, err)
	_, _, err = DecryptTLS(keys, "wh_a", headers, *headersKey)
	require.Error(t, err, "a header ciphertext is not a client certificate")

	oauthCT, oauthKey, err := EncryptOAuthSecret(keys, "wh_a", "s3cret")
	require.NoError(t, err)
	secret, err := DecryptOAuthSecret(keys, "wh_a", oauthCT, oauthKey)
	require.NoError(t, err)
	require.Equal(t, "s3cret", secret)
	_, err = DecryptOAuthSecret(keys, "wh_b", oauthCT, oauthKey)
	require.Error(t, err)
	_, err = DecryptOAuthSecret(keys, "wh_a", tlsCT, *tlsKey)
	require.Error(t, err, "a client certificate ciphertext is not an OAuth2 secret")
}
