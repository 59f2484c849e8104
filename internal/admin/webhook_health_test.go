package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

func (b *testBundle) webhookHealth(t *testing.T, id, auth string) *apitype.WebhookHealth {
	t.Helper()
	var out apitype.WebhookHealth
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + id + "/health", auth: auth}), http.StatusOK, &out)
	return &out
}

// healthFlushFast is the HealthFlushInterval of the tests that read
// endpoint health: written that often, it is there soon after the attempts.
const healthFlushFast = 50 * time.Millisecond

// waitHealth waits until the health of webhook id, as the API shows it,
// is done.
func (b *testBundle) waitHealth(t *testing.T, id string, done func(*apitype.WebhookHealth) bool) *apitype.WebhookHealth {
	t.Helper()
	var h *apitype.WebhookHealth
	testwait.For(t, 30*time.Second, func() (bool, string) {
		h = b.webhookHealth(t, id, "")
		return done(h), fmt.Sprintf("health of %s: %+v", id, *h)
	})
	return h
}

// waitHealthAttempts waits until the health of webhook id counts attempts
// attempts in the last hour.
func (b *testBundle) waitHealthAttempts(t *testing.T, id string, attempts int) *apitype.WebhookHealth {
	t.Helper()
	return b.waitHealth(t, id, func(h *apitype.WebhookHealth) bool { return h.LastHour.Attempts >= attempts })
}

// End to end through the real worker: a receiver that fails twice then
// succeeds, one that always fails (the delivery dies after ten attempts),
// and a webhook with no attempts; scoped like GET /v1/webhooks/{id}.
func TestWebhookHealth(t *testing.T) {
	t.Parallel()
	b := startFastServer(t, func(c *server.Config) { c.HealthFlushInterval = healthFlushFast })
	ctx := context.Background()

	flaky := testreceiver.New(t, testreceiver.Sequence(http.StatusInternalServerError, http.StatusBadGateway, http.StatusOK))
	failing := testreceiver.New(t, testreceiver.Status(http.StatusServiceUnavailable))
	flakyHook := b.createWebhook(t, "acct_health_flaky", flaky.URL+"/hook")
	deadHook := b.createWebhook(t, "acct_health_dead", failing.URL+"/hook")
	idleHook := b.createWebhook(t, "acct_health_idle", failing.URL+"/idle")

	started := time.Now()
	var flakyEv, deadEv apitype.Enqueued
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events",
		body: `{"account_id":"acct_health_flaky","type":"health.test","data":{}}`}), http.StatusAccepted, &flakyEv)
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events",
		body: `{"account_id":"acct_health_dead","type":"health.test","data":{}}`}), http.StatusAccepted, &deadEv)
	b.waitDeliveryState(t, flakyEv.Deliveries[0].ID, store.StateSucceeded)
	b.waitDeliveryState(t, deadEv.Deliveries[0].ID, store.StateDead)

	t.Run("RecoveredEndpoint", func(t *testing.T) {
		h := b.waitHealthAttempts(t, flakyHook.ID, 3)
		require.Equal(t, flakyHook.ID, h.WebhookID)
		require.Zero(t, h.ConsecutiveFailures)
		require.NotNil(t, h.LastSuccessAt)
		require.NotNil(t, h.LastFailureAt)
		require.True(t, h.LastFailureAt.Before(*h.LastSuccessAt), "failure %s, success %s", h.LastFailureAt, h.LastSuccessAt)
		require.False(t, h.LastFailureAt.Before(started.Add(-time.Second)))
		require.Equal(t, time.UTC, h.LastSuccessAt.Location())
		require.Equal(t, "http_status", *h.LastFailureKind)
		require.Equal(t, 3, h.LastHour.Attempts)
		require.Equal(t, 1, h.LastHour.Successes)
		require.Equal(t, 2, h.LastHour.Failures)
		require.NotNil(t, h.LastHour.SuccessRate)
		require.InDelta(t, 1.0/3, *h.LastHour.SuccessRate, 1e-9)
	})

	t.Run("DeadEndpoint", func(t *testing.T) {
		h := b.waitHealthAttempts(t, deadHook.ID, 10)
		require.Equal(t, 10, h.ConsecutiveFailures)
		require.Nil(t, h.LastSuccessAt)
		require.NotNil(t, h.LastFailureAt)
		require.Equal(t, "http_status", *h.LastFailureKind)
		require.Equal(t, 10, h.LastHour.Attempts)
		require.Zero(t, h.LastHour.Successes)
		require.Equal(t, 10, h.LastHour.Failures)
		require.NotNil(t, h.LastHour.SuccessRate)
		require.Zero(t, *h.LastHour.SuccessRate)
	})

	t.Run("NoAttempts", func(t *testing.T) {
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + idleHook.ID + "/health"})
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		require.JSONEq(t, `{"webhook_id":"`+idleHook.ID+`","consecutive_failures":0,"last_success_at":null,"last_failure_at":null,
			"last_failure_kind":null,"last_hour":{"attempts":0,"successes":0,"failures":0,"success_rate":null}}`, string(resp.body))
	})

	t.Run("Scopes", func(t *testing.T) {
		own := bearer(b.createKey(t, store.ScopeAccount, "acct_health_dead").Key)
		other := bearer(b.createKey(t, store.ScopeAccount, "acct_health_flaky").Key)
		require.Equal(t, 10, b.webhookHealth(t, deadHook.ID, own).ConsecutiveFailures)
		// Another account's webhook does not exist for this key.
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + deadHook.ID + "/health", auth: other}),
			http.StatusNotFound, "not_found", "id")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/wh_0193a5b2c4d87e6f9a0b1c2d3e4f5a6b/health"}),
			http.StatusNotFound, "not_found", "id")
		// Nor does a deleted one.
		gone := b.createWebhook(t, "acct_health_dead", failing.URL+"/gone")
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + gone.ID}).status)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + gone.ID + "/health"}), http.StatusNotFound, "not_found", "id")
	})

	t.Run("Client", func(t *testing.T) {
		c, err := client.New(b.baseURL, adminKey, nil)
		require.NoError(t, err)
		h, err := c.WebhookHealth(ctx, flakyHook.ID)
		require.NoError(t, err)
		want := b.webhookHealth(t, flakyHook.ID, "")
		require.Equal(t, flakyHook.ID, h.WebhookID)
		require.Equal(t, want.ConsecutiveFailures, h.ConsecutiveFailures)
		require.True(t, want.LastSuccessAt.Equal(*h.LastSuccessAt))
		require.True(t, want.LastFailureAt.Equal(*h.LastFailureAt))
		require.Equal(t, *want.LastFailureKind, *h.LastFailureKind)
		require.Equal(t, want.LastHour.Attempts, h.LastHour.Attempts)
		require.Equal(t, *want.LastHour.SuccessRate, *h.LastHour.SuccessRate)

		h, err = c.WebhookHealth(ctx, idleHook.ID)
		require.NoError(t, err)
		require.Nil(t, h.LastHour.SuccessRate)
		require.Nil(t, h.LastSuccessAt)

		other, err := client.New(b.baseURL, b.createKey(t, store.ScopeAccount, "acct_health_idle").Key, nil)
		require.NoError(t, err)
		_, err = other.WebhookHealth(ctx, flakyHook.ID)
		var apiErr *client.APIError
		require.ErrorAs(t, err, &apiErr, "%v", err)
		require.Equal(t, http.StatusNotFound, apiErr.Status)
		require.Equal(t, "not_found", apiErr.Code)
	})
}
