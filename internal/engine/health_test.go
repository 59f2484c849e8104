package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testclock"
	"github.com/mono/webhookd/internal/testdb"
)

// healthFixture is a migrated database with webhooks and a tracker on a
// stubbed clock.
type healthFixture struct {
	pool    *pgxpool.Pool
	clock   *testclock.Clock
	tracker *engine.HealthTracker
	hooks   int
}

// healthBase is a whole minute, so that offsets of seconds stay in it.
var healthBase = time.Date(2030, 5, 6, 7, 8, 0, 0, time.UTC)

func newHealthFixture(t *testing.T) *healthFixture {
	t.Helper()
	pool := testdb.New(t)
	clock := testclock.New(healthBase)
	return &healthFixture{pool: pool, clock: clock, tracker: engine.NewHealthTracker(pool, &engine.HealthConfig{Now: clock.Now})}
}

func (f *healthFixture) webhook(t *testing.T) string {
	t.Helper()
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	f.hooks++
	id, _ := createWebhook(t, f.pool, keys, "acct_health", fmt.Sprintf("https://example.com/%d", f.hooks))
	return id
}

func (f *healthFixture) flush(t *testing.T) {
	t.Helper()
	require.NoError(t, f.tracker.Flush(context.Background()))
}

// health reads id's health with the last hour ending at the stubbed now.
func (f *healthFixture) health(t *testing.T, id string) *store.WebhookHealth {
	t.Helper()
	h, err := store.GetWebhookHealth(context.Background(), f.pool, id, f.clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	return h
}

// minutes returns id's stored per-minute counts, minute → [successes, failures].
func (f *healthFixture) minutes(t *testing.T, id string) map[time.Time][2]int {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), "SELECT minute, successes, failures FROM webhook_health_minutes WHERE webhook_id = $1", id)
	require.NoError(t, err)
	defer rows.Close()
	out := map[time.Time][2]int{}
	for rows.Next() {
		var m time.Time
		var ok, failed int
		require.NoError(t, rows.Scan(&m, &ok, &failed))
		out[m.UTC()] = [2]int{ok, failed}
	}
	require.NoError(t, rows.Err())
	return out
}

func at(s int) time.Time { return healthBase.Add(time.Duration(s) * time.Second) }

func requireTime(t *testing.T, want time.Time, got *time.Time, what string) {
	t.Helper()
	require.NotNil(t, got, what)
	require.True(t, want.Equal(*got), "%s: want %s, got %s", what, want, got)
}

// Consecutive failures add up across flushes, reset on a newer success to
// the failures after it (whatever the order of Observe), and the last
// failure's kind is the latest one's.
func TestHealthTrackerConsecutiveFailures(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	id := f.webhook(t)

	// Never observed: a row of zeros and nulls.
	h := f.health(t, id)
	require.Equal(t, id, h.WebhookID)
	require.Zero(t, h.ConsecutiveFailures)
	require.Nil(t, h.LastSuccessAt)
	require.Nil(t, h.LastFailureAt)
	require.Nil(t, h.LastFailureKind)

	f.tracker.Observe(id, at(1), false, "connect")
	f.tracker.Observe(id, at(2), false, "http_status")
	f.flush(t)
	h = f.health(t, id)
	require.Equal(t, 2, h.ConsecutiveFailures)
	require.Nil(t, h.LastSuccessAt)
	requireTime(t, at(2), h.LastFailureAt, "last failure")
	require.Equal(t, "http_status", *h.LastFailureKind)

	// Across flushes failures add up.
	f.tracker.Observe(id, at(3), false, "timeout")
	f.flush(t)
	require.Equal(t, 3, f.health(t, id).ConsecutiveFailures)

	// A success resets to the failures after it, even observed out of
	// order (concurrent workers): the failure at 6 counts, the one at 4
	// does not.
	f.tracker.Observe(id, at(6), false, "dns")
	f.tracker.Observe(id, at(5), true, "")
	f.tracker.Observe(id, at(4), false, "connect")
	f.flush(t)
	h = f.health(t, id)
	require.Equal(t, 1, h.ConsecutiveFailures)
	requireTime(t, at(5), h.LastSuccessAt, "last success")
	requireTime(t, at(6), h.LastFailureAt, "last failure")
	require.Equal(t, "dns", *h.LastFailureKind)

	// A batch whose success is older than the stored one (another process
	// flushing late) adds the failures it saw after its own success and
	// changes neither last_success_at nor, for an older failure, the kind.
	f.tracker.Observe(id, at(1), true, "")
	f.tracker.Observe(id, at(2), false, "tls")
	f.flush(t)
	h = f.health(t, id)
	require.Equal(t, 2, h.ConsecutiveFailures)
	requireTime(t, at(5), h.LastSuccessAt, "last success")
	requireTime(t, at(6), h.LastFailureAt, "last failure")
	require.Equal(t, "dns", *h.LastFailureKind)

	// A newer success with no failure after it: zero; the last failure
	// stays.
	f.tracker.Observe(id, at(7), false, "http_status")
	f.tracker.Observe(id, at(8), true, "")
	f.flush(t)
	h = f.health(t, id)
	require.Zero(t, h.ConsecutiveFailures)
	requireTime(t, at(8), h.LastSuccessAt, "last success")
	requireTime(t, at(7), h.LastFailureAt, "last failure")
	require.Equal(t, "http_status", *h.LastFailureKind)

	// Failures after it count again from zero.
	for i := 9; i < 14; i++ {
		f.tracker.Observe(id, at(i), false, "timeout")
	}
	f.flush(t)
	h = f.health(t, id)
	require.Equal(t, 5, h.ConsecutiveFailures)
	requireTime(t, at(13), h.LastFailureAt, "last failure")
	require.Equal(t, "timeout", *h.LastFailureKind)

	// An empty flush changes nothing.
	f.flush(t)
	require.Equal(t, h, f.health(t, id))

	// A webhook that is not in webhooks (none is ever hard-deleted today)
	// does not fail the batch on the foreign key.
	gone := "wh_0193a5b2c4d87e6f9a0b1c2d3e4f5a6b"
	f.tracker.Observe(gone, at(14), false, "connect")
	f.tracker.Observe(id, at(15), true, "")
	f.flush(t)
	require.Zero(t, f.health(t, id).ConsecutiveFailures)
	require.Zero(t, f.health(t, gone).ConsecutiveFailures)
}

