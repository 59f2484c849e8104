package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/signer"
)

// Custom headers: sent on every attempt, shown by name only, stored
// encrypted, validated (nothing changes on a refusal), replaced and removed
// by PATCH.
func TestCustomHeaders(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(200))

	body := fmt.Sprintf(`{"account_id":"acct_hdr","url":%q,"headers":{"x-gateway-key":"gw-secret-value-123","X-Team":"payments"}}`, recv.URL+"/hook")
	var created apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: body}), http.StatusCreated, &created)
	require.Equal(t, []string{"X-Gateway-Key", "X-Team"}, created.HeaderNames)

	get := b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + created.ID})
	require.Equal(t, http.StatusOK, get.status)
	require.NotContains(t, string(get.body), "gw-secret-value-123", "header values are never shown")
	var stored []byte
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT headers_ciphertext FROM webhooks WHERE id = $1`, created.ID).Scan(&stored))
	require.NotEmpty(t, stored)
	require.False(t, bytes.Contains(stored, []byte("gw-secret-value-123")), "header values are stored encrypted")

	send := func() {
		t.Helper()
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_hdr","type":"order.created","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	}
	send()
	got := recv.Wait(t, 1, 10*time.Second)[0]
	require.Equal(t, "gw-secret-value-123", got.Header.Get("X-Gateway-Key"))
	require.Equal(t, "payments", got.Header.Get("X-Team"))
	require.NotEmpty(t, got.Header.Get("Mono-Signature"), "webhookd's own headers are still set")
	require.Equal(t, "application/json", got.Header.Get("Content-Type"))

	bad := []struct{ headers, code, field string }{
		{`{"Mono-Signature":"x"}`, "reserved_header", "headers.Mono-Signature"},
		{`{"content-type":"text/plain"}`, "reserved_header", "headers.content-type"},
		{`{"Connection":"close"}`, "reserved_header", "headers.Connection"},
		{`{"Host":"evil.example"}`, "reserved_header", "headers.Host"},
		{`{"Transfer-Encoding":"chunked"}`, "reserved_header", "headers.Transfer-Encoding"},
		{`{"Bad Name":"x"}`, "invalid_header_name", "headers.Bad Name"},
		{`{"X-A":"line\r\nInjected: yes"}`, "invalid_header_value", "headers.X-A"},
		{`{"X-Long":"` + strings.Repeat("v", 1025) + `"}`, "invalid_header_value", "headers.X-Long"},
	}
	for _, tc := range bad {
		resp := b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + created.ID, body: `{"headers":` + tc.headers + `}`})
		requireError(t, resp, http.StatusUnprocessableEntity, tc.code, tc.field)
	}
	many := map[string]string{}
	for i := range 11 {
		many[fmt.Sprintf("X-H%d", i)] = "v"
	}
	manyJSON, err := json.Marshal(map[string]any{"headers": many})
	require.NoError(t, err)
	requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + created.ID, body: string(manyJSON)}), http.StatusUnprocessableEntity, "too_many_headers", "headers")
	// A name given twice in two cases is refused whichever comes first.
	resp := b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + created.ID, body: `{"headers":{"x-dup":"1","X-Dup":"2"}}`})
	require.Equal(t, http.StatusUnprocessableEntity, resp.status)
	require.Contains(t, string(resp.body), "duplicate_header")
	// The same rules on create, which then creates nothing.
	resp = b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: fmt.Sprintf(`{"account_id":"acct_hdr2","url":%q,"headers":{"Mono-X":"1"}}`, recv.URL+"/other")})
	requireError(t, resp, http.StatusUnprocessableEntity, "reserved_header", "headers.Mono-X")
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM webhooks WHERE account_id = 'acct_hdr2'`).Scan(&n))
	require.Zero(t, n)

	var view apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + created.ID}), http.StatusOK, &view)
	require.Equal(t, []string{"X-Gateway-Key", "X-Team"}, view.HeaderNames, "refused updates changed nothing")

	// Replace, then remove.
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + created.ID, body: `{"headers":{"Authorization":"Bearer gw-2"}}`}), http.StatusOK, &view)
	require.Equal(t, []string{"Authorization"}, view.HeaderNames)
	send()
	got = recv.Wait(t, 2, 10*time.Second)[1]
	require.Equal(t, "Bearer gw-2", got.Header.Get("Authorization"))
	require.Empty(t, got.Header.Get("X-Gateway-Key"))

	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + created.ID, body: `{"headers":{}}`}), http.StatusOK, &view)
	require.Empty(t, view.HeaderNames)
	send()
	got = recv.Wait(t, 3, 10*time.Second)[2]
	require.Empty(t, got.Header.Get("Authorization"))
}

