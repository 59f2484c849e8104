package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/signer"
)

// notification is a notification's envelope as a receiver gets it.
type notification struct {
	Event struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	} `json:"event"`
}

func decodeNotification(t *testing.T, req testreceiver.Request) *notification {
	t.Helper()
	var n notification
	require.NoError(t, json.Unmarshal(req.Body, &n), "body: %s", req.Body)
	return &n
}

// The operator's notifications: WEBHOOKD_NOTIFY_URL gets webhook.paused
// and webhook.resumed, signed with WEBHOOKD_NOTIFY_SECRET, on a private
// address although private networks are refused for every webhook; an
// account's webhook that names the type in its event_types gets one too
// (not the webhook it is about), written with the pause; the internal
// account is refused to writes and account listings, its deliveries listed
// for an admin. Bad input is 422 naming the field.
func TestNotifications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const operatorSecret = "whsec_operator-notify-secret"
	ops := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	b := startServerWith(t, false, func(c *server.Config) {
		c.NotifyURL, c.NotifySecret = ops.URL+"/ops", operatorSecret
	})

	// 127.0.0.2 is refused for an account's webhook...
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_n","url":"` + ops.URL + `/x"}`}),
		http.StatusUnprocessableEntity, "private_address", "url")
	w1 := b.createWebhook(t, "acct_n", "https://hooks.example.com/w1")
	var w2 apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_n","url":"https://hooks.example.com/w2","event_types":["webhook.paused","webhook.resumed"]}`}), http.StatusCreated, &w2)
	other := b.createWebhook(t, "acct_other", "https://hooks.example.com/other")

	// ...but the operator's notifications get there.
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + w1.ID, body: `{"paused":true}`}), http.StatusOK, &apitype.Webhook{})
	got := ops.Wait(t, 1, 10*time.Second)[0]
	require.NoError(t, signer.Verify(got.Header.Get(signer.Header), got.Body, operatorSecret, time.Now(), 0))
	n := decodeNotification(t, got)
	require.Equal(t, "webhook.paused", n.Event.Type)
	require.Equal(t, w1.ID, n.Event.Data["webhook_id"])
	require.Equal(t, "acct_n", n.Event.Data["account_id"])
	require.Equal(t, "manual", n.Event.Data["reason"])

	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + w1.ID, body: `{"paused":false}`}), http.StatusOK, &apitype.Webhook{})
	got = ops.Wait(t, 2, 10*time.Second)[1]
	n = decodeNotification(t, got)
	require.Equal(t, "webhook.resumed", n.Event.Type)
	require.Equal(t, w1.ID, n.Event.Data["webhook_id"])

	// The subscriber got both as deliveries of the internal account; the
	// webhook they are about and the filter-less webhook of another
	// account got none.
	count := func(webhookID, eventType string) int {
		var c int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND event_type = $2 AND account_id = '_webhookd'`, webhookID, eventType).Scan(&c))
		return c
	}
	require.Equal(t, 1, count(w2.ID, "webhook.paused"))
	require.Equal(t, 1, count(w2.ID, "webhook.resumed"))
	require.Zero(t, count(w1.ID, "webhook.paused"))
	require.Zero(t, count(other.ID, "webhook.paused"))
	// Pausing the subscriber notifies the operator, not the subscriber.
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + w2.ID, body: `{"paused":true}`}), http.StatusOK, &apitype.Webhook{})
	ops.Wait(t, 3, 10*time.Second)
	require.Equal(t, 1, count(w2.ID, "webhook.paused"))
	// Pausing a paused webhook changes nothing and notifies no one.
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + w2.ID, body: `{"paused":true}`}), http.StatusOK, &apitype.Webhook{})

	// An admin lists the internal account's deliveries (replayable like
	// any); it is not an account to write to or list webhooks of.
	var page struct {
		Data []map[string]any `json:"data"`
	}
	resp := b.do(t, request{method: http.MethodGet, path: "/v1/deliveries?account_id=_webhookd"})
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.NoError(t, json.Unmarshal(resp.body, &page))
	require.Len(t, page.Data, 5, "three to the operator, two to the subscriber: %s", resp.body)
	requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=_webhookd"}), http.StatusUnprocessableEntity, "reserved_account", "account_id")
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"_webhookd","url":"https://hooks.example.com/x"}`}),
		http.StatusUnprocessableEntity, "reserved_account", "account_id")

	// Bad input: 422 naming the field, nothing changed.
	before := countRows(t, b.pool)
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_n","url":"https://hooks.example.com/w3","event_types":["webhook.pausd"]}`}),
		http.StatusUnprocessableEntity, "unknown_notification_type", "event_types[0]")
	requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + w1.ID, body: `{"event_types":["bank_transfer_approved","endpoint.down"]}`}),
		http.StatusUnprocessableEntity, "unknown_notification_type", "event_types[1]")
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_n","type":"webhook.paused","data":{}}`}),
		http.StatusUnprocessableEntity, "reserved_event_type", "type")
	// A webhook that receives events subscribing to notifications (about
	// itself, among others): a second webhook must take them.
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_n","url":"https://hooks.example.com/w4","event_types":["bank_transfer_*","delivery.dead"]}`}),
		http.StatusUnprocessableEntity, "notification_self_subscription", "event_types")
	requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + w2.ID, body: `{"event_types":["webhook.paused","order.created"]}`}),
		http.StatusUnprocessableEntity, "notification_self_subscription", "event_types")
	require.Equal(t, before, countRows(t, b.pool))

	// The notifications' deliveries are hidden from the listing of every
	// account's dead deliveries, and listed when their account is named.
	_, err := b.pool.Exec(ctx, `UPDATE deliveries SET state = 'dead', finished_at = now() WHERE account_id = '_webhookd'`)
	require.NoError(t, err)
	listed := func(query string) (ids []string) {
		t.Helper()
		var page struct {
			Data []struct {
				AccountID string `json:"account_id"`
			} `json:"data"`
		}
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/deliveries?" + query})
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		require.NoError(t, json.Unmarshal(resp.body, &page))
		for _, d := range page.Data {
			ids = append(ids, d.AccountID)
		}
		return ids
	}
	require.NotContains(t, listed("state=dead"), "_webhookd")
	require.Contains(t, listed("state=dead&account_id=_webhookd"), "_webhookd")
	var kept apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + w2.ID}), http.StatusOK, &kept)
	require.Equal(t, []string{"webhook.paused", "webhook.resumed"}, kept.EventTypes)

	// The catalogue lists the four types with their schemas.
	for _, typ := range []string{"webhook.paused", "webhook.resumed", "delivery.dead", "endpoint.failing"} {
		var et struct {
			Type   string         `json:"type"`
			Schema map[string]any `json:"schema"`
		}
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/event-types/" + typ})
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		require.NoError(t, json.Unmarshal(resp.body, &et))
		require.Equal(t, typ, et.Type)
		require.NotEmpty(t, et.Schema["properties"])
	}
}

