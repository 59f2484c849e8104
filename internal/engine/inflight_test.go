package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
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

	var held concurrency
	blackHole := testreceiver.New(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		defer held.enter()()
		<-r.Context().Done()
	})
	healthy := testreceiver.New(t, testreceiver.Status(200))
	createWebhook(t, b.pool, b.keys, "acct_blackhole", blackHole.URL+"/")
	createWebhook(t, b.pool, b.keys, "acct_healthy", healthy.URL+"/")

	for range 30 {
		enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_blackhole", Type: "ping", Data: rawJSON(`{}`)})
	}
	blackHole.Wait(t, 4, 10*time.Second)

	start := time.Now()
	var healthyIDs []string
	for range 40 {
		res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_healthy", Type: "ping", Data: rawJSON(`{}`)})
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

	require.LessOrEqual(t, held.most(), 4, "never more than the cap at the black hole")

	// Only attempts actually sent are recorded: at most the cap's worth so far.
	attempts := count(t, b.pool, "attempt_log WHERE delivery_id = ANY(ARRAY(SELECT id FROM deliveries WHERE account_id = 'acct_blackhole'))")
	require.LessOrEqual(t, attempts, blackHole.Count())
}

// With a configured cap above WebhookConcurrencyStart, an endpoint that never answers
// gets at most WebhookConcurrencyStart requests at once, while one that answers (slowly,
// so requests overlap) is sent more than that, up to the configured cap.
func TestWebhookCapStartsLow(t *testing.T) {
	t.Parallel()

	const limit = 30
	b := setupServer(t, func(c *server.Config) {
		c.MaxWorkers = 80
		c.WebhookConcurrency = limit
		c.HTTPTimeout = 10 * time.Second
	})
	var held, busy concurrency
	blackHole := testreceiver.New(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		defer held.enter()()
		<-r.Context().Done()
	})
	slow := testreceiver.New(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		defer busy.enter()()
		// sleeps because: a slow endpoint, long enough that requests
		// overlap even when a loaded machine hands them out slowly (50 ms
		// saw only 8 at once at load 20).
		time.Sleep(200 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	createWebhook(t, b.pool, b.keys, "acct_blackhole", blackHole.URL+"/")
	createWebhook(t, b.pool, b.keys, "acct_slow", slow.URL+"/")

	for range 3 * limit {
		enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_blackhole", Type: "ping", Data: rawJSON(`{}`)})
	}
	var ids []string
	for range 300 {
		res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_slow", Type: "ping", Data: rawJSON(`{}`)})
		ids = append(ids, res.Deliveries[0].ID)
	}
	for _, id := range ids {
		require.Equal(t, store.StateSucceeded, waitFinished(t, b.pool, id, 30*time.Second).State)
	}
	require.Equal(t, engine.WebhookConcurrencyStart, held.most(), "the black hole: the start's worth at once, no more")
	require.Greater(t, busy.most(), engine.WebhookConcurrencyStart, "an endpoint that answers gets more")
	require.LessOrEqual(t, busy.most(), limit, "never more than the configured cap")
	t.Logf("at once: black hole %d, answering endpoint %d (cap %d)", held.most(), busy.most(), limit)
}

// A backlog that a black hole's cap turned away waits for its turns, up to
// SaturatedTurnsMax ahead (here ~90 s: 300 jobs, a turn every 3 s / 10
// slots). When the endpoint answers again its jobs are woken
// (Worker.wakeRecovered), and the whole backlog is delivered within
// moments of the recovery, not at its turns.
func TestRecoveredWebhookBacklogWoken(t *testing.T) {
	t.Parallel()
	const events = 300
	b := setupServer(t, func(c *server.Config) {
		c.MaxWorkers = 20
		c.WebhookConcurrency = 10
		c.HTTPTimeout = 3 * time.Second
		c.RetryScale = 0.01 // the attempts that hung retry 0.3 s later
	})
	var down atomic.Bool
	down.Store(true)
	recv := testreceiver.New(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			<-r.Context().Done() // a black hole until it recovers
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	createWebhook(t, b.pool, b.keys, "acct_recovers", recv.URL+"/")
	for range events {
		enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_recovers", Type: "ping", Data: rawJSON(`{}`)})
	}

	// The backlog waits for its turns, some over a minute ahead.
	const far = "river_job WHERE kind = 'webhookd.delivery' AND state IN ('available', 'scheduled') AND scheduled_at > now() + interval '60 seconds'"
	testwait.For(t, 60*time.Second, func() (bool, string) {
		n := count(t, b.pool, far)
		return n >= 50, fmt.Sprintf("%d jobs wait over 60 s ahead", n)
	})

	down.Store(false)
	recovered := time.Now()
	// Within the turns, the last would go ~90 s after the recovery; woken,
	// in seconds. The margin is for a loaded CI machine.
	testwait.For(t, 40*time.Second, func() (bool, string) {
		var pending, succeeded int
		require.NoError(t, b.pool.QueryRow(context.Background(), `
SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'succeeded')
FROM deliveries WHERE account_id = 'acct_recovers'`).Scan(&pending, &succeeded))
		state := fmt.Sprintf("%d succeeded, %d pending, %d jobs over 60 s ahead", succeeded, pending, count(t, b.pool, far))
		if succeeded < events {
			var waiting string
			require.NoError(t, b.pool.QueryRow(context.Background(), `
SELECT coalesce(string_agg(format('%s attempts %s next %s job %s %s at %s', d.id, d.attempts, d.next_attempt_at - now(), j.state, j.attempt, j.scheduled_at - now()), '; '), '')
FROM (SELECT * FROM deliveries WHERE account_id = 'acct_recovers' AND state = 'pending' ORDER BY created_at LIMIT 5) d
LEFT JOIN river_job j ON j.id = d.job_id`).Scan(&waiting))
			state += "; the first pending: " + waiting
		}
		return succeeded == events, state
	})
	t.Logf("%d deliveries waiting for a black hole's turns delivered %v after it recovered", events, time.Since(recovered).Round(time.Millisecond))
}

// concurrency counts a receiver's requests in flight and the most at once.
type concurrency struct {
	mu        sync.Mutex
	now, peak int
}

// enter counts a request in; the returned func counts it out.
func (c *concurrency) enter() func() {
	c.mu.Lock()
	c.now++
	c.peak = max(c.peak, c.now)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}
}

func (c *concurrency) most() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}
