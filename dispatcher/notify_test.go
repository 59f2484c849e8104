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
