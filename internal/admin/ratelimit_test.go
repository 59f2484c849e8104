package admin_test

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testserver"
)

func TestParseRate(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		raw  string
		want admin.Rate
		err  bool
	}{
		{raw: "off", want: admin.RateOff},
		{raw: "0", want: admin.RateOff},
		{raw: "50/s,burst=100", want: admin.Rate{PerSecond: 50, Burst: 100}},
		{raw: " 50/s , burst=100 ", want: admin.Rate{PerSecond: 50, Burst: 100}},
		{raw: "50/s", want: admin.Rate{PerSecond: 50, Burst: 50}},
		{raw: "0.5/s", want: admin.Rate{PerSecond: 0.5, Burst: 1}},
		{raw: "120/m,burst=10", want: admin.Rate{PerSecond: 2, Burst: 10}},
		{raw: "3600/h", want: admin.Rate{PerSecond: 1, Burst: 1}},
		{raw: "", err: true},
		{raw: "50", err: true},
		{raw: "50/d", err: true},
		{raw: "-5/s", err: true},
		{raw: "x/s", err: true},
		{raw: "50/s,burst=0", err: true},
		{raw: "50/s,bust=10", err: true},
		{raw: "NaN/s", err: true},
	} {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			got, err := admin.ParseRate(tt.raw)
			if tt.err {
				require.Error(t, err)
				require.Contains(t, err.Error(), "is not off or a rate such as 50/s")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			if got.On() {
				again, err := admin.ParseRate(got.String())
				require.NoError(t, err)
				require.Equal(t, got, again, "String reads back")
			}
		})
	}
}

// scrapeMetrics returns the server's /metrics page.
func scrapeMetrics(t *testing.T, b *testBundle) string {
	t.Helper()
	resp, err := http.Get("http://" + b.srv.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// slowRate refills one token a minute: a test's requests can't earn one
// back, whatever the machine's speed.
var slowRate = func(burst int) admin.Rate { return admin.Rate{PerSecond: 1.0 / 60, Burst: burst} }

// An account key spends its management budget (three requests at once
// here) and is then answered 429 rate_limited with Retry-After and the
// RateLimit fields; other keys, admin keys (no limit by default), event
// intake and health checks are not held up; the refusal is counted.
func TestRateLimitManagement(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, func(c *server.Config) { c.RateLimitManagement = slowRate(3) })
	const account = "acct_rate"
	key := bearer(b.createKey(t, store.ScopeAccount, account).Key)
	other := bearer(b.createKey(t, store.ScopeAccount, "acct_rate_other").Key)

	for i := range 3 {
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/webhooks", auth: key})
		require.Equal(t, http.StatusOK, resp.status, "request %d: %s", i, resp.body)
		require.Equal(t, `"management";q=3;w=180`, resp.header.Get("RateLimit-Policy"))
		require.Equal(t, fmt.Sprintf(`"management";r=%d;t=`, 2-i), resp.header.Get("RateLimit")[:len(`"management";r=0;t=`)])
	}
	// Any management route, reads and writes alike.
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", auth: key, body: `{"url":"http://127.0.0.2:9/rate"}`})
	requireError(t, resp, http.StatusTooManyRequests, "rate_limited", "")
	retry, err := strconv.Atoi(resp.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds")
	require.GreaterOrEqual(t, retry, 1)
	require.LessOrEqual(t, retry, 60)
	require.Equal(t, `"management";r=0;t=`+strconv.Itoa(retry), resp.header.Get("RateLimit"))
	require.Contains(t, string(resp.body), "management rate limit")
	require.Zero(t, countTable(t, b.pool, "webhooks"), "a refused request changes nothing")

	require.Equal(t, http.StatusOK, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks", auth: other}).status, "another key has its own budget")
	for range 5 {
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=" + account})
		require.Equal(t, http.StatusOK, resp.status, "admin keys have no limit by default")
		require.Empty(t, resp.header.Get("RateLimit"))
	}
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: key,
		body: `{"type":"rate.test","data":{}}`}).status, "event intake is another budget")
	require.Equal(t, http.StatusOK, b.do(t, request{method: http.MethodGet, path: "/healthz", auth: noAuth}).status)

	require.Contains(t, scrapeMetrics(t, b), `webhookd_rate_limited_total{budget="management",scope="account"} 1`)
}

// With an intake limit, events are counted, not requests: a batch takes
// as many tokens as it holds, a batch larger than the burst passes only
// with the bucket full (and leaves it in debt), and a refusal stores
// nothing.
func TestRateLimitIntake(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, func(c *server.Config) {
		c.RateLimitIntakeAccount = slowRate(10)
		c.RateLimitIntakeEventsWrite = admin.RateOff
	})
	const account = "acct_intake"
	key := bearer(b.createKey(t, store.ScopeAccount, account).Key)
	batch := func(n int) string {
		events := make([]string, n)
		for i := range events {
			events[i] = `{"account_id":"` + account + `","type":"intake.test","data":{}}`
		}
		return `{"events":[` + strings.Join(events, ",") + `]}`
	}

	resp := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", auth: key, body: batch(8)})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	require.Equal(t, `"intake";q=10;w=600`, resp.header.Get("RateLimit-Policy"))
	resp = b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", auth: key, body: batch(3)})
	requireError(t, resp, http.StatusTooManyRequests, "rate_limited", "")
	require.NotEmpty(t, resp.header.Get("Retry-After"))
	require.Contains(t, string(resp.body), "events")
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: key, body: `{"type":"intake.test","data":{}}`}).status)
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: key, body: `{"type":"intake.test","data":{}}`}).status)
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: key, body: `{"type":"intake.test","data":{}}`}), http.StatusTooManyRequests, "rate_limited", "")
	require.Equal(t, 10, countTable(t, b.pool, "events"), "refused events are not stored")

	// A fresh key's full bucket takes a batch beyond the burst; then it owes.
	big := bearer(b.createKey(t, store.ScopeAccount, account).Key)
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", auth: big, body: batch(15)}).status)
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: big, body: `{"type":"intake.test","data":{}}`}), http.StatusTooManyRequests, "rate_limited", "")

	// A malformed batch still gets its 400; the management budget and
	// other scopes are untouched.
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", auth: bearer(b.createKey(t, store.ScopeAccount, account).Key), body: `{"events":`}), http.StatusBadRequest, "invalid_json", "")
	require.Equal(t, http.StatusOK, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks", auth: key}).status)
	writer := bearer(b.createKey(t, store.ScopeEventsWrite, account).Key)
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", auth: writer, body: batch(20)}).status, "events:write keys: off")
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: batch(20)}).status, "admin keys: off by default")

	require.Contains(t, scrapeMetrics(t, b), `webhookd_rate_limited_total{budget="intake",scope="account"} 3`)
}

