package admin_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
)

// GET /v1/limits: an account key sees its account's webhooks used of the
// limit and its own budgets with what is left; an admin key names the
// account; another account's is refused.
func TestLimits(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, func(c *server.Config) {
		c.RateLimitManagement = slowRate(10)
		c.RateLimitIntakeAccount = admin.Rate{PerSecond: 100, Burst: 200}
	})
	const account = "acct_limits"
	b.createWebhook(t, account, "http://127.0.0.2:9/limits/1")
	b.createWebhook(t, account, "http://127.0.0.2:9/limits/2")
	key := bearer(b.createKey(t, store.ScopeAccount, account).Key)

	type rate struct {
		Limited   bool    `json:"limited"`
		Unit      string  `json:"unit"`
		PerSecond float64 `json:"per_second"`
		Burst     int     `json:"burst"`
		Remaining *int    `json:"remaining"`
	}
	var out struct {
		AccountID string `json:"account_id"`
		Scope     string `json:"scope"`
		Webhooks  struct {
			Used  int `json:"used"`
			Limit int `json:"limit"`
		} `json:"webhooks"`
		FanoutPerRequest int `json:"fanout_per_request"`
		RateLimits       struct {
			Management rate `json:"management"`
			Intake     rate `json:"intake"`
		} `json:"rate_limits"`
		Bodies struct {
			PerKeyBytes           int64 `json:"per_key_bytes"`
			MinRateBytesPerSecond int64 `json:"min_rate_bytes_per_second"`
		} `json:"bodies"`
	}
	b.do(t, request{method: http.MethodGet, path: "/v1/webhooks", auth: key})
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/limits", auth: key}), http.StatusOK, &out)
	require.Equal(t, account, out.AccountID)
	require.Equal(t, store.ScopeAccount, out.Scope)
	require.Equal(t, 2, out.Webhooks.Used)
	require.Equal(t, admin.MaxWebhooksPerAccountDefault, out.Webhooks.Limit)
	require.Equal(t, engine.MaxBatchSize*admin.MaxWebhooksPerAccountDefault, out.FanoutPerRequest)
	require.True(t, out.RateLimits.Management.Limited)
	require.Equal(t, "requests", out.RateLimits.Management.Unit)
	require.Equal(t, 10, out.RateLimits.Management.Burst)
	require.NotNil(t, out.RateLimits.Management.Remaining)
	require.Equal(t, 8, *out.RateLimits.Management.Remaining, "two requests so far, this one included")
	require.Equal(t, rate{Limited: true, Unit: "events", PerSecond: 100, Burst: 200, Remaining: out.RateLimits.Intake.Remaining}, out.RateLimits.Intake)
	require.Equal(t, 200, *out.RateLimits.Intake.Remaining)
	require.Equal(t, int64(admin.BodyBudgetDefault/admin.BodyBudgetKeyShare), out.Bodies.PerKeyBytes)
	require.Equal(t, int64(admin.BodyMinRateDefault), out.Bodies.MinRateBytesPerSecond)

	// The admin key names the account; its own budgets are off.
	out.RateLimits.Management = rate{}
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/limits?account_id=" + account}), http.StatusOK, &out)
	require.Equal(t, store.ScopeAdmin, out.Scope)
	require.Equal(t, 2, out.Webhooks.Used)
	require.Equal(t, rate{Unit: "requests"}, out.RateLimits.Management)
	requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/limits"}), http.StatusUnprocessableEntity, "missing_field", "account_id")
	requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/limits?account_id=acct_else", auth: key}), http.StatusForbidden, "account_not_allowed", "account_id")
	requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/limits?x=1", auth: key}), http.StatusBadRequest, "unknown_parameter", "x")
}
