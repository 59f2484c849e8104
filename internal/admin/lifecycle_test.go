package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/signer"
)

// Rotation with overlap: during it every attempt carries a v1 for each
// secret, newest first, so a receiver holding either verifies; after it
// only the new secret signs. Bad overlaps are refused and change nothing.
func TestRotateSecretWithOverlap(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(200))
	hook := b.createWebhook(t, "acct_rot", recv.URL+"/hook")
	oldSecret := hook.Secret
	send := func() testreceiver.Request {
		t.Helper()
		n := recv.Count()
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_rot","type":"order.created","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
		return recv.Wait(t, n+1, 10*time.Second)[n]
	}

	for _, bad := range []string{`{"expires_in":"8d"}`, `{"expires_in":"-1h"}`, `{"expires_in":"soon"}`, `{"expires_in":"169h"}`} {
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/rotate-secret", body: bad}),
			http.StatusUnprocessableEntity, "invalid_duration", "expires_in")
	}
	got := send()
	require.Equal(t, 1, strings.Count(got.Header.Get("Mono-Signature"), "v1="), "refused rotations changed nothing")
	require.NoError(t, signer.Verify(got.Header.Get("Mono-Signature"), got.Body, oldSecret, time.Now(), 0))

	var rotated apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/rotate-secret", body: `{"expires_in":"3s"}`}), http.StatusOK, &rotated)
	newSecret := rotated.Secret
	require.True(t, strings.HasPrefix(newSecret, "whsec_"))
	require.NotEqual(t, oldSecret, newSecret)
	require.NotNil(t, rotated.PreviousSecretExpiresAt)
	var revealed struct {
		Secret string `json:"secret"`
	}
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret"}), http.StatusOK, &revealed)
	require.Equal(t, newSecret, revealed.Secret)

	// During the overlap: a receiver with only the old secret and one with
	// only the new one both verify.
	got = send()
	header := got.Header.Get("Mono-Signature")
	require.Equal(t, 2, strings.Count(header, "v1="), "one v1 per active secret: %s", header)
	require.NoError(t, signer.Verify(header, got.Body, oldSecret, time.Now(), 0), "verifies with only the old secret")
	require.NoError(t, signer.Verify(header, got.Body, newSecret, time.Now(), 0), "verifies with only the new secret")
	sig, err := signer.Parse(header)
	require.NoError(t, err)
	require.Equal(t, signer.Compute(newSecret, sig.Timestamp.Unix(), got.Body), fmt.Sprintf("%x", sig.V1[0]), "the new secret's v1 comes first")

	// After the overlap (enforced at send time): only the new secret.
	// Only time shows it: the worker checks the expiry against the real
	// clock when it sends (a server's Config.Now moves the API's clock,
	// not the worker's).
	time.Sleep(time.Until(*rotated.PreviousSecretExpiresAt) + 100*time.Millisecond)
	got = send()
	header = got.Header.Get("Mono-Signature")
	require.Equal(t, 1, strings.Count(header, "v1="))
	require.NoError(t, signer.Verify(header, got.Body, newSecret, time.Now(), 0))
	require.ErrorIs(t, signer.Verify(header, got.Body, oldSecret, time.Now(), 0), signer.ErrNoValidSignature)
	var view apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &view)
	require.Nil(t, view.PreviousSecretExpiresAt, "an expired previous secret is not shown as signing")

	// expires_in 0: the old secret stops at once; the default is 24 h.
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/rotate-secret", body: `{"expires_in":"0s"}`}), http.StatusOK, &rotated)
	require.Nil(t, rotated.PreviousSecretExpiresAt)
	got = send()
	require.Equal(t, 1, strings.Count(got.Header.Get("Mono-Signature"), "v1="))
	require.NoError(t, signer.Verify(got.Header.Get("Mono-Signature"), got.Body, rotated.Secret, time.Now(), 0))
	before := time.Now()
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/rotate-secret"}), http.StatusOK, &rotated)
	require.WithinDuration(t, before.Add(24*time.Hour), *rotated.PreviousSecretExpiresAt, time.Minute)

	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/wh_" + strings.Repeat("0", 32) + "/rotate-secret"}), http.StatusNotFound, "not_found", "id")
}

