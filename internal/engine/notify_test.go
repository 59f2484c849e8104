package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/webhookrule"
	"github.com/mono/webhookd/signer"
)

// An auto-pause writes webhook.paused (reason auto) with the pause: the
// account's webhook subscribed to it receives it, signed with its own
// secret; the paused webhook does not.
func TestAutoPauseNotifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupServer(t, nil)
	failing := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	watcher := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook, _ := createWebhook(t, b.pool, b.keys, "acct_apn", failing.URL+"/hook")
	sub, subSecret := createWebhook(t, b.pool, b.keys, "acct_apn", watcher.URL+"/ops")
	_, err := b.pool.Exec(ctx, `UPDATE webhooks SET event_types = '{webhook.paused}' WHERE id = $1`, sub)
	require.NoError(t, err)
	now := time.Now()
	_, err = b.pool.Exec(ctx, `UPDATE webhooks SET created_at = $2 WHERE id = $1`, hook, now.Add(-10*24*time.Hour))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO webhook_health (webhook_id, consecutive_failures, last_failure_at, last_failure_kind) VALUES ($1, 50, $2, 'timeout')`, hook, now.Add(-time.Hour))
	require.NoError(t, err)

	r := engine.NewReconcilerWithConfig(b.pool, &engine.ReconcilerConfig{AutoPauseAfter: 3 * 24 * time.Hour})
	paused, err := r.AutoPauseNotifying(ctx, b.srv.River())
	require.NoError(t, err)
	require.Equal(t, []string{hook}, paused)

	got := watcher.Wait(t, 1, 10*time.Second)[0]
	require.NoError(t, signer.Verify(got.Header.Get(signer.Header), got.Body, subSecret, time.Now(), 0))
	var n struct {
		Event struct {
			Type string            `json:"type"`
			Data map[string]string `json:"data"`
		} `json:"event"`
	}
	require.NoError(t, json.Unmarshal(got.Body, &n))
	require.Equal(t, webhookrule.NotifyWebhookPaused, n.Event.Type)
	require.Equal(t, hook, n.Event.Data["webhook_id"])
	require.Equal(t, "auto", n.Event.Data["reason"])
	require.Zero(t, failing.Count())
}

// delivery.dead is written in the transaction that records the death: the
// moment a delivery reads dead its notification exists (no reconciler runs:
// its interval is an hour), and it reaches the account's webhook subscribed
// to it, signed with that webhook's secret. Deaths within the window of the
// webhook's last notification go into one notification, sent when that
// window ends, with their count and ids; each death is told once.
func TestDeliveryDeadNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Long beside the 15 s before sending when a notification stops taking
	// deaths, so that the two deaths below land in one on a loaded machine.
	const window = 75 * time.Second
	b := setupServer(t, func(c *server.Config) {
		c.RetryScale = 0.0001 // ten attempts in about three seconds
		c.ReconcileInterval = time.Hour
		c.DeadNoticeWindow = window
	})
	failing := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	watcher := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook, _ := createWebhook(t, b.pool, b.keys, "acct_dead", failing.URL+"/hook")
	sub, subSecret := createWebhook(t, b.pool, b.keys, "acct_dead", watcher.URL+"/ops")
	_, err := b.pool.Exec(ctx, `UPDATE webhooks SET event_types = '{delivery.dead}' WHERE id = $1`, sub)
	require.NoError(t, err)
	type notice struct {
		EventID     string
		Count       int
		DeliveryIDs []string
		DueAt       time.Time
	}
	// noticeOf reads, without waiting, the notification to sub that names
	// delivery id.
	noticeOf := func(id string) notice {
		t.Helper()
		var (
			n    notice
			body []byte
		)
		err := b.pool.QueryRow(ctx, `
