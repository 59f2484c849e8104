// Package ident makes and checks webhookd's public identifiers: a type prefix
// and a UUIDv7 in hex (wh_0193..., evt_..., dlv_..., key_...). UUIDv7s are
// ordered by creation time, which keeps cursors and indexes cheap, and are not
// enumerable.
package ident

import (
	"encoding/hex"
	"fmt"
	"strings"

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