// Many failures between two flushes (more than the tracker keeps times
// of) still count one by one, and a later success clears them.
func TestHealthTrackerManyFailures(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	id := f.webhook(t)

	const n = 3000
	for i := range n {
		f.tracker.Observe(id, healthBase.Add(time.Duration(i)*time.Millisecond), false, "connect")
	}
	f.flush(t)
	require.Equal(t, n, f.health(t, id).ConsecutiveFailures)

	for i := range n {
		f.tracker.Observe(id, healthBase.Add(time.Duration(n+i)*time.Millisecond), false, "connect")
	}
	f.tracker.Observe(id, healthBase.Add(time.Duration(2*n)*time.Millisecond), true, "")
	f.tracker.Observe(id, healthBase.Add(time.Duration(2*n+1)*time.Millisecond), false, "timeout")
	f.flush(t)
	h := f.health(t, id)
	require.Equal(t, 1, h.ConsecutiveFailures)
	require.Equal(t, 2*n+2, h.Attempts)
}

// Attempts are counted per minute, adding up across flushes; the last hour
// is the minutes after now - 1h, with its success rate (null without
// attempts).
func TestHealthTrackerMinutesAndRate(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	id, other, idle := f.webhook(t), f.webhook(t), f.webhook(t)

	f.tracker.Observe(id, at(10), true, "")
	f.tracker.Observe(id, at(20), false, "timeout")
	f.tracker.Observe(id, at(70), true, "")
	f.tracker.Observe(other, at(5), false, "connect")
	f.flush(t)
	f.tracker.Observe(id, at(30), true, "")
	f.tracker.Observe(id, at(80), false, "http_status")
	f.tracker.Observe(id, at(130), true, "")
	f.flush(t)

	m0, m1, m2 := healthBase, healthBase.Add(time.Minute), healthBase.Add(2*time.Minute)
	require.Equal(t, map[time.Time][2]int{m0: {2, 1}, m1: {1, 1}, m2: {1, 0}}, f.minutes(t, id))
	require.Equal(t, map[time.Time][2]int{m0: {0, 1}}, f.minutes(t, other))
	require.Empty(t, f.minutes(t, idle))

	f.clock.Set(at(150))
	h := f.health(t, id)
	require.Equal(t, 6, h.Attempts)
	require.Equal(t, 4, h.Successes)
	require.Equal(t, 2, h.Failures)
	require.NotNil(t, h.SuccessRate)
	require.InDelta(t, 4.0/6, *h.SuccessRate, 1e-9)

	h = f.health(t, other)
	require.Equal(t, 1, h.Attempts)
	require.NotNil(t, h.SuccessRate)
	require.Zero(t, *h.SuccessRate)

	h = f.health(t, idle)
	require.Zero(t, h.Attempts)
	require.Nil(t, h.SuccessRate)

	// An hour on, the first minute (m0 = now - 1h) has left the window;
	// the others are still in it.
	f.clock.Set(m0.Add(time.Hour))
	h = f.health(t, id)
	require.Equal(t, 3, h.Attempts)
	require.Equal(t, 2, h.Successes)
	require.Equal(t, 1, h.Failures)
	require.InDelta(t, 2.0/3, *h.SuccessRate, 1e-9)
	require.Nil(t, f.health(t, other).SuccessRate)

	// Much later: no attempts in the last hour, but the consecutive
	// failures and last times stay.
	f.clock.Set(m0.Add(3 * time.Hour))
	h = f.health(t, id)
	require.Zero(t, h.Attempts)
	require.Nil(t, h.SuccessRate)
	requireTime(t, at(130), h.LastSuccessAt, "last success")
	h = f.health(t, other)
	require.Equal(t, 1, h.ConsecutiveFailures)
	require.Equal(t, "connect", *h.LastFailureKind)
}

