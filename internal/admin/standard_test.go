package admin_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/signer"
)

// signature_scheme and on_gone through the API: defaults, bad values (422
// naming the field, nothing changed), webhook-* custom headers refused, and
// a webhook whose secret predates the standard form can't switch to
// standard until it is rotated; during that rotation's overlap only the new
// secret signs webhook-signature, both sign Mono-Signature.
func TestSignatureScheme(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(200))

	hook := b.createWebhook(t, "acct_scheme", recv.URL+"/hook")
	require.Equal(t, "mono", hook.SignatureScheme)
	require.Equal(t, "retry", hook.OnGone)
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, hook.Secret, "whsec_ and padded standard base64 of 32 bytes")
	_, err := standardwebhooks.NewWebhook(hook.Secret)
	require.NoError(t, err, "the official library takes a new secret as it is")

	before := countRows(t, b.pool)
	for _, bad := range []struct{ set, code, field string }{
		{`"signature_scheme":"svix"`, "invalid_signature_scheme", "signature_scheme"},
		{`"on_gone":"drop"`, "invalid_on_gone", "on_gone"},
		{`"headers":{"webhook-id":"x"}`, "reserved_header", "headers.webhook-id"},
		{`"headers":{"Webhook-Signature":"x"}`, "reserved_header", "headers.Webhook-Signature"},
	} {
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_scheme","url":"` + recv.URL + `/x",` + bad.set + `}`}),
			http.StatusUnprocessableEntity, bad.code, bad.field)
		requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":"changed",` + bad.set + `}`}),
			http.StatusUnprocessableEntity, bad.code, bad.field)
	}
	require.Equal(t, before, countRows(t, b.pool), "refused creates made nothing")
	var got apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &got)
	require.Empty(t, got.Description, "refused updates changed nothing")
	require.Equal(t, "mono", got.SignatureScheme)

	// A mono webhook's attempts carry no webhook-* header.
	send := func() testreceiver.Request {
		t.Helper()
		n := recv.Count()
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_scheme","type":"order.created","data":{"n":1}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
		return recv.Wait(t, n+1, 10*time.Second)[n]
	}
	req := send()
	require.Empty(t, req.Header.Get("webhook-signature"))
	require.Empty(t, req.Header.Get("webhook-id"))

	// An old-form secret (base64url, no padding), as webhooks created
	// before this change have.
	oldSecret := "whsec_" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	ct, keyID, err := b.keys.Encrypt([]byte(oldSecret), []byte(hook.ID))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE webhooks SET secret_ciphertext = $2, secret_key_id = $3 WHERE id = $1`, hook.ID, ct, keyID)
	require.NoError(t, err)
	requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"signature_scheme":"standard","description":"no"}`}),
		http.StatusUnprocessableEntity, "secret_rotation_required", "signature_scheme")
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &got)
	require.Equal(t, "mono", got.SignatureScheme)
	require.Empty(t, got.Description)

	// Rotate (an hour's overlap), then switch.
	var rotated apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/rotate-secret", body: `{"expires_in":"1h"}`}), http.StatusOK, &rotated)
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"signature_scheme":"standard","on_gone":"pause"}`}), http.StatusOK, &got)
	require.Equal(t, "standard", got.SignatureScheme)
	require.Equal(t, "pause", got.OnGone)
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &got)
	require.Equal(t, "standard", got.SignatureScheme)
	require.Equal(t, "pause", got.OnGone)

	req = send()
	require.Equal(t, req.Header.Get("Mono-Event-Id"), req.Header.Get("webhook-id"))
	require.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, req.Header.Get("webhook-signature"), "only the secret the libraries can decode signs webhook-signature")
	wh, err := standardwebhooks.NewWebhook(rotated.Secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(req.Body, req.Header))
	mono := req.Header.Get(signer.Header)
	require.Equal(t, 2, strings.Count(mono, "v1="), "both secrets sign Mono-Signature")
	require.NoError(t, signer.Verify(mono, req.Body, oldSecret, time.Now(), 0))
	require.NoError(t, signer.Verify(mono, req.Body, rotated.Secret, time.Now(), 0))

	// Creating with both set.
	var created apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_scheme","url":"` + recv.URL + `/std","signature_scheme":"standard","on_gone":"pause"}`}), http.StatusCreated, &created)
	require.Equal(t, "standard", created.SignatureScheme)
	require.Equal(t, "pause", created.OnGone)
}

// on_gone: with pause, a 410 is recorded as the counted attempt it is and
// pauses the webhook (pause_reason gone); its delivery then waits, parked,
// and is delivered once the webhook is resumed. A test send answered 410
// never pauses. With retry (the default) a 410 is retried like any failure.
func TestOnGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startServer(t, true)
	gone := testreceiver.New(t, testreceiver.Status(http.StatusGone))

	var hook apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_gone","url":"` + gone.URL + `/hook","on_gone":"pause"}`}), http.StatusCreated, &hook)
	require.Equal(t, "pause", hook.OnGone)

	// A test send: answered 410, nothing paused.
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test"})
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.Contains(t, string(resp.body), `"status_code":410`)
	var got apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &got)
	require.False(t, got.Paused, "a test send never pauses")

	resp = b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_gone","type":"order.created","data":{}}`})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	gone.Wait(t, 2, 10*time.Second)
	testwait.For(t, 10*time.Second, func() (bool, string) {
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &got)
		return got.Paused, "the webhook is not paused"
	})
	require.NotNil(t, got.PauseReason)
	require.Equal(t, "gone", *got.PauseReason)
	// The delivery's next attempt comes due (30 ms at this scale) and is
	// parked, not sent: one attempt, a counted 410.
	var state string
	testwait.For(t, 10*time.Second, func() (bool, string) {
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT state FROM deliveries WHERE webhook_id = $1 AND event_type = 'order.created'`, hook.ID).Scan(&state))
		return state == "paused", "the delivery is " + state
	})
	var attempts, status int
	var counted bool
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) OVER (), a.status_code, a.counted FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.webhook_id = $1 AND d.event_type = 'order.created'`, hook.ID).Scan(&attempts, &status, &counted))
	require.Equal(t, 1, attempts)
	require.Equal(t, http.StatusGone, status)
	require.True(t, counted)
	require.Equal(t, 2, gone.Count(), "nothing sent while paused")
	var reason string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT reason FROM webhook_pauses WHERE webhook_id = $1 AND action = 'pause'`, hook.ID).Scan(&reason))
	require.Equal(t, "gone", reason)

	// The endpoint is back: resume, and the delivery goes.
	gone.SetRespond(testreceiver.Status(http.StatusOK))
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"paused":false}`}), http.StatusOK, &got)
	require.False(t, got.Paused)
	gone.Wait(t, 3, 10*time.Second)
	testwait.For(t, 10*time.Second, func() (bool, string) {
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT state FROM deliveries WHERE webhook_id = $1 AND event_type = 'order.created'`, hook.ID).Scan(&state))
		return state == "succeeded", "the delivery is " + state
	})

	// on_gone retry (the default): a 410 is retried, nothing paused.
	retry := testreceiver.New(t, testreceiver.Sequence(http.StatusGone, http.StatusGone, http.StatusOK))
	other := b.createWebhook(t, "acct_gone_retry", retry.URL+"/hook")
	resp = b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_gone_retry","type":"order.created","data":{}}`})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	retry.Wait(t, 3, 10*time.Second)
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + other.ID}), http.StatusOK, &got)
	require.False(t, got.Paused)
}
