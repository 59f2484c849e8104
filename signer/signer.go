// Package signer signs and verifies the Mono-Signature header that webhookd
// sends with every webhook request:
//
//	Mono-Signature: t=1672774221,v1=<hex HMAC-SHA256>
//
// The HMAC key is the webhook secret (the whsec_... string, its UTF-8 bytes as
// they are) and the message is "<t>.<raw body>", where t is the Unix time of
// the attempt. During a secret rotation the header carries one v1= per active
// secret, newest first.
//
// A webhook whose signature_scheme is "standard" is also signed the
// Standard Webhooks way (standard.go: webhook-id, webhook-timestamp,
// webhook-signature), with the same secret decoded from its whsec_ base64.
//
// The package uses the standard library only, so a Go receiver can import it
// on its own.
package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header is the name of the HTTP header that carries the signature.
const Header = "Mono-Signature"

// ToleranceDefault is how far from now a signature's t may be before Verify
// rejects it as too old (or too far in the future).
const ToleranceDefault = 5 * time.Minute

var (
	// ErrMalformedHeader means the header is missing or not "t=...,v1=...".
	ErrMalformedHeader = errors.New("malformed Mono-Signature header")
	// ErrNoValidSignature means no v1 signature matches the body and secret.
	ErrNoValidSignature = errors.New("no valid v1 signature in Mono-Signature header")
	// ErrTooOld means the signatures match but t is outside the tolerance.
	ErrTooOld = errors.New("Mono-Signature timestamp is outside the tolerance")
)

// Compute returns the hex HMAC-SHA256 of "<t>.<body>" under secret.
func Compute(secret string, t int64, body []byte) string {
	return hex.EncodeToString(computeMAC(secret, t, body))
}

func computeMAC(secret string, t int64, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	var buf [20]byte
	mac.Write(strconv.AppendInt(buf[:0], t, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Sign returns the Mono-Signature header value for body at time t: t in Unix
// seconds and one v1 per secret, in the order given (newest first).
func Sign(t time.Time, body []byte, secrets ...string) string {
	unix := t.Unix()
	var b strings.Builder
	b.Grow(2 + 20 + len(secrets)*68)
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(unix, 10))
	for _, secret := range secrets {
		b.WriteString(",v1=")
		b.WriteString(Compute(secret, unix, body))
	}
	return b.String()
}

// Signature is a parsed Mono-Signature header.
type Signature struct {
	// Timestamp is the t= value.
	Timestamp time.Time
	// V1 holds every v1= value, decoded from hex.
	V1 [][]byte
}

// Parse parses a Mono-Signature header value. Unknown schemes (v0=, v2=...)
// are ignored so that receivers keep working when new ones are added.
func Parse(header string) (*Signature, error) {
	if header == "" {
		return nil, ErrMalformedHeader
	}
	sig := &Signature{}
	haveT := false
	for _, part := range strings.Split(header, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, ErrMalformedHeader
		}
		switch key {
		case "t":
			if haveT {
				return nil, ErrMalformedHeader
			}
			unix, err := strconv.ParseInt(value, 10, 64)
			if err != nil || unix < 0 {
				return nil, ErrMalformedHeader
			}
			sig.Timestamp = time.Unix(unix, 0)
			haveT = true
		case "v1":
			mac, err := hex.DecodeString(value)
			if err != nil || len(mac) != sha256.Size {
				// A bad v1 can't match; keep looking at the others.
				continue
			}
			sig.V1 = append(sig.V1, mac)
		}
	}
	if !haveT {
		return nil, ErrMalformedHeader
	}
	return sig, nil
}

// Verify checks header against body and secret: some v1 must match, and t
// must be within tolerance of now (ToleranceDefault when tolerance is 0).
func Verify(header string, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	sig, err := verify(header, body, secret)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = ToleranceDefault
	}
	if d := now.Sub(sig.Timestamp); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	return nil
}

// VerifyIgnoringTolerance checks only that some v1 in header matches body and
// secret, whatever its t. Use it for stored requests, never for live ones.
func VerifyIgnoringTolerance(header string, body []byte, secret string) error {
	_, err := verify(header, body, secret)
	return err
}

func verify(header string, body []byte, secret string) (*Signature, error) {
	sig, err := Parse(header)
	if err != nil {
		return nil, err
	}
	expected := computeMAC(secret, sig.Timestamp.Unix(), body)
	for _, mac := range sig.V1 {
		if hmac.Equal(mac, expected) {
			return sig, nil
		}
	}
	return nil, ErrNoValidSignature
}
