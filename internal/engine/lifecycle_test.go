package engine_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
)

// 429 and 503 with Retry-After, on a fake clock: the next attempt waits
// max(scheduled delay, min(Retry-After, the delay after that)); other
// statuses' Retry-After is ignored.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	answers := []struct {
		status     int
		retryAfter func() string
	}{
		{http.StatusTooManyRequests, func() string { return "3600" }},                                                          // wants 1 h: capped at the delay after next, 90 s
		{http.StatusServiceUnavailable, func() string { return "60" }},                                                         // wants less than the schedule's 90 s: 90 s
		{http.StatusTooManyRequests, func() string { return time.Now().Add(300 * time.Second).UTC().Format(http.TimeFormat) }}, // an HTTP date ~300 s away: ~300 s (schedule 210 s)
		{http.StatusInternalServerError, func() string { return "9999" }},                                                      // not 429/503: the schedule's 450 s
		{http.StatusTooManyRequests, func() string { return "garbage" }},                                                       // unreadable: the schedule's 930 s
	}
	recv := testreceiver.New(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		a := answers[n-1]
		w.Header().Set("Retry-After", a.retryAfter())
		w.WriteHeader(a.status)
	})
	rig := newFakeClockRig(t, recv.URL+"/", "acct_ra")
	want := []struct{ lo, hi time.Duration }{
		{90 * time.Second, 90 * time.Second},
		{90 * time.Second, 90 * time.Second},
		{298 * time.Second, 300 * time.Second},
		{450 * time.Second, 450 * time.Second},
		{930 * time.Second, 930 * time.Second},
	}
	for i, w := range want {
		target := rig.target(t)
		if target.NextAttemptAt != nil {
			rig.clock.Set(*target.NextAttemptAt)
		}
		sentAt := rig.clock.Now()
		rig.work(t, *target.JobID)
		require.Equal(t, i+1, recv.Count())
		after := rig.target(t)
		require.NotNil(t, after.NextAttemptAt)
		gap := after.NextAttemptAt.Sub(sentAt)
		require.True(t, gap >= w.lo && gap <= w.hi, "attempt %d: next in %v, want %v to %v", i+1, gap, w.lo, w.hi)
	}
}

// Auto-pause on a stubbed clock: a webhook whose last attempt failed and
// that has had no success for the configured time is paused (reason auto);
// one with a recent success, or with auto-pause off, never is.
func TestAutoPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	failing, _ := createWebhook(t, pool, keys, "acct_ap", "https://failing.example/")
	recovered, _ := createWebhook(t, pool, keys, "acct_ap", "https://recovered.example/")
	never, _ := createWebhook(t, pool, keys, "acct_ap", "https://never.example/")
	young, _ := createWebhook(t, pool, keys, "acct_ap", "https://young.example/")
	_, err = pool.Exec(ctx, `UPDATE webhooks SET created_at = $2 WHERE id = ANY($1)`, []string{failing, recovered, never}, now.Add(-10*24*time.Hour))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE webhooks SET created_at = $2 WHERE id = $1`, young, now.Add(-24*time.Hour))
	require.NoError(t, err)
	health := func(id string, lastSuccess *time.Time, lastFailure time.Time, consecutive int) {
		_, err := pool.Exec(ctx, `INSERT INTO webhook_health (webhook_id, consecutive_failures, last_success_at, last_failure_at, last_failure_kind)
VALUES ($1, $2, $3, $4, 'http_status')`, id, consecutive, lastSuccess, lastFailure)
		require.NoError(t, err)
	}
	old, recent := now.Add(-4*24*time.Hour), now.Add(-time.Hour)
	health(failing, &old, recent, 500)                      // no success for 4 days: paused
	health(recovered, &recent, recent.Add(-time.Minute), 0) // succeeded an hour ago
	health(never, nil, recent, 80)                          // never succeeded, created 10 days ago: paused
	health(young, nil, recent, 20)                          // never succeeded, but created a day ago

	off := engine.NewReconcilerWithConfig(pool, &engine.ReconcilerConfig{Now: func() time.Time { return now }})
	paused, err := off.AutoPause(ctx)
	require.NoError(t, err)
	require.Empty(t, paused, "auto-pause is off by default")

	r := engine.NewReconcilerWithConfig(pool, &engine.ReconcilerConfig{AutoPauseAfter: 3 * 24 * time.Hour, Now: func() time.Time { return now }})
	paused, err = r.AutoPause(ctx)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{failing, never}, paused)
	for _, id := range []string{failing, never} {
		w, err := store.GetWebhook(ctx, pool, id)
		require.NoError(t, err)
		require.NotNil(t, w.PausedAt)
		require.Equal(t, store.PauseAuto, *w.PauseReason)
	}
	for _, id := range []string{recovered, young} {
		w, err := store.GetWebhook(ctx, pool, id)
		require.NoError(t, err)
		require.Nil(t, w.PausedAt)
	}
	var recorded int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM webhook_pauses WHERE action = 'pause' AND reason = 'auto'`).Scan(&recorded))
	require.Equal(t, 2, recorded)
	paused, err = r.AutoPause(ctx)
	require.NoError(t, err)
	require.Empty(t, paused, "a paused webhook is not paused again")
}

// A delivery created paused by an enqueue that raced a resume is resumed by
// the reconciler.
func TestReconcilerResumesStrandedPaused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Status(200))
	hook, _ := createWebhook(t, b.pool, b.keys, "acct_strand", recv.URL+"/")
	require.NoError(t, store.PauseWebhook(ctx, b.pool, hook, "", store.PauseManual, nil, time.Now()))
	res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_strand", Type: "ping", Data: rawJSON(`{}`)})
	// The resume "commits" without seeing it: only the webhook is unpaused.
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return store.UnpauseWebhook(ctx, tx, hook, "") }))
	r := engine.NewReconciler(b.pool, nil)
	n, err := r.ResumeStranded(ctx, b.srv.River())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d := waitFinished(t, b.pool, res.Deliveries[0].ID, 10*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)
	require.Equal(t, 1, recv.Count())
}