// A traceparent given on enqueue (header or field) reaches every attempt:
// the producer's trace id and flags, a span id of the attempt's own.
func TestTraceparentPropagation(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Sequence(500, 200, 200))
	b.createWebhook(t, "acct_trace", recv.URL+"/hook")

	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	producer := "00-" + trace + "-00f067aa0ba902b7-01"
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_trace","type":"order.created","data":{}}`,
		header: map[string]string{"traceparent": producer}})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	got := recv.Wait(t, 2, 15*time.Second) // a failure, then the retry
	spans := map[string]bool{}
	for _, r := range got[:2] {
		tp := r.Header.Get("Traceparent")
		parts := strings.Split(tp, "-")
		require.Len(t, parts, 4, "traceparent %q", tp)
		require.Equal(t, "00", parts[0])
		require.Equal(t, trace, parts[1], "the producer's trace id on every attempt, retries too")
		require.Equal(t, "01", parts[3], "the producer's flags")
		require.NotEqual(t, "00f067aa0ba902b7", parts[2], "each attempt is a span of its own")
		spans[parts[2]] = true
	}
	require.Len(t, spans, 2)

	// The field wins over the header; flags 00 kept.
	fieldTrace := "0af7651916cd43dd8448eb211c80319c"
	resp = b.do(t, request{method: http.MethodPost, path: "/v1/events",
		body:   `{"account_id":"acct_trace","type":"order.created","data":{},"traceparent":"00-` + fieldTrace + `-b7ad6b7169203331-00"}`,
		header: map[string]string{"traceparent": producer}})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	third := recv.Wait(t, 3, 10*time.Second)[2]
	require.True(t, strings.HasPrefix(third.Header.Get("Traceparent"), "00-"+fieldTrace+"-"))
	require.True(t, strings.HasSuffix(third.Header.Get("Traceparent"), "-00"))

	// No traceparent given, none sent.
	b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_trace","type":"order.created","data":{}}`})
	require.Empty(t, recv.Wait(t, 4, 10*time.Second)[3].Header.Get("Traceparent"))

	for _, bad := range []string{"01-" + trace + "-00f067aa0ba902b7-01", "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01", "00-" + trace + "-0000000000000000-01", "00-" + strings.ToUpper(trace) + "-00f067aa0ba902b7-01", "garbage"} {
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_trace","type":"order.created","data":{}}`,
			header: map[string]string{"traceparent": bad}})
		requireError(t, resp, http.StatusUnprocessableEntity, "invalid_traceparent", "traceparent")
	}
	var events int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE account_id = 'acct_trace'`).Scan(&events))
	require.Equal(t, 3, events, "refused events are not stored")
}

// requireNoDeliveryJob asserts that delivery id never had a delivery job
// (River keeps finished jobs for CompletedJobRetentionDefault).
func requireNoDeliveryJob(t *testing.T, b *testBundle, id string) {
	t.Helper()
	var jobs int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = $1 AND args->>'delivery_id' = $2`,
		engine.DeliveryArgs{}.Kind(), id).Scan(&jobs))
	require.Zero(t, jobs, "delivery %s has a job", id)
}

