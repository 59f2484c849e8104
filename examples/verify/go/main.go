// Command verify checks a Mono webhook request with package signer: the
// secret in WEBHOOK_SECRET, the Mono-Signature header in MONO_SIGNATURE and
// the raw body on standard input. VERIFY_NOW (Unix seconds) replaces the
// clock, for checking the test vector. Exit 0: valid; 1: not.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/mono/webhookd/signer"
)

func main() {
	body, err := io.ReadAll(os.Stdin) // the raw body, byte for byte
	if err != nil {
		fail("error reading the body: " + err.Error())
	}
	now := time.Now()
	if s := os.Getenv("VERIFY_NOW"); s != "" {
		unix, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fail("VERIFY_NOW must be Unix seconds")
		}
		now = time.Unix(unix, 0)
	}
	// Constant-time comparison of every v1, and t within 5 minutes of now.
	err = signer.Verify(os.Getenv("MONO_SIGNATURE"), body, os.Getenv("WEBHOOK_SECRET"), now, signer.ToleranceDefault)
	if err != nil {
		fail(err.Error()) // signer.ErrMalformedHeader, ErrNoValidSignature or ErrTooOld
	}
	fmt.Println("valid")
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "invalid: "+msg)
	os.Exit(1)
}
