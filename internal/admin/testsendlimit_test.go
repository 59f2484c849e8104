package admin_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// hangingEndpoint is a real listener on 127.0.0.2 that accepts connections
// and never answers, until release (or the test's end) closes them.
type hangingEndpoint struct {
	url     string
	conns   atomic.Int32
	release func()
}

func newHangingEndpoint(t *testing.T) *hangingEndpoint {
	t.Helper()
	h := &hangingEndpoint{}
	released := make(chan struct{})
	h.release = sync.OnceFunc(func() { close(released) })
	t.Cleanup(h.release)
	h.url = "http://" + testreceiver.Raw(t, func(c net.Conn) {
		h.conns.Add(1)
		<-released
	}) + "/hang"
	return h
}

// testSendCounts is how many test sends stored an event, and attempts.
func testSendCounts(t *testing.T, b *testBundle, webhookID string) (events, attempts int) {
	t.Helper()
	require.NoError(t, b.pool.QueryRow(context.Background(), `
SELECT (SELECT count(*) FROM deliveries WHERE webhook_id = $1),
       (SELECT count(*) FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1)`, webhookID).Scan(&events, &attempts))
	return events, attempts
}

// Test sends to one webhook are bounded per process: in flight by the
// worker's cap for the webhook (a process with workers) or a small cap of
// their own (API only), and in rate. A refused one is answered 429 at
// once, with Retry-After, and writes nothing.
func TestTestSendLimits(t *testing.T) {
	t.Parallel()

	// concurrentSends makes n test sends to webhookID at once and returns
	// the answers as they come.
	concurrentSends := func(t *testing.T, b *testBundle, webhookID string, n int) <-chan *response {
		t.Helper()
		answers := make(chan *response, n)
		for range n {
			go func() {
				answers <- b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + webhookID + "/test"})
			}()
		}
		return answers
	}
	// capped sends n test sends at once to a hanging endpoint: limit of
	// them hold its connections, the others are refused at once, before
	// any of those finishes; once released, those fail, each recorded.
	capped := func(t *testing.T, b *testBundle, n, limit int) {
		t.Helper()
		hang := newHangingEndpoint(t)
		hook := b.createWebhook(t, "acct_test_busy", hang.url)

		answers := concurrentSends(t, b, hook.ID, n)
		deadlineAt := time.Now().Add(5 * time.Second) // the attempts' timeout is 10 s
		deadline := time.After(time.Until(deadlineAt))
		for range n - limit {
			select {
			case resp := <-answers:
				requireError(t, resp, http.StatusTooManyRequests, "test_sends_busy", "")
				retryAfter, err := strconv.Atoi(resp.header.Get("Retry-After"))
				require.NoError(t, err)
				require.GreaterOrEqual(t, retryAfter, 1)
			case <-deadline:
				t.Fatalf("the refused test sends were not answered at once (%d connections)", hang.conns.Load())
			}
		}
		// The others hold a connection each, and no more were opened.
		testwait.For(t, time.Until(deadlineAt), func() (bool, string) {
			n := hang.conns.Load()
			return n >= int32(limit), fmt.Sprintf("%d connections, want %d", n, limit)
		})
		require.EqualValues(t, limit, hang.conns.Load())
		events, _ := testSendCounts(t, b, hook.ID)
		require.Zero(t, events, "nothing is written before an attempt ends")

		hang.release()
		for range limit {
			resp := <-answers
			require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		}
		events, attempts := testSendCounts(t, b, hook.ID)
		require.Equal(t, limit, events, "one event per test send made; none for those refused")
		require.Equal(t, limit, attempts)
		require.EqualValues(t, limit, hang.conns.Load())
	}

	t.Run("WorkerCapOnAHangingEndpoint", func(t *testing.T) {
		t.Parallel()
		b := startServerWith(t, true, func(c *server.Config) {
			c.TestSendRate = admin.RateOff
			c.HTTPTimeout = 10 * time.Second
		})
		// A new webhook's cap in a worker is WebhookConcurrencyStart.
		capped(t, b, 100, engine.WebhookConcurrencyStart)
	})

	t.Run("OwnCapOnAnAPIOnlyProcess", func(t *testing.T) {
		t.Parallel()
		b := startServerWith(t, true, func(c *server.Config) {
			c.API, c.Worker = true, false
			c.TestSendRate = admin.RateOff
			c.HTTPTimeout = 10 * time.Second
		})
		capped(t, b, 20, admin.TestSendsInFlightDefault)
	})

	t.Run("RatePerWebhook", func(t *testing.T) {
		t.Parallel()
		b := startServer(t, true)
		rcv := testreceiver.New(t, testreceiver.Status(http.StatusNoContent))
		hook := b.createWebhook(t, "acct_test_rate", rcv.URL+"/a")
		other := b.createWebhook(t, "acct_test_rate", rcv.URL+"/b")

		// The default burst, then 429 with Retry-After.
		send := func(id string) *response {
			return b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + id + "/test"})
		}
		for range admin.TestSendRateDefault.Burst {
			require.Equal(t, http.StatusOK, send(hook.ID).status)
		}
		resp := send(hook.ID)
		requireError(t, resp, http.StatusTooManyRequests, "rate_limited", "")
		require.Equal(t, "1", resp.header.Get("Retry-After"))
		events, attempts := testSendCounts(t, b, hook.ID)
		require.Equal(t, admin.TestSendRateDefault.Burst, events)
		require.Equal(t, admin.TestSendRateDefault.Burst, attempts)
		require.Equal(t, admin.TestSendRateDefault.Burst, rcv.Count())

		// Another webhook has a rate of its own.
		require.Equal(t, http.StatusOK, send(other.ID).status)
	})
}
