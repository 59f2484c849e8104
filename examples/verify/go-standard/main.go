// Command go-standard verifies a Standard Webhooks request from Mono with
// the official Go library (github.com/standard-webhooks/standard-webhooks/libraries/go):
// the secret in WEBHOOK_SECRET, the webhook-id, webhook-timestamp and
// webhook-signature headers in WEBHOOK_ID, WEBHOOK_TIMESTAMP and
// WEBHOOK_SIGNATURE, the raw body on standard input. Exit 0: valid; 1: not.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// verify checks a request's headers and raw body (before any JSON
// parsing) with secret, the whsec_... string as the dashboard shows it.
func verify(secret string, header http.Header, body []byte) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	// ErrNoMatchingSignature, ErrMessageTooOld, ErrMessageTooNew (5 minutes).
	return wh.Verify(body, header)
}

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalid: reading the body:", err)
		os.Exit(1)
	}
	header := http.Header{}
	header.Set("webhook-id", os.Getenv("WEBHOOK_ID"))
	header.Set("webhook-timestamp", os.Getenv("WEBHOOK_TIMESTAMP"))
	header.Set("webhook-signature", os.Getenv("WEBHOOK_SIGNATURE"))
	if err := verify(os.Getenv("WEBHOOK_SECRET"), header, body); err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	fmt.Println("valid")
}
