package retention_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/retention"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testclock"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	enq  *engine.Enqueuer
	hook string
}

// event enqueues one event (with idempotency key key when not empty) to the
// fixture's webhook and returns its event and delivery ids.
func (f *fixture) event(key string) (eventID, deliveryID string) {
	f.t.Helper()
	eventID, deliveries := f.fanOut(key)
	require.Len(f.t, deliveries, 1)
	return eventID, deliveries[f.hook]
}

// fanOut enqueues one event (with idempotency key key when not empty) to
// every live webhook of the fixture's account and returns its id and its
// deliveries' ids by webhook.
func (f *fixture) fanOut(key string) (eventID string, deliveries map[string]string) {
	f.t.Helper()
	ctx := context.Background()
	var res *engine.Enqueued
	require.NoError(f.t, pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		var err error
		res, err = f.enq.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_ret", Type: "order.created", Data: json.RawMessage(`{"n":1}`), IdempotencyKey: key})
		return err
	}))
	deliveries = map[string]string{}
	for _, d := range res.Deliveries {
		deliveries[d.WebhookID] = d.ID
	}
	return res.EventID, deliveries
}

// finish sets delivery id to state, finished at finished, with two attempts.
func (f *fixture) finish(id, state string, finished time.Time) {
	f.t.Helper()
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, `UPDATE deliveries SET state = $2, finished_at = $3, attempts = 2, gen_attempts = 2 WHERE id = $1`, id, state, finished)
	require.NoError(f.t, err)
	f.attempts(id)
}

// attempts records two attempts of delivery id, in its day partition.
func (f *fixture) attempts(id string) {
	f.t.Helper()
	_, err := f.pool.Exec(context.Background(), `
INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, status_code, signature_t, part_day)
SELECT id, n, 1, now(), now(), 1000, 500, 1, part_day FROM deliveries, generate_series(1, 2) AS n WHERE id = $1`, id)
	require.NoError(f.t, err)
}

func (f *fixture) replayRecord(id string) {
	f.t.Helper()
	_, err := f.pool.Exec(context.Background(), `INSERT INTO delivery_replays (delivery_id, generation, from_state) VALUES ($1, 2, 'dead')`, id)
	require.NoError(f.t, err)
}

func (f *fixture) count(query string, args ...any) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func (f *fixture) exists(name string) bool {
	f.t.Helper()
	var ok bool
	require.NoError(f.t, f.pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok))
	return ok
}

func (f *fixture) partDay(id string) time.Time {
	f.t.Helper()
	var day time.Time
	require.NoError(f.t, f.pool.QueryRow(context.Background(), `SELECT part_day FROM deliveries WHERE id = $1`, id).Scan(&day))
	return day
}

func newFixture(t *testing.T) *fixture {
	pool := testdb.New(t)
	enq, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	f := &fixture{t: t, pool: pool, enq: enq}
	f.hook = f.webhook("https://example.com/h")
	return f
}

// webhook adds a webhook to url to the fixture's account and returns its id.
func (f *fixture) webhook(url string) string {
	f.t.Helper()
	id := ident.New(ident.Webhook)
	_, err := f.pool.Exec(context.Background(), `
INSERT INTO webhooks (id, account_id, url, url_normalized, secret_ciphertext, secret_key_id)
VALUES ($1, 'acct_ret', $2, $2, '\x00', 'k')`, id, url)
	require.NoError(f.t, err)
	return id
}

// retired returns rep's retirement of day, or nil.
func retired(rep *retention.Report, day time.Time) *store.Retirement {
	for _, r := range rep.Retired {
		if r.Day.Equal(day) {
			return r
		}
	}
	return nil
}

func partition(table string, day time.Time) string {
	return fmt.Sprintf("%s_p%s", table, day.Format("20060102"))
}