// A 410 that pauses a webhook (on_gone pause) notifies, in the same
// transaction, the account's webhook subscribed to webhook.paused: a real
// delivery signed with the subscriber's own secret, reason gone. The
// webhook it is about gets nothing more.
func TestNotificationOfGone(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	gone := testreceiver.New(t, testreceiver.Status(http.StatusGone))
	watcher := testreceiver.New(t, testreceiver.Status(http.StatusOK))

	var hook, sub apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_ng","url":"` + gone.URL + `/hook","on_gone":"pause","event_types":["order.created"]}`}), http.StatusCreated, &hook)
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_ng","url":"` + watcher.URL + `/ops","event_types":["webhook.paused"]}`}), http.StatusCreated, &sub)
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_ng","type":"order.created","data":{}}`})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)

	got := watcher.Wait(t, 1, 10*time.Second)[0]
	require.NoError(t, signer.Verify(got.Header.Get(signer.Header), got.Body, sub.Secret, time.Now(), 0))
	n := decodeNotification(t, got)
	require.Equal(t, "webhook.paused", n.Event.Type)
	require.Equal(t, hook.ID, n.Event.Data["webhook_id"])
	require.Equal(t, "gone", n.Event.Data["reason"])
	require.Equal(t, 1, gone.Count(), "the paused webhook got its one attempt and no notification")
}

// endpoint.failing: written once a webhook's consecutive failed attempts
// reach WEBHOOKD_ENDPOINT_FAILING_AFTER (with the health that crosses it),
// to the account's webhook subscribed to it; not again while the failures
// go on (hysteresis), again after a success and a new run of failures.
func TestEndpointFailingNotification(t *testing.T) {
	t.Parallel()
	b := startServerWith(t, true, func(c *server.Config) {
		c.EndpointFailingAfter = 3
		c.HealthFlushInterval = healthFlushFast
	})
	failing := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	watcher := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	var hook, sub apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_f","url":"` + failing.URL + `/hook","event_types":["order.created"]}`}), http.StatusCreated, &hook)
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_f","url":"` + watcher.URL + `/ops","event_types":["endpoint.failing"]}`}), http.StatusCreated, &sub)
	send := func() {
		t.Helper()
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_f","type":"order.created","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	}

	send()
	got := watcher.Wait(t, 1, 20*time.Second)[0]
	require.NoError(t, signer.Verify(got.Header.Get(signer.Header), got.Body, sub.Secret, time.Now(), 0))
	n := decodeNotification(t, got)
	require.Equal(t, "endpoint.failing", n.Event.Type)
	require.Equal(t, hook.ID, n.Event.Data["webhook_id"])
	require.Equal(t, float64(3), n.Event.Data["threshold"])
	require.GreaterOrEqual(t, n.Event.Data["consecutive_failures"], float64(3))
	require.Equal(t, "http_status", n.Event.Data["last_failure_kind"])

	// The notification is written in the transaction of the health flush
	// that crosses the threshold: once health counting 6 failures in a row
	// is written, every flush since the first notification has written
	// whatever it would.
	notifications := func() int {
		var c int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND event_type = 'endpoint.failing'`, sub.ID).Scan(&c))
		return c
	}

	// The delivery fails all ten attempts (about 30 s at this scale is
	// too long to wait for: 6 is enough) and no second notification comes.
	failing.Wait(t, 6, 20*time.Second)
	b.waitHealth(t, hook.ID, func(h *apitype.WebhookHealth) bool { return h.ConsecutiveFailures >= 6 })
	require.Equal(t, 1, notifications(), "not again while the failures go on")
	require.Equal(t, 1, watcher.Count(), "not again while the failures go on")

	// A success re-arms it once it is written; a new run of failures
	// notifies again.
	failing.SetRespond(testreceiver.Status(http.StatusOK))
	send()
	b.waitHealth(t, hook.ID, func(h *apitype.WebhookHealth) bool { return h.ConsecutiveFailures == 0 && h.LastSuccessAt != nil })
	failing.SetRespond(testreceiver.Status(http.StatusInternalServerError))
	send()
	got = watcher.Wait(t, 2, 30*time.Second)[1]
	n = decodeNotification(t, got)
	require.Equal(t, "endpoint.failing", n.Event.Type)
	require.Equal(t, hook.ID, n.Event.Data["webhook_id"])
}
