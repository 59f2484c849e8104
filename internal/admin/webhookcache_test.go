package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// The intake's webhook cache (WEBHOOKD_INTAKE_WEBHOOK_CACHE) never fans an
// event out to webhooks other than those a read at its insert would find,
// whoever changed them: two processes on one database, process A caching
// the account's webhooks, process B (and plain SQL) changing them. Every
// change is seen by A's next event: a webhook created, a URL changed, a
// webhook deleted, an event-type filter set; a change to the description
// alone does not make A read again.
func TestIntakeWebhookCacheSeesChangesFromOtherProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dbURL, encKey string
	a := startServerWith(t, true, func(c *server.Config) {
		dbURL, encKey = c.DatabaseURL, c.EncryptionKey
	})
	b := startServerWith(t, true, func(c *server.Config) {
		c.DatabaseURL, c.EncryptionKey = dbURL, encKey
	})
	r1 := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	r2 := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	stats := a.srv.Enqueuer().WebhookCacheStats

	createHook := func(via *testBundle, url string) apitype.Webhook {
		var hook apitype.Webhook
		jsonBody(t, via.do(t, request{method: http.MethodPost, path: "/v1/webhooks",
			body: `{"account_id":"acct_cache","url":"` + url + `"}`}), http.StatusCreated, &hook)
		return hook
	}
	// send posts one event through A, alone or as a batch of one, and
	// returns the webhooks its deliveries go to.
	send := func(batch bool) []string {
		var ev apitype.Enqueued
		if batch {
			var out apitype.List[apitype.EventBatchItem]
			jsonBody(t, a.do(t, request{method: http.MethodPost, path: "/v1/events/batch",
				body: `{"events":[{"account_id":"acct_cache","type":"ping","data":{}}]}`}), http.StatusAccepted, &out)
			require.Len(t, out.Data, 1)
			ev = out.Data[0].Enqueued
		} else {
			jsonBody(t, a.do(t, request{method: http.MethodPost, path: "/v1/events",
				body: `{"account_id":"acct_cache","type":"ping","data":{}}`}), http.StatusAccepted, &ev)
		}
		var hooks []string
		for _, d := range ev.Deliveries {
			hooks = append(hooks, d.WebhookID)
		}
		return hooks
	}

	w1 := createHook(a, r1.URL+"/one")
	require.Equal(t, []string{w1.ID}, send(false))
	before := stats()
	require.Equal(t, []string{w1.ID}, send(false))
	require.Equal(t, []string{w1.ID}, send(true))
	after := stats()
	require.Equal(t, before.Misses, after.Misses, "the account's webhooks came from memory: %+v then %+v", before, after)
	require.Equal(t, before.Hits+2, after.Hits)

	// A webhook created by another process.
	w2 := createHook(b, r2.URL+"/two")
	require.ElementsMatch(t, []string{w1.ID, w2.ID}, send(false))
	require.Equal(t, after.Changed+1, stats().Changed, "the insert found the cached webhooks stale and was retried")
	require.ElementsMatch(t, []string{w1.ID, w2.ID}, send(true))

	// w1's URL changed (in SQL: the API keeps a webhook's URL): A's next
	// event goes to the new one (a handed-off first attempt uses the
	// webhook as read, with no load).
	_, err := a.pool.Exec(ctx, `UPDATE webhooks SET url = $2, url_normalized = $2 WHERE id = $1`, w1.ID, r2.URL+"/one-moved")
	require.NoError(t, err)
	sentBefore := r1.Count()
	require.ElementsMatch(t, []string{w1.ID, w2.ID}, send(false))
	testwait.For(t, 30*time.Second, func() (bool, string) {
		for _, req := range r2.Requests() {
			if req.Path == "/one-moved" {
				return true, ""
			}
		}
		return false, "nothing at w1's new URL yet"
	})
	require.Equal(t, sentBefore, r1.Count(), "nothing went to w1's old URL")

	// w2 deleted by another process.
	require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + w2.ID}).status)
	require.Equal(t, []string{w1.ID}, send(false))

	// An event-type filter set in plain SQL.
	_, err = a.pool.Exec(ctx, `UPDATE webhooks SET event_types = '{invoice.paid}' WHERE id = $1`, w1.ID)
	require.NoError(t, err)
	require.Empty(t, send(false))
	require.Empty(t, send(true))

	// A description changes no version: A keeps its entry.
	var version, again int64
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT version FROM webhook_versions WHERE account_id = 'acct_cache'`).Scan(&version))
	jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + w1.ID,
		body: `{"description":"renamed"}`}), http.StatusOK, new(apitype.Webhook))
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT version FROM webhook_versions WHERE account_id = 'acct_cache'`).Scan(&again))
	require.Equal(t, version, again)
	changed := stats().Changed
	require.Empty(t, send(false))
	require.Equal(t, changed, stats().Changed)

	// The counts are on A's /metrics.
	page := scrapeMetrics(t, a)
	for result, n := range map[string]int64{"hit": stats().Hits, "miss": stats().Misses, "changed": changed} {
		require.Contains(t, page, fmt.Sprintf("webhookd_intake_webhook_cache_total{result=%q} %d\n", result, n))
	}
}
