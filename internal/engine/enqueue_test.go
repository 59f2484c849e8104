package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// insertCounter is a River middleware that records the size of every
// InsertMany call.
type insertCounter struct {
	mu    sync.Mutex
	calls []int
}

func (c *insertCounter) middleware() rivertype.Middleware {
	return river.JobInsertMiddlewareFunc(func(ctx context.Context, params []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
		c.mu.Lock()
		c.calls = append(c.calls, len(params))
		c.mu.Unlock()
		return doInner(ctx)
	})
}

func (c *insertCounter) take() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

// closedTx is a transaction that is already over: any SQL on it fails, so
// a call that returns a validation error with it issued none.
func closedTx(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(context.Background())
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(context.Background()))
	return tx
}

func TestEnqueueMany(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		pool     *pgxpool.Pool
		keys     *keyring.Keyring
		enqueuer *engine.Enqueuer
		inserts  *insertCounter
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := testdb.New(t)
		keys, err := keyring.Parse(keyring.Generate())
		require.NoError(t, err)
		inserts := &insertCounter{}
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Middleware:          []rivertype.Middleware{inserts.middleware()},
			SkipUnknownJobCheck: true,
		})
		require.NoError(t, err)
		enqueuer, err := engine.NewEnqueuer(client, nil)
		require.NoError(t, err)
		return &testBundle{pool: pool, keys: keys, enqueuer: enqueuer, inserts: inserts}
	}
	enqueueMany := func(t *testing.T, b *testBundle, events []*engine.Event) []*engine.Enqueued {
		t.Helper()
		ctx := context.Background()
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		res, err := b.enqueuer.EnqueueMany(ctx, tx, events)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		return res
	}

	t.Run("OneInsertManyForTheBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		hookA1, _ := createWebhook(t, b.pool, b.keys, "acct_a", "http://127.0.0.2:9/a1")
		hookA2, _ := createWebhook(t, b.pool, b.keys, "acct_a", "http://127.0.0.2:9/a2")
		hookB, _ := createWebhook(t, b.pool, b.keys, "acct_b", "http://127.0.0.2:9/b")

		// A full batch over three accounts (two webhooks, one, none).
		var events []*engine.Event
		for i := range engine.MaxBatchSize {
			events = append(events, &engine.Event{
				AccountID: []string{"acct_a", "acct_b", "acct_c"}[i%3], Type: "payment.created",
				Data: rawJSON(fmt.Sprintf(`{"i":%d}`, i)),
			})
		}
		res := enqueueMany(t, b, events)
		// 334 events × 2 + 333 × 1 deliveries.
		require.Equal(t, []int{1001}, b.inserts.take(), "one InsertMany with every delivery of the batch")

		require.Len(t, res, engine.MaxBatchSize)
		for i, r := range res {
			require.False(t, r.Repeat)
			var hooks []string
			for _, d := range r.Deliveries {
				hooks = append(hooks, d.WebhookID)
			}
			require.Equal(t, [][]string{{hookA1, hookA2}, {hookB}, nil}[i%3], hooks, "event %d", i)
		}
		require.Equal(t, 1000, count(t, b.pool, "events"))
		require.Equal(t, 1001, count(t, b.pool, "deliveries"))

		// Each delivery points at its own job, whose args name it.
		var mismatched int
		require.NoError(t, b.pool.QueryRow(context.Background(), `
SELECT count(*) FROM deliveries d LEFT JOIN river_job j ON j.id = d.job_id
WHERE j.id IS NULL OR j.args->>'delivery_id' <> d.id`).Scan(&mismatched))
		require.Zero(t, mismatched)

		// The stored body is the envelope of the event's own data.
		ev, err := store.GetEvent(context.Background(), b.pool, res[7].EventID)
		require.NoError(t, err)
		require.Contains(t, string(ev.Body), `{"event":{"data":{"i":7},"type":"payment.created"},"timestamp":"`)
		require.Len(t, ev.Deliveries, 1)
		require.Equal(t, res[7].Deliveries[0].ID, ev.Deliveries[0].ID)

		// Enqueue is the same path for one event.
		enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_a", Type: "x", Data: rawJSON(`{}`)})
		require.Equal(t, []int{2}, b.inserts.take())

		// No webhooks at all: no River insert.
		enqueueMany(t, b, []*engine.Event{{AccountID: "acct_c", Type: "x", Data: rawJSON(`{}`)}})
		require.Empty(t, b.inserts.take())
	})

	t.Run("ValidatesEverythingBeforeSQL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		tx := closedTx(t, b.pool)
		_, err := b.enqueuer.EnqueueMany(context.Background(), tx, []*engine.Event{
			{AccountID: "acct_a", Type: "ok", Data: rawJSON(`{}`)},
			{AccountID: "acct a", Type: "ok", Data: rawJSON(`{}`)},
			{AccountID: "acct_a", Type: "Not OK", Data: rawJSON(`{}`)},
			nil,
			{AccountID: "acct_a", Type: "ok", Data: rawJSON(`[]`)},
		})
		var batchErr *engine.BatchError
		require.ErrorAs(t, err, &batchErr)
		var got []string
		for _, it := range batchErr.Items {
			got = append(got, fmt.Sprintf("%d:%s:%s", it.Index, it.Field, it.Code))
		}
		require.Equal(t, []string{"1:account_id:invalid_account_id", "2:type:invalid_event_type", "3:event:missing_field", "4:data:invalid_data"}, got)
		require.Contains(t, err.Error(), "event 1")

		// Too many events, and an idempotency key reused within the batch,
		// are also refused before any SQL.
		events := make([]*engine.Event, engine.MaxBatchSize+1)
		for i := range events {
			events[i] = &engine.Event{AccountID: "acct_a", Type: "ok", Data: rawJSON(`{}`)}
		}
		_, err = b.enqueuer.EnqueueMany(context.Background(), tx, events)
		require.ErrorIs(t, err, engine.ErrBatchTooLarge)

		_, err = b.enqueuer.EnqueueMany(context.Background(), tx, []*engine.Event{
			{AccountID: "acct_a", Type: "ok", Data: rawJSON(`{"n":1}`), IdempotencyKey: "k"},
			{AccountID: "acct_b", Type: "ok", Data: rawJSON(`{"n":2}`), IdempotencyKey: "k"},
			{AccountID: "acct_a", Type: "ok", Data: rawJSON(`{"n":2}`), IdempotencyKey: "k"},
		})
		var conflict *engine.IdempotencyConflictError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, engine.IdempotencyConflictError{Index: 2, Earlier: 0}, *conflict)
		require.ErrorIs(t, err, engine.ErrIdempotencyKeyReused)

		// An empty batch does nothing.
		res, err := b.enqueuer.EnqueueMany(context.Background(), tx, nil)
		require.NoError(t, err)
		require.Empty(t, res)
		require.Empty(t, b.inserts.take())
	})

	t.Run("IdempotencyPerEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createWebhook(t, b.pool, b.keys, "acct_a", "http://127.0.0.2:9/a")

		first := enqueueMany(t, b, []*engine.Event{
			{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"n":1}`), IdempotencyKey: "k1"},
			{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"n":2}`), IdempotencyKey: "k2"},
			{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"n":1}`), IdempotencyKey: "k1"},
		})
		require.Equal(t, []int{2}, b.inserts.take())
		require.False(t, first[0].Repeat)
		require.False(t, first[1].Repeat)
		require.True(t, first[2].Repeat)
		require.Equal(t, first[0].EventID, first[2].EventID)
		require.Equal(t, first[0].Deliveries, first[2].Deliveries)

		// Repeats return the originals, with their deliveries.
		second := enqueueMany(t, b, []*engine.Event{
			{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"n":3}`), IdempotencyKey: "k3"},
			{AccountID: "acct_a", Type: "t", Data: rawJSON(` { "n" : 2 } `), IdempotencyKey: "k2"},
		})
		require.False(t, second[0].Repeat)
		require.Equal(t, &engine.Enqueued{EventID: first[1].EventID, Deliveries: first[1].Deliveries, Repeat: true}, second[1])
		require.Equal(t, 3, count(t, b.pool, "events"))

		// A stored key with another payload names its index; the caller
		// rolls back and nothing of the batch remains.
		ctx := context.Background()
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		_, err = b.enqueuer.EnqueueMany(ctx, tx, []*engine.Event{
			{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"n":4}`), IdempotencyKey: "k4"},
			{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"n":5}`)},
			{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"n":9}`), IdempotencyKey: "k3"},
		})
		var conflict *engine.IdempotencyConflictError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, engine.IdempotencyConflictError{Index: 2, Earlier: -1}, *conflict)
		require.NoError(t, tx.Rollback(ctx))
		require.Equal(t, 3, count(t, b.pool, "events"))
		require.Equal(t, 3, count(t, b.pool, "idempotency_keys"))
	})

	t.Run("ConcurrentBatchesShareKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		createWebhook(t, b.pool, b.keys, "acct_a", "http://127.0.0.2:9/a")
		ctx := context.Background()

		// The second batch, with the same keys in the other order, waits
		// for the first to commit and then answers with its events.
		events := func(keys ...string) []*engine.Event {
			var out []*engine.Event
			for _, k := range keys {
				out = append(out, &engine.Event{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"k":"` + k + `"}`), IdempotencyKey: k})
			}
			return out
		}
		tx1, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx1.Rollback(ctx) //nolint:errcheck
		first, err := b.enqueuer.EnqueueMany(ctx, tx1, events("a", "b", "c"))
		require.NoError(t, err)

		type result struct {
			res []*engine.Enqueued
			err error
		}
		done := make(chan result, 1)
		go func() {
			tx2, err := b.pool.Begin(ctx)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer tx2.Rollback(ctx) //nolint:errcheck
			res, err := b.enqueuer.EnqueueMany(ctx, tx2, events("c", "b", "a", "d"))
			if err == nil {
				err = tx2.Commit(ctx)
			}
			done <- result{res, err}
		}()
		select {
		case r := <-done:
			t.Fatalf("the second batch did not wait for the first: %v", r.err)
		case <-time.After(200 * time.Millisecond):
		}
		require.NoError(t, tx1.Commit(ctx))

		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, first[2].EventID, r.res[0].EventID)
		require.Equal(t, first[1].EventID, r.res[1].EventID)
		require.Equal(t, first[0].EventID, r.res[2].EventID)
		for i := range 3 {
			require.True(t, r.res[i].Repeat)
		}
		require.False(t, r.res[3].Repeat)
		require.Equal(t, 4, count(t, b.pool, "events"))
	})
}

// Enqueue keeps its single-event errors: a *ValidationError, and a reused
// key that is ErrIdempotencyKeyReused.
func TestEnqueueErrors(t *testing.T) {
	t.Parallel()

	pool := testdb.New(t)
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)

	_, err = enqueuer.Enqueue(context.Background(), closedTx(t, pool), &engine.Event{AccountID: "acct_a", Type: "t"})
	var v *engine.ValidationError
	require.ErrorAs(t, err, &v)
	require.Equal(t, "data", v.Field)

	enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_a", Type: "t", Data: rawJSON(`{}`), IdempotencyKey: "k"})
	tx, err := pool.Begin(context.Background())
	require.NoError(t, err)
	defer tx.Rollback(context.Background()) //nolint:errcheck
	_, err = enqueuer.Enqueue(context.Background(), tx, &engine.Event{AccountID: "acct_a", Type: "t", Data: rawJSON(`{"x":1}`), IdempotencyKey: "k"})
	require.ErrorIs(t, err, engine.ErrIdempotencyKeyReused, "%v", err)
}
