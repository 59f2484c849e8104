package dispatcher_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/server"
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

	r := dispatcher.NewReconcilerWithConfig(b.pool, &dispatcher.ReconcilerConfig{AutoPauseAfter: 3 * 24 * time.Hour})
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
	require.Equal(t, dispatcher.NotifyWebhookPaused, n.Event.Type)
	require.Equal(t, hook, n.Event.Data["webhook_id"])
	require.Equal(t, "auto", n.Event.Data["reason"])
	require.Zero(t, failing.Count())
}

// delivery.dead: deliveries that died in a window make one notification
// per webhook, with the count and the first ids, to the account's webhook
// subscribed to it; nothing is counted twice, and a call before the
// window has passed writes nothing.
func TestDeliveryDeadNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupServer(t, func(c *server.Config) {
		c.RetryScale = 0.0001 // ten attempts in about three seconds
		c.ReconcileInterval = time.Hour
	})
	failing := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	watcher := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook, _ := createWebhook(t, b.pool, b.keys, "acct_dead", failing.URL+"/hook")
	sub, subSecret := createWebhook(t, b.pool, b.keys, "acct_dead", watcher.URL+"/ops")
	_, err := b.pool.Exec(ctx, `UPDATE webhooks SET event_types = '{delivery.dead}' WHERE id = $1`, sub)
	require.NoError(t, err)
	die := func() []string {
		t.Helper()
		res := enqueue(t, b.pool, b.enqueuer, &dispatcher.Event{AccountID: "acct_dead", Type: "ping", Data: rawJSON(`{}`)})
		var ids []string
		for _, d := range res.Deliveries {
			if d.WebhookID == hook {
				require.Equal(t, "dead", waitFinished(t, b.pool, d.ID, 20*time.Second).State)
				ids = append(ids, d.ID)
			}
		}
		return ids
	}

	// Windows of a millisecond, ending a nanosecond behind the clock.
	r := dispatcher.NewReconcilerWithConfig(b.pool, &dispatcher.ReconcilerConfig{DeadNoticeWindow: time.Millisecond, DeadNoticeLag: time.Nanosecond})
	_, err = r.NotifyDead(ctx, b.srv.River()) // starts the cursor (unless the server's reconciler did)
	require.NoError(t, err)
	var ids []string
	for range 3 {
		ids = append(ids, die()...)
	}
	require.Len(t, ids, 3)

	n, err := r.NotifyDead(ctx, b.srv.River())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got := watcher.Wait(t, 1, 10*time.Second)[0]
	require.NoError(t, signer.Verify(got.Header.Get(signer.Header), got.Body, subSecret, time.Now(), 0))
	var note struct {
		Event struct {
			Type string `json:"type"`
			Data struct {
				WebhookID   string   `json:"webhook_id"`
				Count       int      `json:"count"`
				DeliveryIDs []string `json:"delivery_ids"`
			} `json:"data"`
		} `json:"event"`
	}
	require.NoError(t, json.Unmarshal(got.Body, &note))
	require.Equal(t, dispatcher.NotifyDeliveryDead, note.Event.Type)
	require.Equal(t, hook, note.Event.Data.WebhookID)
	require.Equal(t, 3, note.Event.Data.Count)
	require.ElementsMatch(t, ids, note.Event.Data.DeliveryIDs)

	// Each death is told once; a window not yet over tells nothing.
	time.Sleep(2 * time.Millisecond)
	n, err = r.NotifyDead(ctx, b.srv.River())
	require.NoError(t, err)
	require.Zero(t, n)
	die()
	hourly := dispatcher.NewReconcilerWithConfig(b.pool, &dispatcher.ReconcilerConfig{DeadNoticeWindow: time.Hour, DeadNoticeLag: time.Nanosecond})
	n, err = hourly.NotifyDead(ctx, b.srv.River())
	require.NoError(t, err)
	require.Zero(t, n, "at most one per window")
	require.Equal(t, 1, watcher.Count())
}
