package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
)

// riverInsert is a notification on River's insert channel.
type riverInsert struct {
	at    time.Time // when it arrived
	queue string
	pid   uint32 // the backend that sent it
}

// listenRiverInsert listens on River's insert channel of the pool's
// database as River's producers do, and returns the notifications as they
// come.
func listenRiverInsert(t *testing.T, pool *pgxpool.Pool) (next func(timeout time.Duration) (riverInsert, bool)) {
	t.Helper()
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Hijack().Close(context.Background()) })
	var schema string
	require.NoError(t, conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema))
	_, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{schema + ".river_insert"}.Sanitize())
	require.NoError(t, err)
	return func(timeout time.Duration) (riverInsert, bool) {
		waitCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(waitCtx)
		if errors.Is(err, context.DeadlineExceeded) {
			return riverInsert{}, false
		}
		require.NoError(t, err)
		var payload struct {
			Queue string `json:"queue"`
		}
		require.NoError(t, json.Unmarshal([]byte(n.Payload), &payload), n.Payload)
		return riverInsert{at: time.Now(), queue: payload.Queue, pid: n.PID}, true
	}
}

// A job another process left available with a scheduled_at ahead (a
// retry River's scheduler made available before it is due) rings River's
// fetch when it comes due, never before, once: the alarms' read of what
// comes due finds it. A job of another queue, or one still scheduled
// (River's scheduler makes it available first), rings nothing.
func TestWakesScanRingsJobsComingDue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testdb.New(t)
	next := listenRiverInsert(t, pool)
	var due time.Time
	require.NoError(t, pool.QueryRow(ctx, `
INSERT INTO river_job (args, kind, max_attempts, priority, queue, scheduled_at, state)
VALUES ('{}', 'delivery', 25, 2, $1, now() + interval '1500 milliseconds', 'available'),
       ('{}', 'delivery', 25, 2, 'other', now() + interval '700 milliseconds', 'available'),
       ('{}', 'delivery', 25, 2, $1, now() + interval '900 milliseconds', 'scheduled')
RETURNING scheduled_at`, engine.QueueDeliveries).Scan(&due))

	w := engine.NewWakes(pool, engine.QueueDeliveries, &engine.WakesConfig{Granularity: 10 * time.Millisecond, Scan: 300 * time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	n, ok := next(10 * time.Second)
	require.True(t, ok, "no notification for the job coming due")
	require.Equal(t, engine.QueueDeliveries, n.queue)
	require.False(t, n.at.Before(due), "rang at %s, before the job was due at %s", n.at.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano))
	t.Logf("due %s, rang %s after", due.Format(time.RFC3339Nano), n.at.Sub(due))
	_, again := next(time.Second)
	require.False(t, again, "the job rang twice")
	require.EqualValues(t, 1, w.Notified())
}

