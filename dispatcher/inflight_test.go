package dispatcher_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/server"
	"github.com/mono/webhookd/store"
)

// A black-hole endpoint (accepts, never answers) holds at most its
// per-webhook cap of workers; a healthy endpoint beside it is served at
// once, and a snoozed job uses none of its delivery's attempts.
func TestWebhookConcurrencyCap(t *testing.T) {
	t.Parallel()

	b := setupServer(t, func(c *server.Config) {
		c.MaxWorkers = 12
		c.WebhookConcurrency = 4
		c.HTTPTimeout = 10 * time.Second
	})

	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	blackHole := testreceiver.New(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		<-r.Context().Done()
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	healthy := testreceiver.New(t, testreceiver.Status(200))
	createWebhook(t, b.pool, b.keys, "acct_blackhole", blackHole.URL+"/")
	createWebhook(t, b.pool, b.keys, "acct_healthy", healthy.URL+"/")

	var stuck []string
	for range 30 {
		res := enqueue(t, b.pool, b.enqueuer, &dispatcher.Event{AccountID: "acct_blackhole", Type: "ping", Data: rawJSON(`{}`)})
		stuck = append(stuck, res.Deliveries[0].ID)
	}
	blackHole.Wait(t, 4, 10*time.Second)

	start := time.Now()
	var healthyIDs []string
	for range 40 {
		res := enqueue(t, b.pool, b.enqueuer, &dispatcher.Event{AccountID: "acct_healthy", Type: "ping", Data: rawJSON(`{}`)})
		healthyIDs = append(healthyIDs, res.Deliveries[0].ID)
	}
	for _, id := range healthyIDs {
		d := waitFinished(t, b.pool, id, 10*time.Second)
		require.Equal(t, store.StateSucceeded, d.State)
	}
	elapsed := time.Since(start)
	t.Logf("40 healthy deliveries beside a black hole in %v", elapsed)
	// Held up behind the black hole, they would take its 10 s timeout at
	// least; the margin below it is for a loaded CI machine.
	require.Less(t, elapsed, 8*time.Second, "the healthy endpoint is not held up by the black hole's timeouts")

	mu.Lock()
	require.LessOrEqual(t, maxInFlight, 4, "never more than the cap at the black hole")
	mu.Unlock()

	// Only attempts actually sent are recorded: at most the cap's worth so far.
	attempts := count(t, b.pool, "attempts WHERE delivery_id = ANY(ARRAY(SELECT id FROM deliveries WHERE account_id = 'acct_blackhole'))")
	require.LessOrEqual(t, attempts, blackHole.Count())
}