// Minute rows older than two hours are deleted by the flusher, at most once
// a minute.
func TestHealthTrackerPrunesOldMinutes(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	id := f.webhook(t)
	ctx := context.Background()

	f.tracker.Observe(id, at(0), true, "")
	f.tracker.Observe(id, at(60), false, "timeout")
	f.flush(t) // the first flush also prunes (nothing old yet)
	require.Len(t, f.minutes(t, id), 2)

	// Two hours and half a minute later: the first minute is older than
	// two hours, the second is not.
	f.clock.Set(at(0).Add(2*time.Hour + 30*time.Second))
	f.flush(t)
	require.Equal(t, map[time.Time][2]int{at(60): {0, 1}}, f.minutes(t, id))

	// Rows growing old stay until a minute after the last prune: 59 s
	// later the second minute is older than two hours too, and so is a
	// row inserted now, but both are deleted only a second later.
	_, err := f.pool.Exec(ctx, "INSERT INTO webhook_health_minutes (webhook_id, minute, successes) VALUES ($1, $2, 1)", id, at(-3600))
	require.NoError(t, err)
	f.clock.Set(f.clock.Now().Add(59 * time.Second))
	f.flush(t)
	require.Equal(t, map[time.Time][2]int{at(60): {0, 1}, at(-3600): {1, 0}}, f.minutes(t, id))
	f.clock.Set(f.clock.Now().Add(time.Second))
	f.flush(t)
	require.Empty(t, f.minutes(t, id), "a minute after the last prune")

	// Attempts observed with a time older than two hours are not written.
	now := f.clock.Now()
	f.tracker.Observe(id, at(-7200), false, "connect")
	f.tracker.Observe(id, now, true, "")
	f.flush(t)
	require.Equal(t, map[time.Time][2]int{now.Truncate(time.Minute): {1, 0}}, f.minutes(t, id))
}

// A flush that fails keeps what it took for the next one, merged with
// what was observed in between.
func TestHealthTrackerFailedFlushKeepsAttempts(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	id := f.webhook(t)

	f.tracker.Observe(id, at(1), false, "connect")
	f.tracker.Observe(id, at(2), true, "")
	f.tracker.Observe(id, at(3), false, "timeout")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, f.tracker.Flush(cancelled))
	require.Empty(t, f.minutes(t, id))

	f.tracker.Observe(id, at(4), false, "dns")
	f.tracker.Observe(id, at(0), false, "tls") // before the success: not consecutive
	f.flush(t)
	h := f.health(t, id)
	require.Equal(t, 2, h.ConsecutiveFailures)
	requireTime(t, at(2), h.LastSuccessAt, "last success")
	requireTime(t, at(4), h.LastFailureAt, "last failure")
	require.Equal(t, "dns", *h.LastFailureKind)
	require.Equal(t, map[time.Time][2]int{healthBase: {1, 4}}, f.minutes(t, id))
}

// Observe is safe from many goroutines while flushes run, and loses
// nothing; on a nil tracker it does nothing.
func TestHealthTrackerConcurrent(t *testing.T) {
	t.Parallel()
	f := newHealthFixture(t)
	ids := []string{f.webhook(t), f.webhook(t), f.webhook(t)}

	var nilTracker *engine.HealthTracker
	nilTracker.Observe(ids[0], at(0), false, "connect")

	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				f.tracker.Observe(ids[(g+i)%len(ids)], at(i%120), i%4 != 0, "http_status")
			}
		}()
	}
	flushes := make(chan error, 1)
	go func() {
		var err error
		for range 5 {
			err = f.tracker.Flush(context.Background())
			if err != nil {
				break
			}
		}
		flushes <- err
	}()
	wg.Wait()
	require.NoError(t, <-flushes)
	f.flush(t)

	f.clock.Set(at(150))
	total := 0
	for _, id := range ids {
		h := f.health(t, id)
		total += h.Attempts
		requireTime(t, at(119), h.LastSuccessAt, fmt.Sprintf("last success of %s", id))
	}
	require.Equal(t, goroutines*each, total)
}

// Run writes at its interval until its context ends.
func TestHealthTrackerRun(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	id, _ := createWebhook(t, pool, keys, "acct_health", "https://example.com/run")
	tracker := engine.NewHealthTracker(pool, &engine.HealthConfig{FlushInterval: 10 * time.Millisecond})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tracker.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	now := time.Now()
	tracker.Observe(id, now, false, "timeout")
	require.Eventually(t, func() bool {
		h, err := store.GetWebhookHealth(context.Background(), pool, id, now.Add(-time.Hour))
		return err == nil && h.ConsecutiveFailures == 1 && h.Attempts == 1
	}, 30*time.Second, 10*time.Millisecond)
}