// Retention on a stubbed clock: nothing goes before its time; after 30
// days succeeded history goes by dropping the day's partitions (with its
// events, attempts, idempotency keys and replay records) while dead,
// pending and late-finished deliveries move forward with their events and
// attempts, still found by id; after 90 days dead ones go too.
func TestRetentionDropsDaysAndKeepsWhatIsStillWanted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	now := time.Now().UTC()
	today := store.Day(now)
	clk := testclock.New(now)
	w, err := retention.New(f.pool, &retention.Config{Now: clk.Now})
	require.NoError(t, err)

	rep, err := w.Run(ctx)
	require.NoError(t, err)
	require.Empty(t, rep.Retired)
	for d := -1; d <= retention.AheadDefault; d++ {
		for _, table := range store.PartitionedTables {
			require.True(t, f.exists(partition(table, today.AddDate(0, 0, d))), "%s for today%+d", table, d)
		}
	}

	succEvent, succ := f.event("key-succeeded")
	f.finish(succ, store.StateSucceeded, now)
	f.replayRecord(succ)
	deadEvent, dead := f.event("key-dead")
	f.finish(dead, store.StateDead, now)
	f.replayRecord(dead)
	_, pending := f.event("")
	f.attempts(pending)
	lateEvent, late := f.event("")
	f.finish(late, store.StateSucceeded, now.Add(32*24*time.Hour)) // replayed, finished a month later
	require.Equal(t, 4, f.count(`SELECT count(*) FROM deliveries WHERE part_day = $1`, today))

	// 31 days on: today's deliveries may still be within 30 days of
	// finishing; nothing is dropped.
	clk.Set(now.Add(31 * 24 * time.Hour))
	rep, err = w.Run(ctx)
	require.NoError(t, err)
	require.Nil(t, retired(rep, today))
	require.True(t, f.exists(partition("deliveries", today)))

	// 33 days on: today is retired.
	later := now.Add(33 * 24 * time.Hour)
	clk.Set(later)
	rep, err = w.Run(ctx)
	require.NoError(t, err)
	r := retired(rep, today)
	require.NotNil(t, r)
	require.EqualValues(t, 3, r.MovedDeliveries, "dead, pending and late-finished move on")
	require.EqualValues(t, 3, r.MovedEvents)
	require.EqualValues(t, 6, r.MovedAttempts)
	for _, table := range store.PartitionedTables {
		require.False(t, f.exists(partition(table, today)), "%s partition of the retired day is dropped", table)
	}

	_, err = store.GetDelivery(ctx, f.pool, succ)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = store.GetEvent(ctx, f.pool, succEvent)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Zero(t, f.count(`SELECT count(*) FROM attempt_log WHERE delivery_id = $1`, succ))
	require.Zero(t, f.count(`SELECT count(*) FROM delivery_replays WHERE delivery_id = $1`, succ))
	require.Zero(t, f.count(`SELECT count(*) FROM idempotency_keys WHERE key = 'key-succeeded'`))

	movedTo := store.Day(later)
	for _, id := range []string{dead, pending, late} {
		d, err := store.GetDelivery(ctx, f.pool, id)
		require.NoError(t, err, "a kept delivery is found by id after moving")
		require.Len(t, d.AttemptList, 2, "its attempts moved with it")
		require.True(t, f.partDay(id).Equal(movedTo))
	}
	target, err := store.GetTarget(ctx, f.pool, pending)
	require.NoError(t, err, "the worker's lookup finds a moved pending delivery with its event")
	require.True(t, target.PartDay.Equal(movedTo))
	ev, err := store.GetEvent(ctx, f.pool, deadEvent)
	require.NoError(t, err)
	require.Len(t, ev.Deliveries, 1)
	_, err = store.GetEvent(ctx, f.pool, lateEvent)
	require.NoError(t, err)
	require.Equal(t, 1, f.count(`SELECT count(*) FROM delivery_replays WHERE delivery_id = $1`, dead))
	require.Equal(t, 1, f.count(`SELECT count(*) FROM idempotency_keys WHERE key = 'key-dead'`))

	// 95 days on: the dead delivery (dead for 95 > 90 days) and the late
	// one (finished 63 > 30 days ago) go; the pending one moves again.
	end := now.Add(95 * 24 * time.Hour)
	clk.Set(end)
	_, err = w.Run(ctx)
	require.NoError(t, err)
	for _, id := range []string{dead, late} {
		_, err = store.GetDelivery(ctx, f.pool, id)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	_, err = store.GetEvent(ctx, f.pool, deadEvent)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Zero(t, f.count(`SELECT count(*) FROM idempotency_keys`))
	require.Zero(t, f.count(`SELECT count(*) FROM delivery_replays`))
	d, err := store.GetDelivery(ctx, f.pool, pending)
	require.NoError(t, err, "a pending delivery is never dropped")
	require.Len(t, d.AttemptList, 2)
	require.True(t, f.partDay(pending).Equal(store.Day(end)))
	require.Equal(t, 1, f.count(`SELECT count(*) FROM deliveries`))
	require.Equal(t, 1, f.count(`SELECT count(*) FROM events`))
	require.Equal(t, 2, f.count(`SELECT count(*) FROM attempt_log`))
}