// Failed keys are counted, logged at warn without the key (one line per
// client address per interval, here with the clock stopped) and, past the
// limit, throttled per client address, taken through the trusted proxy's
// X-Forwarded-For: further failing keys get 429 auth_throttled, a valid
// key from the same address still works, other addresses are not held
// up, and IPv6 addresses count by /64. A missing key is counted, never
// throttled.
func TestAuthFailures(t *testing.T) {
	t.Parallel()

	core, logs := observer.New(zap.WarnLevel)
	stopped := time.Now()
	started := testserver.StartWithLogger(t, zap.New(core), func(c *server.Config) {
		c.AuthFailureLimit = 3
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Now = func() time.Time { return stopped }
	})
	b := &testBundle{srv: started.Server, pool: started.Pool(), keys: started.Keys, baseURL: started.BaseURL, client: &http.Client{Timeout: 10 * time.Second}}
	valid := bearer(b.createKey(t, store.ScopeAccount, "acct_auth").Key)
	wrong := "whk_" + strings.Repeat("B", 43)
	from := func(addr, auth string) *response {
		return b.do(t, request{method: http.MethodGet, path: "/v1/webhooks", auth: auth, header: map[string]string{"X-Forwarded-For": "198.51.100.1, " + addr}})
	}

	for i := range 3 {
		requireError(t, from("203.0.113.7", bearer(wrong)), http.StatusUnauthorized, "invalid_api_key", "Authorization")
		requireError(t, from("203.0.113.7", noAuth), http.StatusUnauthorized, "missing_api_key", "Authorization")
		require.Equal(t, http.StatusUnauthorized, from("2001:db8:1:2::"+strconv.Itoa(i+1), bearer("not-a-key")).status)
	}
	resp := from("203.0.113.7", bearer(wrong))
	requireError(t, resp, http.StatusTooManyRequests, "auth_throttled", "Authorization")
	retry, err := strconv.Atoi(resp.header.Get("Retry-After"))
	require.NoError(t, err)
	require.Equal(t, 60, retry)
	require.Equal(t, http.StatusOK, from("203.0.113.7", valid).status, "a valid key from a throttled address still works")
	requireError(t, from("203.0.113.7", noAuth), http.StatusUnauthorized, "missing_api_key", "Authorization")
	requireError(t, from("203.0.113.8", bearer(wrong)), http.StatusUnauthorized, "invalid_api_key", "Authorization")
	requireError(t, from("2001:db8:1:2:ffff::1", bearer(wrong)), http.StatusTooManyRequests, "auth_throttled", "Authorization")
	requireError(t, from("2001:db8:1:3::1", bearer(wrong)), http.StatusUnauthorized, "invalid_api_key", "Authorization")
	// River UI's admin guard counts the same failures.
	req, err := http.NewRequest(http.MethodGet, b.baseURL+"/riverui/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", wrong)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	riverResp, err := b.client.Do(req)
	require.NoError(t, err)
	riverResp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, riverResp.StatusCode)

	metrics := scrapeMetrics(t, b)
	require.Contains(t, metrics, `webhookd_auth_failures_total{reason="unknown"} 5`)
	require.Contains(t, metrics, `webhookd_auth_failures_total{reason="malformed"} 3`)
	require.Contains(t, metrics, `webhookd_auth_failures_total{reason="missing"} 4`)
	require.Contains(t, metrics, `webhookd_auth_failures_total{reason="throttled"} 3`)

	// One line per address while the clock stands still, whatever the
	// number of failures; never the key.
	refused := logs.FilterMessage("API key refused").All()
	clients := map[string]int{}
	for _, e := range refused {
		clients[e.ContextMap()["client"].(string)]++
		for _, v := range e.ContextMap() {
			require.NotContains(t, fmt.Sprint(v), wrong)
			require.NotContains(t, fmt.Sprint(v), "not-a-key")
		}
	}
	require.Equal(t, map[string]int{"203.0.113.7/32": 1, "2001:db8:1:2::/64": 1, "203.0.113.8/32": 1, "2001:db8:1:3::/64": 1}, clients)

	// The test servers' bootstrap key is 25 characters: warned at start.
	require.Less(t, len(testserver.AdminKey), server.BootstrapAdminKeyMinLen)
	warned := logs.FilterMessageSnippet("WEBHOOKD_BOOTSTRAP_ADMIN_KEY is shorter than 32 characters").All()
	require.Len(t, warned, 1)
	require.Equal(t, int64(len(testserver.AdminKey)), warned[0].ContextMap()["length"])
	require.NotContains(t, warned[0].Message, testserver.AdminKey)
}
