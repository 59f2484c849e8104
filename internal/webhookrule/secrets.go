package webhookrule

import (
	"encoding/json"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
)

// A webhook's secrets other than its signing secret are encrypted at rest
// with the keyring, each bound to the webhook (the additional data names
// it), so a ciphertext can't be copied to another row: its custom headers
// (EncryptHeaders), its client certificate and key (EncryptTLS) and its
// OAuth2 client secret (EncryptOAuthSecret).

// seal encrypts plain for storage, bound to additional.
func seal(keys *keyring.Keyring, plain, additional []byte) (ciphertext []byte, keyID *string, err error) {
	ct, id, err := keys.Encrypt(plain, additional)
	if err != nil {
		return nil, nil, err
	}
	return ct, &id, nil
}

// tlsAAD binds a webhook's encrypted TLS material to the webhook, so it
// can't be copied to another row.
func tlsAAD(webhookID string) []byte { return []byte("tls:" + webhookID) }

// tlsSecret is the encrypted part of a webhook's TLS setting.
type tlsSecret struct {
	Certificate string `json:"certificate"`
	Key         string `json:"key"`
}

// EncryptTLS encrypts a client certificate chain and its key for
// storage; nil when m has no certificate.
func EncryptTLS(keys *keyring.Keyring, webhookID string, m *outbound.TLSMaterial) (ciphertext []byte, keyID *string, err error) {
	if m == nil || len(m.CertificatePEM) == 0 {
		return nil, nil, nil
	}
	plain, err := json.Marshal(tlsSecret{Certificate: string(m.CertificatePEM), Key: string(m.KeyPEM)})
	if err != nil {
		return nil, nil, err
	}
	return seal(keys, plain, tlsAAD(webhookID))
}

// DecryptTLS returns the client certificate chain and key that EncryptTLS
// encrypted for webhookID.
func DecryptTLS(keys *keyring.Keyring, webhookID string, ciphertext []byte, keyID string) (certificatePEM, keyPEM []byte, err error) {
	plain, err := keys.Decrypt(ciphertext, keyID, tlsAAD(webhookID))
	if err != nil {
		return nil, nil, err
	}
	var s tlsSecret
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, nil, err
	}
	return []byte(s.Certificate), []byte(s.Key), nil
}

// oauthAAD binds a webhook's encrypted OAuth2 client secret to the webhook.
func oauthAAD(webhookID string) []byte { return []byte("oauth:" + webhookID) }

// EncryptOAuthSecret encrypts a webhook's OAuth2 client secret.
func EncryptOAuthSecret(keys *keyring.Keyring, webhookID, secret string) ([]byte, string, error) {
	return keys.Encrypt([]byte(secret), oauthAAD(webhookID))
}

// DecryptOAuthSecret returns the OAuth2 client secret that
// EncryptOAuthSecret encrypted for webhookID.
func DecryptOAuthSecret(keys *keyring.Keyring, webhookID string, ciphertext []byte, keyID string) (string, error) {
	secret, err := keys.Decrypt(ciphertext, keyID, oauthAAD(webhookID))
	return string(secret), err
}