// A test send: one real signed envelope to this webhook only, answered with
// the attempt, recorded as a test delivery, never retried.
func TestSendTestEvent(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(200))
	other := testreceiver.New(t, testreceiver.Status(200))
	body := fmt.Sprintf(`{"account_id":"acct_test","url":%q,"headers":{"X-Gateway-Key":"gw-1"}}`, recv.URL+"/hook")
	var hook apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: body}), http.StatusCreated, &hook)
	b.createWebhook(t, "acct_test", other.URL+"/other")

	var res testSendAnswer
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test"}), http.StatusOK, &res)
	require.True(t, res.Succeeded)
	require.Equal(t, "webhook.test", res.Type)
	var attempt struct {
		StatusCode int     `json:"status_code"`
		DurationMS float64 `json:"duration_ms"`
	}
	require.NoError(t, json.Unmarshal(res.Attempt, &attempt))
	require.Equal(t, 200, attempt.StatusCode)

	got := recv.Requests()
	require.Len(t, got, 1, "sent at once, before the answer")
	require.NoError(t, signer.Verify(got[0].Header.Get("Mono-Signature"), got[0].Body, hook.Secret, time.Now(), 5*time.Minute))
	require.Equal(t, res.EventID, got[0].Header.Get("Mono-Event-Id"))
	require.Equal(t, "gw-1", got[0].Header.Get("X-Gateway-Key"), "custom headers go on test sends too")
	var envelope struct {
		Event struct {
			Type string            `json:"type"`
			Data map[string]string `json:"data"`
		} `json:"event"`
		Timestamp string `json:"timestamp"`
	}
	require.NoError(t, json.Unmarshal(got[0].Body, &envelope))
	require.Equal(t, "webhook.test", envelope.Event.Type)
	require.Equal(t, hook.ID, envelope.Event.Data["webhook_id"])

	var d apitype.Delivery
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + res.DeliveryID}), http.StatusOK, &d)
	require.True(t, d.Test, "marked as a test in the history")
	require.Equal(t, "succeeded", d.State)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, hook.ID, d.WebhookID)

	// A catalogue type sends its example; an unknown one is refused.
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test", body: `{"type":"bank_transfer_approved"}`}), http.StatusOK, &res)
	require.Equal(t, "bank_transfer_approved", res.Type)
	got = recv.Requests()
	require.Len(t, got, 2)
	require.Contains(t, string(got[1].Body), `"type":"bank_transfer_approved"`)
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test", body: `{"type":"no_such_type"}`}),
		http.StatusUnprocessableEntity, "unknown_event_type", "type")

	// A failing receiver: the attempt says so, the delivery is dead, and
	// nothing retries it.
	recv.SetRespond(testreceiver.Status(503))
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test"}), http.StatusOK, &res)
	require.False(t, res.Succeeded)
	require.NoError(t, json.Unmarshal(res.Attempt, &attempt))
	require.Equal(t, 503, attempt.StatusCode)
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + res.DeliveryID}), http.StatusOK, &d)
	require.Equal(t, "dead", d.State)
	// A retry, or a replay, is sent by a delivery job: a test send has
	// none, and once every job has finished nothing more can arrive.
	requireNoDeliveryJob(t, b, res.DeliveryID)
	waitSettled(t, b.pool)
	require.Len(t, recv.Requests(), 3, "a test send is never retried")
	require.Zero(t, other.Count(), "only the tested webhook receives it")

	// Nor replayed: alone it is refused, and a bulk replay of the account's
	// dead deliveries leaves it out.
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/" + res.DeliveryID + "/replay"}), http.StatusConflict, "test_delivery", "")
	var batch map[string]any
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay", body: `{"account_id":"acct_test","state":"dead"}`}), http.StatusAccepted, &batch)
	require.Equal(t, float64(0), batch["total"], "a bulk replay took a test delivery")
	require.Equal(t, store.ReplayBatchDone, batch["state"], "nothing to replay: done at once")
	requireNoDeliveryJob(t, b, res.DeliveryID)
	waitSettled(t, b.pool)
	require.Len(t, recv.Requests(), 3, "a test send was replayed")
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + res.DeliveryID}), http.StatusOK, &d)
	require.Equal(t, "dead", d.State)

	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/wh_" + strings.Repeat("0", 32) + "/test"}), http.StatusNotFound, "not_found", "id")
}
