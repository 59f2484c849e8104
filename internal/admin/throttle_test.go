package admin_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// rate_limit_per_second through POST, PATCH and GET: 1–100 or null (no
// limit), absent leaves it as it is, anything else is refused naming the
// field.
func TestWebhookRateLimitSetting(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)

	var created apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks",
		body: `{"account_id":"acct_rate","url":"https://rate.example.com/hook","rate_limit_per_second":5}`}), http.StatusCreated, &created)
	require.NotNil(t, created.RateLimitPerSecond)
	require.Equal(t, 5, *created.RateLimitPerSecond)

	get := func() apitype.Webhook {
		var v apitype.Webhook
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + created.ID}), http.StatusOK, &v)
		return v
	}
	require.Equal(t, 5, *get().RateLimitPerSecond)

	patch := func(body string) *response {
		return b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + created.ID, body: body})
	}
	var v apitype.Webhook
	jsonBody(t, patch(`{"description":"absent leaves it"}`), http.StatusOK, &v)
	require.Equal(t, 5, *v.RateLimitPerSecond)
	jsonBody(t, patch(`{"rate_limit_per_second":100}`), http.StatusOK, &v)
	require.Equal(t, 100, *v.RateLimitPerSecond)
	jsonBody(t, patch(`{"rate_limit_per_second":null}`), http.StatusOK, &v)
	require.Nil(t, v.RateLimitPerSecond)
	require.Nil(t, get().RateLimitPerSecond)

	for _, bad := range []string{`0`, `101`, `-3`} {
		requireError(t, patch(`{"rate_limit_per_second":`+bad+`}`), http.StatusUnprocessableEntity, "invalid_rate_limit", "rate_limit_per_second")
	}
	for _, bad := range []string{`"5"`, `2.5`, `true`} {
		requireError(t, patch(`{"rate_limit_per_second":`+bad+`}`), http.StatusBadRequest, "invalid_type", "rate_limit_per_second")
	}
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks",
		body: `{"account_id":"acct_rate","url":"https://rate2.example.com/hook","rate_limit_per_second":1000}`}),
		http.StatusUnprocessableEntity, "invalid_rate_limit", "rate_limit_per_second")

	// No limit by default.
	other := b.createWebhook(t, "acct_rate", "https://rate3.example.com/hook")
	require.Nil(t, other.RateLimitPerSecond)
}

// Test sends obey the webhook's rate limit (1 a second here): the next
// slot is taken and waited for when it comes within a second, and a test
// send finding none that soon is answered 429 webhook_rate_limited with
// Retry-After, having sent nothing. The starts sent are a second apart.
func TestSendTestEventRateLimited(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook := b.createWebhook(t, "acct_rate", receiver.URL+"/")
	var v apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"rate_limit_per_second":1}`}), http.StatusOK, &v)

	// Three at once: the first goes now, the second waits for the slot a
	// second later, the third finds none within a second.
	var wg sync.WaitGroup
	answers := make([]*response, 3)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test"})
		}()
	}
	wg.Wait()
	sent, refused := 0, 0
	for _, a := range answers {
		switch a.status {
		case http.StatusOK:
			sent++
		case http.StatusTooManyRequests:
			refused++
			requireError(t, a, http.StatusTooManyRequests, "webhook_rate_limited", "")
			retryAfter, err := strconv.Atoi(a.header.Get("Retry-After"))
			require.NoError(t, err)
			require.GreaterOrEqual(t, retryAfter, 1)
		default:
			t.Fatalf("test send answered %d: %s", a.status, a.body)
		}
	}
	require.Equal(t, 2, sent, "two within a second's wait")
	require.Equal(t, 1, refused, "the third refused")
	reqs := receiver.Wait(t, 2, 5*time.Second)
	require.Len(t, receiver.Requests(), 2, "a refused test send sends nothing")
	gap := reqs[1].At.Sub(reqs[0].At).Abs()
	require.Greater(t, gap, 900*time.Millisecond, "test sends a second apart (arrivals: %v)", gap)
}

// A bulk replay of a rate-limited webhook's deliveries goes through the
// same slots: recorded starts, the first round and the replay's, never
// more than the limit in any second, every delivery sent again.
func TestBulkReplayRateLimited(t *testing.T) {
	t.Parallel()
	const perSecond, events = 5, 15
	b := startServer(t, true)
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	var hook apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks",
		body: `{"account_id":"acct_replay","url":"` + receiver.URL + `/","rate_limit_per_second":` + strconv.Itoa(perSecond) + `}`}), http.StatusCreated, &hook)
	for range events {
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_replay","type":"order.created","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	}
	receiver.Wait(t, events, 30*time.Second)
	testwait.For(t, 10*time.Second, func() (bool, string) {
		var n int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND state = 'succeeded'`, hook.ID).Scan(&n))
		return n == events, fmt.Sprintf("%d of %d deliveries succeeded", n, events)
	})

	resp := b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay",
		body: `{"account_id":"acct_replay","webhook_id":"` + hook.ID + `","state":"succeeded"}`})
	require.Less(t, resp.status, 300, "body: %s", resp.body)
	receiver.Wait(t, 2*events, 30*time.Second)
	// Attempts are recorded in batches after the answer arrives: wait for
	// the last of them rather than read a moment too early.
	testwait.For(t, 10*time.Second, func() (bool, string) {
		var n int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1`, hook.ID).Scan(&n))
		return n >= 2*events, fmt.Sprintf("%d of %d attempts recorded", n, 2*events)
	})

	rows, err := b.pool.Query(t.Context(), `SELECT a.started_at FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1 ORDER BY 1`, hook.ID)
	require.NoError(t, err)
	var starts []time.Time
	for rows.Next() {
		var at time.Time
		require.NoError(t, rows.Scan(&at))
		starts = append(starts, at)
	}
	require.NoError(t, rows.Err())
	require.Len(t, starts, 2*events)
	most, j := 0, 0
	for i := range starts {
		for !starts[j].Add(time.Second).After(starts[i]) {
			j++
		}
		most = max(most, i-j+1)
	}
	t.Logf("%d starts, the replay's included; at most %d in any second", len(starts), most)
	require.LessOrEqual(t, most, perSecond)
}
