package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com), sent
// beside Mono-Signature by a webhook whose signature_scheme is "standard":
//
//	webhook-id: evt_...                  (the event id, the same on every attempt)
//	webhook-timestamp: 1672774221        (this attempt's Unix seconds)
//	webhook-signature: v1,<base64 HMAC>  (one per secret, space-separated)
//
// The HMAC-SHA256 is of "<id>.<timestamp>.<raw body>", keyed with the
// secret's decoded bytes: a secret is "whsec_" and the standard (padded)
// base64 of its key, the form the official libraries take.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// SecretPrefix starts every webhook secret.
const SecretPrefix = "whsec_"

// StandardKey returns the key bytes of a secret in the Standard Webhooks
// form ("whsec_" and the standard, padded base64 of at least one byte), and
// false for any other secret (such as webhookd's secrets issued before the
// standard scheme, base64url without padding, which the libraries reject).
func StandardKey(secret string) ([]byte, bool) {
	encoded, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, false
	}
	key, err := base64.StdEncoding.Strict().DecodeString(encoded)
	if err != nil || len(key) == 0 {
		return nil, false
	}
	return key, true
}

// NewSecret returns a webhook secret for key (32 random bytes as webhookd
// makes them) in the Standard Webhooks form: "whsec_" and the standard,
// padded base64 of key. The Mono scheme keys its HMAC with the whole string,
// so the same secret serves both schemes.
func NewSecret(key []byte) string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ComputeStandard returns one webhook-signature entry, "v1,<base64 HMAC>",
// for the message id, time t and body under the key bytes key.
func ComputeStandard(key []byte, id string, t int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	var buf [20]byte
	mac.Write(strconv.AppendInt(buf[:0], t, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignStandard returns the webhook-signature header value for the message
// id and body at time t: one "v1,<base64>" per key, space-separated, in the
// order given (newest first).
func SignStandard(t time.Time, id string, body []byte, keys ...[]byte) string {
	entries := make([]string, len(keys))
	for i, key := range keys {
		entries[i] = ComputeStandard(key, id, t.Unix(), body)
	}
	return strings.Join(entries, " ")
}