// Event-type filters at fan-out: exact, wildcard, empty; a change affects
// only later events.
func TestEventTypeFilters(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(200))
	create := func(path string, filter []string) string {
		t.Helper()
		body, err := json.Marshal(map[string]any{"account_id": "acct_filter", "url": recv.URL + path, "event_types": filter})
		require.NoError(t, err)
		var out apitype.Webhook
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: string(body)}), http.StatusCreated, &out)
		require.Equal(t, filter, out.EventTypes)
		return out.ID
	}
	exact := create("/exact", []string{"order.created"})
	wild := create("/wild", []string{"order.*"})
	all := create("/all", []string{})
	bank := create("/bank", []string{"bank_transfer_*", "refund.issued"})

	send := func(eventType string) []string {
		t.Helper()
		var ev apitype.Enqueued
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_filter","type":"` + eventType + `","data":{}}`}), http.StatusAccepted, &ev)
		var hooks []string
		for _, d := range ev.Deliveries {
			hooks = append(hooks, d.WebhookID)
		}
		slices.Sort(hooks)
		return hooks
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	require.Equal(t, sorted(exact, wild, all), send("order.created"))
	require.Equal(t, sorted(wild, all), send("order.refunded"))
	require.Equal(t, sorted(all, bank), send("bank_transfer_approved"))
	require.Equal(t, sorted(all, bank), send("refund.issued"))
	require.Equal(t, sorted(all), send("refund.issued_late"), "an entry without * is exact")

	// Changed between two events: only the later one follows the new filter.
	var view apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + exact, body: `{"event_types":["order.refunded","order.refunded"]}`}), http.StatusOK, &view)
	require.Equal(t, []string{"order.refunded"}, view.EventTypes, "sorted, without repeats")
	require.Equal(t, sorted(exact, wild, all), send("order.refunded"))
	require.Equal(t, sorted(wild, all), send("order.created"))
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + exact, body: `{"event_types":[]}`}), http.StatusOK, &view)
	require.Equal(t, sorted(exact, wild, all), send("order.created"), "empty takes every type")

	for _, bad := range []struct{ filter, field string }{
		{`["Order.Created"]`, "event_types[0]"}, {`["order.created","*"]`, "event_types[1]"}, {`["or*der"]`, "event_types[0]"},
		{`["order.**"]`, "event_types[0]"}, {`[""]`, "event_types[0]"},
	} {
		requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + exact, body: `{"event_types":` + bad.filter + `}`}),
			http.StatusUnprocessableEntity, "invalid_event_type", bad.field)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("type_%d", i)
	}
	manyJSON, err := json.Marshal(map[string]any{"event_types": many})
	require.NoError(t, err)
	requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + exact, body: string(manyJSON)}), http.StatusUnprocessableEntity, "too_many_event_types", "event_types")
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + exact}), http.StatusOK, &view)
	require.Empty(t, view.EventTypes, "refused filters changed nothing")
}

