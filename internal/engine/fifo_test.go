package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// fifoRequest is one request a FIFO test's receiver saw.
type fifoRequest struct {
	eventID string
	ok      bool
}

// A FIFO webhook whose head dies (ten failures) blocks its line: the
// webhook shows it as blocked_by with the count waiting, and nothing behind
// it is attempted; a replay of the head that succeeds unblocks the line,
// which then goes out in order. A head that dies again and is skipped
// unblocks it too, and stays dead.
func TestFIFODeadHeadBlocks(t *testing.T) {
	t.Parallel()
	b := setupServer(t, func(c *server.Config) {
		c.DBMaxConns = 8
		c.MaxWorkers = 20
		c.HTTPTimeout = 2 * time.Second
	})
	pool, enqueuer, ctx := b.pool, b.enqueuer, context.Background()

	// The receiver fails every event whose data is in failing.
	var (
		mu      sync.Mutex
		seen    []fifoRequest
		failing atomic.Value // string: a data marker that fails
	)
	failing.Store(`"n":1}`)
	var recv *testreceiver.Receiver
	recv = testreceiver.New(t, func(n int, w http.ResponseWriter, r *http.Request) {
		body := recv.Requests()[n-1].Body
		ok := !bytes.Contains(body, []byte(failing.Load().(string)))
		mu.Lock()
		seen = append(seen, fifoRequest{eventID: r.Header.Get("Mono-Event-Id"), ok: ok})
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	hookID := createFIFOWebhook(t, pool, b.keys, "acct_fifo_dead", recv.URL+"/")

	var events, deliveries []string
	send := func(n int) {
		res := enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_fifo_dead", Type: "ping", Data: rawJSON(fmt.Sprintf(`{"n":%d}`, n))})
		events, deliveries = append(events, res.EventID), append(deliveries, res.Deliveries[0].ID)
	}
	for n := 1; n <= 4; n++ {
		send(n)
	}

	// The head dies after ten failures and blocks the line.
	head := waitFinished(t, pool, deliveries[0], 2*time.Minute)
	require.Equal(t, store.StateDead, head.State, "%v", seen)
	status, err := store.GetFIFOStatus(ctx, pool, hookID)
	require.NoError(t, err)
	require.NotNil(t, status.BlockedBy)
	require.Equal(t, deliveries[0], *status.BlockedBy)
	require.EqualValues(t, 3, status.Waiting)
	blocked, err := store.CountFIFOBlocked(ctx, pool)
	require.NoError(t, err)
	require.EqualValues(t, 1, blocked, "webhookd_fifo_blocked_webhooks counts the line")
	mu.Lock()
	require.Len(t, seen, 10, "only the head was attempted: %v", seen)
	for _, r := range seen {
		require.Equal(t, events[0], r.eventID)
	}
	mu.Unlock()
	for _, id := range deliveries[1:] {
		d, err := store.GetDelivery(ctx, pool, id)
		require.NoError(t, err)
		require.Equal(t, store.StatePending, d.State)
		require.Empty(t, d.AttemptList, "nothing behind a dead head is attempted")
	}
	// The line waiting behind it is pending but not due: the oldest-due
	// gauge doesn't see it.
	stats, err := store.GetPendingStats(ctx, pool)
	require.NoError(t, err)
	require.EqualValues(t, 3, stats.Count)
	require.Nil(t, stats.EarliestDue, "deliveries waiting behind a dead head are not due")

	// A replay that succeeds unblocks the line, which goes out in order.
	failing.Store(`"n":5}`)
	replay(t, pool, enqueuer, deliveries[0])
	for _, id := range deliveries {
		require.Equal(t, store.StateSucceeded, waitFinished(t, pool, id, time.Minute).State)
	}
	mu.Lock()
	requireInOrder(t, seen, events)
	mu.Unlock()
	status, err = store.GetFIFOStatus(ctx, pool, hookID)
	require.NoError(t, err)
	require.Nil(t, status.BlockedBy)
	require.Zero(t, status.Waiting)
	blocked, err = store.CountFIFOBlocked(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, blocked)

	// A head that dies and is skipped leaves the line dead; the next goes.
	send(5)
	send(6)
	require.Equal(t, store.StateDead, waitFinished(t, pool, deliveries[4], 2*time.Minute).State)
	blocked, err = store.CountFIFOBlocked(ctx, pool)
	require.NoError(t, err)
	require.EqualValues(t, 1, blocked)
	require.ErrorIs(t, skip(t, pool, hookID, deliveries[5]), store.ErrNotBlocking, "only the dead head can be skipped")
	require.NoError(t, skip(t, pool, hookID, deliveries[4]))
	require.Equal(t, store.StateSucceeded, waitFinished(t, pool, deliveries[5], time.Minute).State)
	d, err := store.GetDelivery(ctx, pool, deliveries[4])
	require.NoError(t, err)
	require.Equal(t, store.StateDead, d.State, "a skipped head stays dead")
	status, err = store.GetFIFOStatus(ctx, pool, hookID)
	require.NoError(t, err)
	require.Nil(t, status.BlockedBy)
	blocked, err = store.CountFIFOBlocked(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, blocked, "a skipped dead head blocks nothing")
}

// requireInOrder checks a FIFO receiver's log against events in line
// order: each event's first success comes after the previous event's, and
// no event is attempted before its predecessor succeeded.
func requireInOrder(t *testing.T, seen []fifoRequest, events []string) {
	t.Helper()
	place := make(map[string]int, len(events))
	for i, id := range events {
		place[id] = i
	}
	done := -1 // the last place whose first success was seen
	for i, r := range seen {
		p, ok := place[r.eventID]
		require.True(t, ok, "request %d: unknown event %s", i, r.eventID)
		require.LessOrEqual(t, p, done+1, "request %d: event %d attempted before event %d succeeded", i, p, done+1)
		if r.ok && p == done+1 {
			done = p
		}
	}
	require.Equal(t, len(events)-1, done, "every event succeeded")
}

func createFIFOWebhook(t *testing.T, db store.DB, keys *keyring.Keyring, accountID, url string) string {
	t.Helper()
	return createWebhookWith(t, db, keys, accountID, url, func(w *store.Webhook) { w.Ordering = store.OrderingFIFO })
}

func replay(t *testing.T, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, e *engine.Enqueuer, deliveryID string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = e.Replay(ctx, tx, deliveryID, nil)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}

func skip(t *testing.T, db store.DB, webhookID, deliveryID string) error {
	t.Helper()
	return engine.SkipFIFOHead(context.Background(), db, webhookID, deliveryID, time.Now, nil)
}

// A replay of the dead head that succeeds while the job waiting behind it
// is running (it has just seen the head dead and is about to snooze for
// the blocked wait, 5 minutes) still moves the line within seconds: the
// success's wake misses a running job, so the worker wakes the new head
// again once River has recorded that snooze. The test holds the job
// "running" across the replay and then records the 5-minute snooze itself,
// as River's completer would (the skip's case is admin's
// TestFIFOSkipWakesAJobSnoozedDuringTheSkip).
func TestFIFOReplayWakesAJobSnoozedDuringTheReplay(t *testing.T) {
	t.Parallel()
	b := setupServer(t, func(c *server.Config) {
		c.DBMaxConns = 6
		c.MaxWorkers = 10
		c.HTTPTimeout = 2 * time.Second
	})
	pool, enqueuer, ctx := b.pool, b.enqueuer, context.Background()
	recv := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	createFIFOWebhook(t, pool, b.keys, "acct_fifo_replay_race", recv.URL+"/")
	var deliveries []string
	for range 2 {
		res := enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_fifo_replay_race", Type: "ping", Data: rawJSON(`{}`)})
		deliveries = append(deliveries, res.Deliveries[0].ID)
	}
	require.Equal(t, store.StateDead, waitFinished(t, pool, deliveries[0], 2*time.Minute).State)
	recv.SetRespond(testreceiver.Status(http.StatusOK))

	// The waiting delivery's job, as while it runs and looks at the dead
	// head.
	var jobID int64
	testwait.For(t, time.Minute, func() (bool, string) {
		var state string
		require.NoError(t, pool.QueryRow(ctx, `
SELECT j.id, j.state FROM deliveries d JOIN river_job j ON j.id = d.job_id WHERE d.id = $1`, deliveries[1]).Scan(&jobID, &state))
		return state == "scheduled", "the waiting job is " + state + ", not snoozed behind the dead head"
	})
	_, err := pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempted_at = now() WHERE id = $1 AND state = 'scheduled'`, jobID)
	require.NoError(t, err)

	replay(t, pool, enqueuer, deliveries[0])
	require.Equal(t, store.StateSucceeded, waitFinished(t, pool, deliveries[0], time.Minute).State)
	// The worker wakes the next head right after recording the success;
	// let that wake pass, then record the snooze.
	time.Sleep(300 * time.Millisecond)
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '5 minutes' WHERE id = $1`, jobID)
	require.NoError(t, err)

	require.Equal(t, store.StateSucceeded, waitFinished(t, pool, deliveries[1], time.Minute).State)
}

// A FIFO webhook's recordings never wait for company
// (WEBHOOKD_RECORD_LINGER): the line's next delivery goes only once the
// one before it is recorded, so a linger would be added to every step of
// the line. With a one-second linger, a line of nine would take four
// seconds more if they waited (every other recording: the one after a
// wait comes over a linger after the one before it, so it goes at once);
// it takes well under.
func TestFIFORecordingsDoNotLinger(t *testing.T) {
	t.Parallel()
	const linger, line = time.Second, 9
	b := setupServer(t, func(c *server.Config) {
		c.DBMaxConns = 6
		c.MaxWorkers = 10
		c.RecordLinger = linger
	})
	recv := testreceiver.New(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	createFIFOWebhook(t, b.pool, b.keys, "acct_fifo_linger", recv.URL+"/")
	start := time.Now()
	var deliveries []string
	for n := range line {
		res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_fifo_linger", Type: "ping", Data: rawJSON(fmt.Sprintf(`{"n":%d}`, n))})
		deliveries = append(deliveries, res.Deliveries[0].ID)
	}
	for _, id := range deliveries {
		require.Equal(t, store.StateSucceeded, waitFinished(t, b.pool, id, time.Minute).State)
	}
	took := time.Since(start)
	t.Logf("a FIFO line of %d delivered in %s", line, took)
	require.Less(t, took, (line-1)/2*linger, "the line's recordings waited for company")
}

// While a FIFO line's head waits for its retry, the jobs waiting behind it
// wait until after that retry, and none of them runs meanwhile: a long line
// behind a failing endpoint costs nothing while it waits (before, the job
// right behind the head looked every second, the next every two...).
func TestFIFOLineWaitsQuietlyForItsHeadsRetry(t *testing.T) {
	t.Parallel()
	const followers = 20
	b := setupServer(t, func(c *server.Config) {
		c.DBMaxConns = 6
		c.MaxWorkers = 10
		c.RetryScale = 1 // the head's second attempt 30 s after its first
	})
	pool, ctx := b.pool, context.Background()
	recv := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	createFIFOWebhook(t, pool, b.keys, "acct_fifo_quiet", recv.URL+"/")
	var deliveries, events []string
	for n := range followers + 1 {
		res := enqueue(t, pool, b.enqueuer, &engine.Event{AccountID: "acct_fifo_quiet", Type: "ping", Data: rawJSON(fmt.Sprintf(`{"n":%d}`, n))})
		deliveries, events = append(deliveries, res.Deliveries[0].ID), append(events, res.EventID)
	}

	// Every job behind the head has looked at it since it failed, and
	// waits until after its retry.
	quiet := func() (bool, string) {
		var waiting, after int
		var nextAttempt *time.Time
		require.NoError(t, pool.QueryRow(ctx, `
WITH head AS (SELECT next_attempt_at FROM deliveries WHERE id = $1 AND attempts > 0 AND next_attempt_at > now())
SELECT count(*), count(*) FILTER (WHERE j.state = 'scheduled' AND j.scheduled_at > head.next_attempt_at), min(head.next_attempt_at)
FROM deliveries d JOIN river_job j ON j.id = d.job_id CROSS JOIN head
WHERE d.id = ANY($2)`, deliveries[0], deliveries[1:]).Scan(&waiting, &after, &nextAttempt))
		return waiting == followers && after == followers,
			fmt.Sprintf("%d of %d jobs behind the head wait until after its retry (at %v)", after, waiting, nextAttempt)
	}
	testwait.For(t, time.Minute, quiet)
	snoozes := func() float64 {
		return metricValue(t, scrape(t, "http://"+b.srv.MetricsAddr()+"/metrics"), `webhookd_job_snoozes_total{reason="fifo"}`)
	}
	before := snoozes()
	time.Sleep(3 * time.Second) // a window in which the old waits ran the first job 3 times
	require.Equal(t, before, snoozes(), "no job of the line ran while its head waited for its retry")
	done, state := quiet()
	require.True(t, done, state)
	for _, r := range recv.Requests() {
		require.Equal(t, events[0], r.Header.Get("Mono-Event-Id"), "only the head was attempted")
	}
}

// A FIFO line whose next head's wake was lost (a crash between the
// recording of its predecessor's success and the wake, or its job running
// when it was woken) moves on at the reconciler's next pass, not at the end
// of the job's own wait (here an hour).
func TestFIFOReconcilerWakesALostWake(t *testing.T) {
	t.Parallel()
	b := setupServer(t, func(c *server.Config) {
		c.DBMaxConns = 6
		c.MaxWorkers = 10
		c.ReconcileInterval = time.Second
	})
	pool, ctx := b.pool, context.Background()
	recv := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	createFIFOWebhook(t, pool, b.keys, "acct_fifo_lost_wake", recv.URL+"/")
	var deliveries []string
	for range 2 {
		res := enqueue(t, pool, b.enqueuer, &engine.Event{AccountID: "acct_fifo_lost_wake", Type: "ping", Data: rawJSON(`{}`)})
		deliveries = append(deliveries, res.Deliveries[0].ID)
	}
	// The waiting delivery's job, once it has snoozed behind the head, as
	// while it runs: the head's wake can't reach it.
	var jobID int64
	testwait.For(t, time.Minute, func() (bool, string) {
		err := pool.QueryRow(ctx, `
UPDATE river_job j SET state = 'running', attempted_at = now() FROM deliveries d
WHERE d.id = $1 AND j.id = d.job_id AND j.state IN ('available', 'scheduled') AND j.scheduled_at > now()
RETURNING j.id`, deliveries[1]).Scan(&jobID)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, "the waiting job has not snoozed behind the head"
		}
		require.NoError(t, err)
		return true, ""
	})
	recv.SetRespond(testreceiver.Status(http.StatusOK))
	require.Equal(t, store.StateSucceeded, waitFinished(t, pool, deliveries[0], time.Minute).State)
	// Let the worker's wake pass, then record the job's snooze: an hour.
	time.Sleep(300 * time.Millisecond)
	_, err := pool.Exec(ctx, `UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '1 hour' WHERE id = $1`, jobID)
	require.NoError(t, err)

	require.Equal(t, store.StateSucceeded, waitFinished(t, pool, deliveries[1], 30*time.Second).State)
}
