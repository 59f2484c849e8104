package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testserver"
)

// The API page's Limits panel shows the account's webhooks used of the
// limit and the signed-in key's budgets; the dashboard's own calls count
// against the key like its API calls do, so once the key has spent its
// budget the page is refused 429 too.
func TestLimitsPanel(t *testing.T) {
	t.Parallel()

	srv := testserver.Start(t, func(c *server.Config) {
		c.DBMaxConns = 8
		c.MaxWorkers = 10
		// Two a minute: none comes back while the test runs.
		c.RateLimitManagement = admin.Rate{PerSecond: 2.0 / 60, Burst: 8}
	})
	b := &testBundle{srv: srv, base: srv.BaseURL, pool: srv.Pool(), http: &http.Client{Timeout: 10 * time.Second}}
	const account = "acct_limits_panel"
	k := b.createKey(t, "account", account)
	for i := range 3 {
		b.createWebhook(t, account, fmt.Sprintf("https://example.com/limits/%d", i))
	}

	// The API page makes eight API calls in process (its webhooks, each
	// one's deliveries and health, the limits): one page, one request.
	br := b.browser(t)
	br.signIn(t, k.Key)
	require.Equal(t, "3 of 20", elementText(br.last, "limit-webhooks"))
	require.Equal(t, "20000 at most (events × the webhooks each goes to)", elementText(br.last, "limit-fanout"))
	require.Equal(t, "2 requests a minute, 8 at once (7 left)", elementText(br.last, "limit-management"))
	require.Equal(t, "No limit", elementText(br.last, "limit-intake"))
	p := br.get(t, "/dashboard/settings/personal/api")
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, "2 requests a minute, 8 at once (6 left)", elementText(p.body, "limit-management"))

	for range 6 {
		b.api(t, http.MethodGet, "/v1/webhooks", k.Key, "", http.StatusOK, nil)
	}
	b.api(t, http.MethodGet, "/v1/webhooks", k.Key, "", http.StatusTooManyRequests, nil)
	p = br.get(t, "/dashboard/settings/personal/api")
	require.Equal(t, http.StatusTooManyRequests, p.status)
	require.Contains(t, text(p.body), "over its management rate limit")
	require.NotEmpty(t, p.header.Get("Retry-After"), "the API's Retry-After, passed on")

	// The admin key has no limit and sees the account's panel.
	operator := b.browser(t)
	operator.signIn(t, testserver.AdminKey)
	p = operator.get(t, "/dashboard/settings/personal/api?account_id="+account)
	require.Equal(t, http.StatusOK, p.status)
	require.Equal(t, "3 of 20", elementText(p.body, "limit-webhooks"))
	require.Equal(t, "No limit", elementText(p.body, "limit-management"))
}

// Sign-in with an invalid key counts as a failed key of the client's
// address, like the API's: past the limit the form answers 429 with
// Retry-After, while a valid key from the same address still signs in.
func TestSignInThrottle(t *testing.T) {
	t.Parallel()

	srv := testserver.Start(t, func(c *server.Config) {
		c.DBMaxConns = 8
		c.MaxWorkers = 10
		c.AuthFailureLimit = 2
	})
	b := &testBundle{srv: srv, base: srv.BaseURL, pool: srv.Pool(), http: &http.Client{Timeout: 10 * time.Second}}
	k := b.createKey(t, "account", "acct_signin_throttle")
	br := b.browser(t)
	br.get(t, "/dashboard/signin")
	// The form's token is renewed with each page shown.
	wrong := func() url.Values {
		return url.Values{"csrf": {br.csrf(t)}, "key": {"whk_not-a-real-key-0000000000000000000000000000"}}
	}
	for range 2 {
		require.Equal(t, http.StatusUnauthorized, br.post(t, "/dashboard/signin", wrong()).status)
	}
	p := br.post(t, "/dashboard/signin", wrong())
	require.Equal(t, http.StatusTooManyRequests, p.status)
	require.Equal(t, "60", p.header.Get("Retry-After"))
	require.Contains(t, elementText(p.body, "key-error"), "Too many invalid keys")
	// The API's failing keys from the address are throttled too.
	b.api(t, http.MethodGet, "/v1/webhooks", "whk_not-a-real-key-0000000000000000000000000000", "", http.StatusTooManyRequests, nil)

	br.signIn(t, k.Key)
}