// Pause without loss: while paused nothing is sent and new deliveries wait
// in state paused; a retry that comes due while paused waits too; resuming
// delivers every one, each on the schedule it had.
func TestPauseWithoutLoss(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(200))
	hook := b.createWebhook(t, "acct_pause", recv.URL+"/hook")

	var view apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"paused":true}`}), http.StatusOK, &view)
	require.True(t, view.Paused)
	require.Equal(t, "manual", *view.PauseReason)
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"paused":true}`}), http.StatusOK, &view)
	require.True(t, view.Paused, "pausing twice is harmless")

	events := make([]string, 100)
	for i := range events {
		events[i] = fmt.Sprintf(`{"account_id":"acct_pause","type":"order.created","data":{"n":%d}}`, i)
	}
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: `{"events":[` + strings.Join(events, ",") + `]}`})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	// Every delivery waits in paused without a job, so nothing can send
	// it; a delivery sent would have ended succeeded instead.
	testwait.For(t, 10*time.Second, func() (bool, string) {
		var paused int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND state = 'paused' AND job_id IS NULL`, hook.ID).Scan(&paused))
		return paused == 100, fmt.Sprintf("%d of 100 deliveries paused without a job", paused)
	})
	require.Zero(t, recv.Count(), "nothing is sent while paused")

	resumeAt := time.Now()
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"paused":false}`}), http.StatusOK, &view)
	require.False(t, view.Paused)
	recv.Wait(t, 100, 30*time.Second)
	waitSettled(t, b.pool)

	// Each delivery's first attempt was scheduled when the delivery was
	// created (its place in the schedule kept), and made after the resume.
	rows, err := b.pool.Query(t.Context(), `
SELECT d.created_at, a.scheduled_at, a.started_at, d.state
FROM deliveries d JOIN attempt_log a ON a.delivery_id = d.id AND a.part_day = d.part_day AND a.number = 1
WHERE d.webhook_id = $1 ORDER BY a.scheduled_at, d.id`, hook.ID)
	require.NoError(t, err)
	n := 0
	var lastScheduled time.Time
	for rows.Next() {
		var created, scheduled, started time.Time
		var state string
		require.NoError(t, rows.Scan(&created, &scheduled, &started, &state))
		require.Equal(t, "succeeded", state)
		require.True(t, scheduled.Equal(created), "scheduled at creation: %v vs %v", scheduled, created)
		require.False(t, started.Before(resumeAt.Add(-time.Second)), "sent only after the resume")
		require.False(t, scheduled.Before(lastScheduled))
		lastScheduled = scheduled
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 100, n, "every delivery made its first attempt")
	var history []string
	hrows, err := b.pool.Query(t.Context(), `SELECT action || ':' || reason || ':' || deliveries FROM webhook_pauses WHERE webhook_id = $1 ORDER BY id`, hook.ID)
	require.NoError(t, err)
	for hrows.Next() {
		var h string
		require.NoError(t, hrows.Scan(&h))
		history = append(history, h)
	}
	require.Equal(t, []string{"pause:manual:0", "resume:manual:100"}, history, "pausing and resuming are recorded")
}

// A retry that comes due while the webhook is paused is neither sent nor
// lost: it waits in state paused with its schedule, and resuming sends it.
func TestRetryDueWhilePaused(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	var failures atomic.Int64
	var recv *testreceiver.Receiver
	var hookID string
	recv = testreceiver.New(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			// The first attempt fails, and the webhook is paused before its
			// answer arrives: the retry comes due while paused.
			require.NoError(t, store.PauseWebhook(r.Context(), b.pool, hookID, "", store.PauseManual, nil, time.Now()))
			failures.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	hook := b.createWebhook(t, "acct_retry_pause", recv.URL+"/hook")
	hookID = hook.ID
	var ev apitype.Enqueued
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_retry_pause","type":"order.created","data":{}}`}), http.StatusAccepted, &ev)
	recv.Wait(t, 1, 10*time.Second)

	// The retry comes due (30 ms after the failure at this scale) and
	// waits in paused with its schedule and without a job: nothing can
	// send it.
	var d apitype.Delivery
	testwait.For(t, 10*time.Second, func() (bool, string) {
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + ev.Deliveries[0].ID}), http.StatusOK, &d)
		var jobless bool
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT job_id IS NULL FROM deliveries WHERE id = $1`, d.ID).Scan(&jobless))
		due := d.NextAttemptAt != nil && time.Now().After(*d.NextAttemptAt)
		return d.State == "paused" && jobless && due, fmt.Sprintf("state %s, next attempt %v, without a job: %t", d.State, d.NextAttemptAt, jobless)
	})
	require.Equal(t, 1, d.AttemptCount)
	require.NotNil(t, d.NextAttemptAt, "its schedule is kept")
	due := *d.NextAttemptAt
	waitSettled(t, b.pool)
	require.Equal(t, 1, recv.Count(), "not sent while paused")

	var view apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"paused":false}`}), http.StatusOK, &view)
	recv.Wait(t, 2, 10*time.Second)
	waitSettled(t, b.pool)
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + ev.Deliveries[0].ID}), http.StatusOK, &d)
	require.Equal(t, "succeeded", d.State)
	require.Len(t, d.Attempts, 2)
	require.True(t, d.Attempts[1].ScheduledAt.Equal(due), "the retry went out on the schedule it had: %v vs %v", d.Attempts[1].ScheduledAt, due)
}
