package engine

import (
	"net/http"
	"strconv"
	"time"

	"github.com/mono/webhookd/signer"
)

// setStandardSignature sets the Standard Webhooks headers of an attempt at
// start: webhook-id (the event id), webhook-timestamp and webhook-signature,
// one entry per secret (newest first) that is in the standard form. A
// secret from before the standard form (base64url without padding) can't
// be decoded by the libraries, so it signs Mono-Signature only; a webhook
// can't switch to the standard scheme while its current secret is one, but
// during a rotation's overlap the one rotated out may be.
func setStandardSignature(header http.Header, eventID string, start time.Time, body []byte, secrets []string) {
	keys := make([][]byte, 0, len(secrets))
	for _, secret := range secrets {
		if key, ok := signer.StandardKey(secret); ok {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return
	}
	// Set directly: the lowercase names as the specification spells them.
	header[signer.HeaderWebhookID] = []string{eventID}
	header[signer.HeaderWebhookTimestamp] = []string{strconv.FormatInt(start.Unix(), 10)}
	header[signer.HeaderWebhookSignature] = []string{signer.SignStandard(start, eventID, body, keys...)}
}
