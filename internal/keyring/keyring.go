// Package keyring encrypts webhook secrets at rest with AES-256-GCM.
//
// A keyring holds one primary key, used to encrypt, and any number of older
// keys kept to decrypt what they encrypted, so the key can be rotated: put
// the new key first in WEBHOOKD_ENCRYPTION_KEY, keep the old ones after it,
// and re-encryption can happen lazily. Each ciphertext is stored with the id
// of its key (the first 8 hex digits of the key's SHA-256).
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of an encryption key: 32 random bytes (AES-256).
const KeySize = 32

var (
	// ErrUnknownKey means a ciphertext names a key the keyring does not hold.
	ErrUnknownKey = errors.New("ciphertext was encrypted with a key this keyring does not hold")
	// ErrNoKey means the configuration holds no key at all.
	ErrNoKey = errors.New("no encryption key given")
)

// Keyring encrypts with its primary key and decrypts with any of its keys.
type Keyring struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// Parse builds a keyring from a comma-separated list of base64 keys (standard
// or URL encoding, each decoding to 32 bytes), the primary first.
func Parse(spec string) (*Keyring, error) {
	var keys [][]byte
	for i, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, err := decodeKey(part)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		keys = append(keys, key)
	}
	return New(keys...)
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d (generate one with `openssl rand -base64 32`)", len(key), KeySize)
			}
			return key, nil
		}
	}
	return nil, errors.New("is not valid base64 (generate one with `openssl rand -base64 32`)")
}

// New builds a keyring from raw 32-byte keys, the primary first.
func New(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	k := &Keyring{aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("key %d is %d bytes, want %d", i+1, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("error creating cipher: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("error creating GCM: %w", err)
		}
		id := KeyID(key)
		if i == 0 {
			k.primary = id
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// Generate returns a new random key in base64, for `webhookd dev` and for
// operators (`openssl rand -base64 32` does the same).
func Generate() string {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}

// KeyID is the id stored beside each ciphertext: 8 hex digits of the key's
// SHA-256.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// PrimaryID is the id of the key Encrypt uses.
func (k *Keyring) PrimaryID() string { return k.primary }

// Encrypt seals plaintext under the primary key. additional binds the
// ciphertext to its row (a webhook id), so it can't be moved to another.
func (k *Keyring) Encrypt(plaintext, additional []byte) (ciphertext []byte, keyID string, err error) {
	aead := k.aeads[k.primary]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", fmt.Errorf("error reading nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, additional), k.primary, nil
}

// Decrypt opens a ciphertext made by Encrypt with the key keyID.
func (k *Keyring) Decrypt(ciphertext []byte, keyID string, additional []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, keyID)
	}
	if len(ciphertext) < aead.NonceSize() {
		return nil, errors.New("ciphertext too short")
	}
	nonce, sealed := ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():]
	plaintext, err := aead.Open(nil, nonce, sealed, additional)
	if err != nil {
		return nil, fmt.Errorf("error decrypting with key %s: %w", keyID, err)
	}
	return plaintext, nil
}
