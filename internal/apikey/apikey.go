// Package apikey makes webhookd API keys and the hashes they are stored and
// looked up by. A key is "whk_" followed by 32 random bytes in base64url; only
// its SHA-256 is stored (a fast hash is right for 256 random bits, and keeps
// bcrypt off the request path), with a short prefix for display.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Prefix starts every key, so a leaked one is recognisable (and greppable).
const Prefix = "whk_"

// DisplayLen is how many leading characters of a key are kept for display.
const DisplayLen = 12

// Generate returns a new random key, its display prefix and its hash.
func Generate() (key, display string, hash []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	key = Prefix + base64.RawURLEncoding.EncodeToString(b)
	return key, key[:DisplayLen], Hash(key)
}

// Hash is the SHA-256 a key is stored and looked up by.
func Hash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// LooksLikeKey reports whether s has the shape of a generated key.
func LooksLikeKey(s string) bool {
	return strings.HasPrefix(s, Prefix) && len(s) == len(Prefix)+43
}
