// Package ident makes and checks webhookd's public identifiers: a type prefix
// and a UUIDv7 in hex (wh_0193..., evt_..., dlv_..., key_...). UUIDv7s are
// ordered by creation time, which keeps cursors and indexes cheap, and are not
// enumerable.
package ident

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Prefix is the type part of an identifier.
type Prefix string

// The identifier types.
const (
	Webhook  Prefix = "wh"
	Event    Prefix = "evt"
	Delivery Prefix = "dlv"
	Key      Prefix = "key"
)

// New returns a new identifier with prefix p.
func New(p Prefix) string {
	u := uuid.Must(uuid.NewV7())
	var buf [32]byte
	hex.Encode(buf[:], u[:])
	return string(p) + "_" + string(buf[:])
}

// Valid reports whether s is a well-formed identifier of type p.
func Valid(p Prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, string(p)+"_")
	if !ok || len(rest) != 32 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Check returns an error naming the expected form when s is not a valid
// identifier of type p.
func Check(p Prefix, s string) error {
	if !Valid(p, s) {
		return fmt.Errorf("must be an identifier of the form %s_ followed by 32 lowercase hex digits", p)
	}
	return nil
}

// Time returns the creation time encoded in identifier s (the millisecond
// timestamp of its UUIDv7), and false when s is not an identifier whose
// UUID is version 7.
func Time(s string) (time.Time, bool) {
	_, rest, ok := strings.Cut(s, "_")
	if !ok || len(rest) != 32 {
		return time.Time{}, false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(rest)); err != nil || b[6]>>4 != 7 {
		return time.Time{}, false
	}
	ms := int64(b[0])<<40 | int64(b[1])<<32 | int64(b[2])<<24 | int64(b[3])<<16 | int64(b[4])<<8 | int64(b[5])
	return time.UnixMilli(ms).UTC(), true
}