// A deleted webhook's pending and paused deliveries that were never
// cancelled are not carried forward when their day retires: they go with
// the day's partitions, with their attempts, and their event goes too
// unless a kept delivery of another webhook still needs it. The deleted
// webhook's finished deliveries are kept for their retention as any are.
func TestRetentionDropsDeletedWebhooksUnfinishedDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	gone := f.webhook("https://gone.example/h")
	now := time.Now().UTC()
	today := store.Day(now)
	clk := testclock.New(now)
	w, err := retention.New(f.pool, &retention.Config{Now: clk.Now})
	require.NoError(t, err)

	// An event to both webhooks: the live one's delivery is pending, the
	// deleted one's paused.
	sharedEvent, shared := f.fanOut("key-shared")
	require.Len(t, shared, 2)
	_, err = f.pool.Exec(ctx, `UPDATE deliveries SET state = 'paused', job_id = NULL WHERE id = $1`, shared[gone])
	require.NoError(t, err)
	// The next two events reach only the other webhook (the live one set
	// aside a moment): one stays pending, one dies.
	_, err = f.pool.Exec(ctx, `UPDATE webhooks SET deleted_at = now() WHERE id = $1`, f.hook)
	require.NoError(t, err)
	pendingEvent, pending := f.fanOut("key-pending")
	_, dead := f.fanOut("")
	_, err = f.pool.Exec(ctx, `UPDATE webhooks SET deleted_at = NULL WHERE id = $1`, f.hook)
	require.NoError(t, err)
	f.finish(dead[gone], store.StateDead, now)
	for _, id := range []string{shared[gone], shared[f.hook], pending[gone]} {
		f.attempts(id)
	}
	// The webhook is deleted, its pending and paused deliveries left behind
	// (as a delete before schema version 11 left paused ones, or as an
	// enqueue racing the delete leaves either).
	_, err = f.pool.Exec(ctx, `UPDATE webhooks SET deleted_at = now() WHERE id = $1`, gone)
	require.NoError(t, err)

	later := now.Add(33 * 24 * time.Hour)
	clk.Set(later)
	rep, err := w.Run(ctx)
	require.NoError(t, err)
	r := retired(rep, today)
	require.NotNil(t, r)
	require.EqualValues(t, 2, r.MovedDeliveries, "the live webhook's pending one and the dead one move on")
	require.EqualValues(t, 2, r.MovedEvents)
	require.EqualValues(t, 4, r.MovedAttempts, "theirs")

	for _, id := range []string{shared[gone], pending[gone]} {
		_, err := store.GetDelivery(ctx, f.pool, id)
		require.ErrorIs(t, err, store.ErrNotFound, "a deleted webhook's unfinished delivery is dropped")
		require.Zero(t, f.count(`SELECT count(*) FROM attempt_log WHERE delivery_id = $1`, id))
	}
	_, err = store.GetEvent(ctx, f.pool, pendingEvent)
	require.ErrorIs(t, err, store.ErrNotFound, "an event none of whose deliveries is kept goes")
	require.Zero(t, f.count(`SELECT count(*) FROM idempotency_keys WHERE key = 'key-pending'`))
	ev, err := store.GetEvent(ctx, f.pool, sharedEvent)
	require.NoError(t, err, "the event of a kept delivery stays")
	require.Len(t, ev.Deliveries, 1)
	require.Equal(t, shared[f.hook], ev.Deliveries[0].ID)
	d, err := store.GetDelivery(ctx, f.pool, shared[f.hook])
	require.NoError(t, err)
	require.Len(t, d.AttemptList, 2)
	require.True(t, f.partDay(dead[gone]).Equal(store.Day(later)), "a deleted webhook's dead delivery is kept for the dead retention")
	require.Equal(t, 2, f.count(`SELECT count(*) FROM deliveries`))
	require.Equal(t, 2, f.count(`SELECT count(*) FROM events`))
}