// Alarms within one Granularity of each other ring once, at the later or
// after it; past Max an alarm is dropped (its job goes at the poll).
func TestWakesAtCoalescesAndBounds(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	next := listenRiverInsert(t, pool)
	runCtx, stop := context.WithCancel(t.Context())
	w := engine.NewWakes(pool, engine.QueueDeliveries, &engine.WakesConfig{Granularity: 100 * time.Millisecond, Scan: -1, Max: 1})
	done := make(chan struct{})
	go func() { defer close(done); w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// Two alarms in one 100 ms bucket (the bucket a whole one ahead), then
	// one more past Max, which rings nothing.
	g := int64(100 * time.Millisecond)
	bucket := time.Unix(0, (time.Now().UnixNano()/g+3)*g)
	first, later := bucket.Add(10*time.Millisecond), bucket.Add(90*time.Millisecond)
	w.At(first)
	w.At(later)
	w.At(bucket.Add(300 * time.Millisecond)) // its bucket is a second: over Max
	n, ok := next(5 * time.Second)
	require.True(t, ok, "no notification")
	require.Equal(t, engine.QueueDeliveries, n.queue)
	require.False(t, n.at.Before(later), "rang at %s, before the later alarm (%s)", n.at.Format(time.RFC3339Nano), later.Format(time.RFC3339Nano))
	_, again := next(time.Second)
	require.False(t, again, "rang twice: the same bucket twice, or the alarm over Max")
	require.EqualValues(t, 1, w.Notified())

	// Freed: a new alarm (in the past: at once) rings.
	w.At(time.Now().Add(-time.Second))
	_, ok = next(5 * time.Second)
	require.True(t, ok, "an alarm in the past rings at once")
}

// A FIFO line's pending deliveries woken by the statement that frees them
// (ordering set to none) are announced by River's insert notification from
// that statement's own transaction, at its commit (not before), so that
// every process fetches them at once rather than at its poll.
func TestFIFOWakeAnnouncesAtCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testserver.Start(t, func(c *server.Config) {
		c.FetchPollInterval = time.Minute
		c.HTTPTimeout = time.Minute // the head stays in flight
	})
	pool := srv.Pool()
	enqueuer, err := engine.NewEnqueuer(srv.River(), nil)
	require.NoError(t, err)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	recv := testreceiver.New(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select { // the head stays in flight
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	hookID := createFIFOWebhook(t, pool, srv.Keys, "acct_fifo_wake", recv.URL+"/")
	enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_fifo_wake", Type: "ping", Data: rawJSON(`{"n":1}`)})
	second := enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_fifo_wake", Type: "ping", Data: rawJSON(`{"n":2}`)})
	recv.Wait(t, 1, 20*time.Second)
	// The second waits behind the head, its job snoozed.
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, pool.QueryRow(ctx, `
SELECT coalesce(bool_or(j.scheduled_at > now() AND j.state IN ('available', 'scheduled', 'retryable')), false)
FROM deliveries d JOIN river_job j ON j.id = d.job_id WHERE d.id = $1`, second.Deliveries[0].ID).Scan(&waiting))
		return waiting
	}, 20*time.Second, 20*time.Millisecond, "the second delivery's job never snoozed behind the head")

	next := listenRiverInsert(t, pool)
	// A connection of its own: the server's alarms send notifications
	// from its pool's connections.
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	var pid uint32
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	require.NoError(t, store.SetOrdering(ctx, tx, hookID, store.OrderingNone, time.Now().UTC()))
	// Others' notifications (the server's alarms) may come; not this
	// transaction's before its commit.
	for {
		n, ok := next(300 * time.Millisecond)
		if !ok {
			break
		}
		require.NotEqual(t, pid, n.pid, "announced before the commit")
	}
	require.NoError(t, tx.Commit(ctx))
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, ok := next(time.Until(deadline))
		require.True(t, ok, "no notification from the freeing transaction")
		if n.pid == pid {
			require.Equal(t, engine.QueueDeliveries, n.queue)
			break
		}
	}
	// And River fetches it at once: the second goes long before the poll.
	recv.Wait(t, 2, 20*time.Second)
}

// An enqueue whose deliveries River inserts rings the deliveries queue's
// alarm at its Handoff's Start, once the transaction has committed (River
// announces at most one insert per client per InsertNotifyInterval: a job
// just after another's could otherwise wait for the poll); not before, and
// not for an enqueue that inserted no job.
func TestEnqueueAnnouncesAfterCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	createWebhook(t, pool, keys, "acct_announce", "http://127.0.0.2:9/")
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	w := engine.NewWakes(pool, engine.QueueDeliveries, &engine.WakesConfig{Granularity: 10 * time.Millisecond, Scan: -1})
	enqueuer.SetWakes(w)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(runCtx) }()
	defer func() { stop(); <-done }()
	next := listenRiverInsert(t, pool)

	// Outside any transaction of the server's: the only notifications are
	// River's own insert's (at the commit) and the alarm's.
	enqueueHandoff := func(account string) *engine.Handoff {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, ho, err := enqueuer.EnqueueManyHandoff(ctx, tx, []*engine.Event{{AccountID: account, Type: "ping", Data: rawJSON(`{}`)}})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		return ho
	}
	ho := enqueueHandoff("acct_announce")
	// River's own notification, from the insert's transaction.
	_, ok := next(5 * time.Second)
	require.True(t, ok, "River announced the insert")
	_, again := next(300 * time.Millisecond)
	require.False(t, again, "rang before the Start")
	require.Zero(t, w.Notified())
	ho.Start()
	_, ok = next(5 * time.Second)
	require.True(t, ok, "no alarm after the Start")
	require.Eventually(t, func() bool { return w.Notified() == 1 }, 5*time.Second, 10*time.Millisecond)

	// An account without webhooks: no job, no alarm.
	enqueueHandoff("acct_none").Start()
	_, again = next(500 * time.Millisecond)
	require.False(t, again, "rang for an enqueue that inserted no job")
	require.EqualValues(t, 1, w.Notified())
}