SELECT e.id, e.body, coalesce(d.next_attempt_at, e.created_at) FROM events e JOIN deliveries d ON d.event_id = e.id AND d.part_day = e.part_day
WHERE e.account_id = $1 AND e.type = 'delivery.dead' AND d.webhook_id = $2
  AND convert_from(e.body, 'UTF8')::jsonb -> 'event' -> 'data' -> 'delivery_ids' ? $3`, engine.NotifyAccount, sub, id).
			Scan(&n.EventID, &body, &n.DueAt)
		require.NoError(t, err, "no delivery.dead naming %s once it is dead", id)
		var env struct {
			Event struct {
				Data engine.DeliveryDeadData `json:"data"`
			} `json:"event"`
		}
		require.NoError(t, json.Unmarshal(body, &env))
		require.Equal(t, hook, env.Event.Data.WebhookID)
		n.Count, n.DeliveryIDs = env.Event.Data.Count, env.Event.Data.DeliveryIDs
		return n
	}
	die := func(events int) []string {
		t.Helper()
		var ids []string
		for range events {
			res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_dead", Type: "ping", Data: rawJSON(`{}`)})
			for _, d := range res.Deliveries {
				if d.WebhookID == hook {
					ids = append(ids, d.ID)
				}
			}
		}
		for _, id := range ids {
			require.Equal(t, "dead", waitFinished(t, b.pool, id, 30*time.Second).State)
			noticeOf(id) // there as soon as the death is
		}
		return ids
	}
	received := func(n int) (int, []string) {
		t.Helper()
		got := watcher.Wait(t, n, window+30*time.Second)[n-1]
		require.NoError(t, signer.Verify(got.Header.Get(signer.Header), got.Body, subSecret, time.Now(), 0))
		var env struct {
			Event struct {
				Type string                  `json:"type"`
				Data engine.DeliveryDeadData `json:"data"`
			} `json:"event"`
		}
		require.NoError(t, json.Unmarshal(got.Body, &env))
		require.Equal(t, webhookrule.NotifyDeliveryDead, env.Event.Type)
		require.Equal(t, hook, env.Event.Data.WebhookID)
		return env.Event.Data.Count, env.Event.Data.DeliveryIDs
	}

	// The first death after a quiet window is told at once.
	first := die(1)
	firstNotice := noticeOf(first[0])
	count, ids := received(1)
	require.Equal(t, 1, count)
	require.Equal(t, first, ids)

	// Two more within the window: one notification, due when the window
	// ends, that both deaths wrote (each in its own recording, or both in
	// one), not sent before then.
	more := die(2)
	a, c := noticeOf(more[0]), noticeOf(more[1])
	require.Equal(t, a.EventID, c.EventID, "one notification per window")
	require.NotEqual(t, firstNotice.EventID, a.EventID)
	require.Equal(t, 2, c.Count)
	require.ElementsMatch(t, more, c.DeliveryIDs)
	require.False(t, a.DueAt.Before(firstNotice.DueAt.Add(window)), "due %s, a window after %s", a.DueAt, firstNotice.DueAt)
	require.Equal(t, 1, watcher.Count(), "not sent before its window ends")
	count, ids = received(2)
	require.False(t, time.Now().Before(firstNotice.DueAt.Add(window)))
	require.Equal(t, 2, count)
	require.ElementsMatch(t, more, ids)
	require.Never(t, func() bool { return watcher.Count() > 2 }, 2*time.Second, 100*time.Millisecond, "each death told once")
}

// A death commits with its notification or not at all, and one webhook's
// failure leaves the rest of the batch alone: when writing the notification
// of webhook B's death fails, that death is not recorded (its delivery stays
// pending, without an attempt), while the same batch's success and webhook
// A's death, with what was written for it, commit.
func TestDeathCommitsWithItsNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	hookA, _ := createWebhook(t, pool, keys, "acct_atomic", "http://127.0.0.2:1/a")
	hookB, _ := createWebhook(t, pool, keys, "acct_atomic", "http://127.0.0.2:1/b")
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	of := map[string]string{} // delivery → webhook
	var ids []string
	for range 2 {
		res := enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_atomic", Type: "ping", Data: rawJSON(`{}`)})
		for _, d := range res.Deliveries {
			ids, of[d.ID] = append(ids, d.ID), d.WebhookID
		}
	}
	for i, id := range ids {
		_, err := pool.Exec(ctx, `UPDATE deliveries SET job_id = $2 WHERE id = $1`, id, int64(2000+i))
		require.NoError(t, err)
	}
	byKey, err := store.NewByKeyPool(ctx, pool.Config(), 2)
	require.NoError(t, err)
	t.Cleanup(byKey.Close)
	targets, err := store.GetTargets(ctx, byKey, ids)
	require.NoError(t, err)

	// Event 1: A succeeds, B dies. Event 2: A dies, B fails (pending).
	now := time.Now().UTC().Truncate(time.Microsecond)
	next := now.Add(time.Minute)
	status := 500
	var rs []store.Recording
	for i, target := range targets {
		o := &store.Outcome{State: store.StateDead, Now: now}
		switch {
		case i < 2 && of[target.DeliveryID] == hookA:
			o.State, status = store.StateSucceeded, 200
		case i >= 2 && of[target.DeliveryID] == hookB:
			o.State, o.NextAttemptAt = store.StatePending, &next
		}
		code := status
		rs = append(rs, store.Recording{Target: target, JobID: int64(2000 + i), Outcome: o, Attempt: &store.AttemptRecord{
			Number: 1, Generation: 1, Counted: true, ScheduledAt: now, StartedAt: now, StatusCode: &code, SignatureT: now.Unix()}})
		status = 500
	}
	boom := errors.New("notification refused")
	var told []string
	recorded, failed, err := store.RecordAttemptsNotifying(ctx, byKey, rs, func(ctx context.Context, tx pgx.Tx, deaths []store.Recording) error {
		require.Len(t, deaths, 1)
		if _, err := tx.Exec(ctx, `INSERT INTO webhookd_cursors (name, position) VALUES ($1, 1)`, "test:"+deaths[0].Target.DeliveryID); err != nil {
			return err
		}
		told = append(told, deaths[0].Target.DeliveryID)
		if deaths[0].Target.WebhookID == hookB {
			return boom
		}
		return nil
	})
	require.NoError(t, err)
	require.ErrorIs(t, failed, boom)
	require.Len(t, told, 2, "each webhook's deaths handed over once")

	for i, r := range rs {
		id := r.Target.DeliveryID
		d, err := store.GetDelivery(ctx, pool, id)
		require.NoError(t, err)
		var written bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhookd_cursors WHERE name = $1)`, "test:"+id).Scan(&written))
		if r.Outcome.State == store.StateDead && of[id] == hookB {
			require.False(t, recorded[i], "B's death rolled back with its notification")
			require.Equal(t, store.StatePending, d.State)
			require.Zero(t, d.Attempts)
			require.Empty(t, d.AttemptList)
			require.False(t, written)
			continue
		}
		require.True(t, recorded[i], "delivery %d (%s) recorded", i, r.Outcome.State)
		require.Equal(t, r.Outcome.State, d.State)
		require.Len(t, d.AttemptList, 1)
		require.Equal(t, r.Outcome.State == store.StateDead, written, "what the hook wrote commits with the death")
	}
}