// A row for a day without a partition lands in the default partition
// (the insert never fails) and moves into the day's partition when it is
// created.
func TestRowsWithoutPartitionWaitInDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	now := time.Now().UTC()
	far := store.Day(now).AddDate(0, 0, 20)
	require.False(t, f.exists(partition("deliveries", far)))

	eventID, id := f.event("")
	_, err := f.pool.Exec(ctx, `UPDATE deliveries SET part_day = $2 WHERE id = $1`, id, far)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `UPDATE events SET part_day = $2 WHERE id = $1`, eventID, far)
	require.NoError(t, err)
	f.attempts(id)
	require.Equal(t, 1, f.count(`SELECT count(*) FROM deliveries_default`))
	require.Equal(t, 2, f.count(`SELECT count(*) FROM attempts_default`))

	clk := testclock.New(now.Add(19 * 24 * time.Hour)) // ensures yesterday to 2 days ahead: days 18 to 21
	w, err := retention.New(f.pool, &retention.Config{Now: clk.Now})
	require.NoError(t, err)
	_, err = w.Run(ctx)
	require.NoError(t, err)
	require.True(t, f.exists(partition("deliveries", far)))
	require.Zero(t, f.count(`SELECT count(*) FROM deliveries_default`))
	require.Zero(t, f.count(`SELECT count(*) FROM attempts_default`))
	require.Zero(t, f.count(`SELECT count(*) FROM events_default`))
	require.Equal(t, 1, f.count(`SELECT count(*) FROM `+partition("deliveries", far)))
	require.Equal(t, 2, f.count(`SELECT count(*) FROM `+partition("attempts", far)))
	d, err := store.GetDelivery(ctx, f.pool, id)
	require.NoError(t, err)
	require.Len(t, d.AttemptList, 2)
}

func TestConfigRejectsRetentionUnderADay(t *testing.T) {
	t.Parallel()
	_, err := retention.New(nil, &retention.Config{Retention: 12 * time.Hour})
	require.ErrorContains(t, err, "WEBHOOKD_RETENTION")
	_, err = retention.New(nil, &retention.Config{DeadRetention: time.Hour})
	require.ErrorContains(t, err, "WEBHOOKD_DEAD_RETENTION")
}

// A running server creates the partitions ahead on start (the periodic job
// runs on start), and delivers into them.
func TestServerCreatesPartitionsAhead(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, func(c *server.Config) { c.Retention = 2 * 24 * time.Hour })
	ctx := context.Background()
	ahead := partition("attempts", store.Day(time.Now()).AddDate(0, 0, retention.AheadDefault))
	testwait.For(t, 30*time.Second, func() (bool, string) {
		var ok bool
		require.NoError(t, srv.Pool().QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ahead).Scan(&ok))
		return ok, ahead + " was not created since start"
	})
}

// The pass deletes expired dashboard sessions (sign-in does too, but nobody
// may sign in for a long time) and keeps live ones.
func TestRetentionDeletesExpiredDashboardSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	now := time.Now().UTC()
	for i, expires := range []time.Time{now.Add(-time.Minute), now.Add(-13 * time.Hour), now.Add(time.Hour)} {
		_, err := f.pool.Exec(ctx, `INSERT INTO dashboard_sessions (token_hash, key_hash, csrf_token, created_at, expires_at) VALUES ($1, $2, 'csrf', $3, $4)`,
			[]byte{byte(i)}, []byte{0xAA}, expires.Add(-12*time.Hour), expires)
		require.NoError(t, err)
	}
	w, err := retention.New(f.pool, &retention.Config{Now: func() time.Time { return now }})
	require.NoError(t, err)
	rep, err := w.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), rep.SessionsExpired)
	require.Equal(t, 1, f.count(`SELECT count(*) FROM dashboard_sessions WHERE expires_at > now()`))
	require.Equal(t, 1, f.count(`SELECT count(*) FROM dashboard_sessions`))
}
