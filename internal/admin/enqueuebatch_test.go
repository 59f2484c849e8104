package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
)

// Events of different requests share a transaction, yet each is answered as
// if alone: a reused idempotency key or an invalid event fails by itself and
// the others are stored; a repeat within the batch gets the first's result.
func TestEnqueueEachAnswersEachEventAlone(t *testing.T) {
	ctx := context.Background()
	pool, enqueuer, keys := enqueueFixture(t)
	api, err := New(pool, enqueuer, keys, nil)
	require.NoError(t, err)

	ev := func(key, data string) *engine.Event {
		return &engine.Event{AccountID: "acct_b", Type: "ping", Data: json.RawMessage(data), IdempotencyKey: key}
	}
	// A key stored by an earlier request.
	first, err := api.enqueueEach(ctx, []*engine.Event{ev("k-old", `{"v":1}`)})
	require.NoError(t, err)
	require.NoError(t, first[0].err)

	events := []*engine.Event{
		ev("", `{"n":0}`),
		ev("k-old", `{"v":2}`), // reused with another payload: 409
		ev("k-new", `{"n":2}`),
		ev("k-new", `{"n":2}`), // the same key and payload in the same batch: a repeat
		ev("k-two", `{"n":4}`),
		ev("k-two", `{"n":5}`), // the same key, another payload, same batch: 409
		ev("", `not json`),     // invalid
		ev("k-old", `{"v":1}`), // a repeat of the earlier request
	}
	out, err := api.enqueueEach(ctx, events)
	require.NoError(t, err)
	require.Len(t, out, len(events))

	for _, i := range []int{0, 2, 4} {
		require.NoError(t, out[i].err, "event %d", i)
		require.False(t, out[i].res.Repeat, "event %d", i)
	}
	require.ErrorIs(t, out[1].err, engine.ErrIdempotencyKeyReused)
	require.ErrorIs(t, out[5].err, engine.ErrIdempotencyKeyReused)
	var invalid *engine.ValidationError
	require.ErrorAs(t, out[6].err, &invalid, "event 6: %v", out[6].err)
	require.Equal(t, "data", invalid.Field)
	require.NoError(t, out[3].err)
	require.True(t, out[3].res.Repeat)
	require.Equal(t, out[2].res.EventID, out[3].res.EventID)
	require.NoError(t, out[7].err)
	require.True(t, out[7].res.Repeat)
	require.Equal(t, first[0].res.EventID, out[7].res.EventID)

	var stored int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&stored))
	require.Equal(t, 4, stored, "the earlier event and events 0, 2 and 4")
}

// IntakeTransactions is how many intake transactions run at once: with
// one, a request waits behind a transaction that waits (here on an
// idempotency key another transaction is storing); with two, it is stored
// beside it. Either way the waiting one is stored once the key is free.
func TestIntakeTransactions(t *testing.T) {
	ctx := context.Background()
	pool, enqueuer, keys := enqueueFixture(t)
	ev := func(key, data string) *engine.Event {
		return &engine.Event{AccountID: "acct_t", Type: "ping", Data: json.RawMessage(data), IdempotencyKey: key}
	}
	for _, n := range []int{1, 2} {
		api, err := New(pool, enqueuer, keys, &Config{IntakeTransactions: n})
		require.NoError(t, err)
		key := fmt.Sprintf("held-%d", n)
		// Another transaction stores the key and holds it, uncommitted.
		holder, err := pool.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = holder.Rollback(ctx) })
		_, _, err = enqueuer.EnqueueEach(ctx, holder, []*engine.Event{ev(key, `{"v":1}`)})
		require.NoError(t, err)

		waiting := make(chan error, 1)
		go func() {
			_, err := api.enqueues.Do(ctx, ev(key, `{"v":1}`))
			waiting <- err
		}()
		// The waiting request's transaction is under way (it waits for
		// the key's row lock) before the next request comes.
		require.Eventually(t, func() bool {
			var n int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&n))
			return n == 1
		}, 10*time.Second, 10*time.Millisecond)

		other, cancel := context.WithTimeout(ctx, time.Second)
		res, otherErr := api.enqueues.Do(other, ev("", `{"v":2}`))
		cancel()
		require.NoError(t, holder.Commit(ctx))
		if n == 1 {
			require.ErrorIs(t, otherErr, context.DeadlineExceeded, "one transaction at a time: the next waits behind the waiting one")
		} else {
			require.NoError(t, otherErr, "two at a time: the next is stored beside the waiting one")
			require.NoError(t, res.err)
		}
		select {
		case err := <-waiting:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting request was not answered once the key was free")
		}
	}
	// The request that gave up waiting (one transaction) is still stored
	// after the one it waited behind, as the batcher promises; and the other.
	require.Eventually(t, func() bool {
		var stored int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE account_id = 'acct_t' AND idempotency_key IS NULL`).Scan(&stored))
		return stored == 2
	}, 10*time.Second, 10*time.Millisecond)
}

// enqueueFixture is a test database with an enqueuer and a keyring.
func enqueueFixture(t *testing.T) (*pgxpool.Pool, *engine.Enqueuer, *keyring.Keyring) {
	pool := testdb.New(t)
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	return pool, enqueuer, keys
}

// IntakeLinger: a request that finds the intake idle, soon after the one
// before it, waits for company, and one that comes meanwhile shares its
// transaction; the first request, with nothing before it, goes at once.
// Without the linger each would commit alone (the intake is idle for both).
func TestIntakeLinger(t *testing.T) {
	ctx := context.Background()
	pool, enqueuer, keys := enqueueFixture(t)
	api, err := New(pool, enqueuer, keys, &Config{IntakeLinger: time.Second})
	require.NoError(t, err)
	ev := func(n int) *engine.Event {
		return &engine.Event{AccountID: "acct_l", Type: "ping", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
	}
	start := time.Now()
	first, err := api.enqueues.Do(ctx, ev(0))
	require.NoError(t, err)
	require.NoError(t, first.err)
	require.Less(t, time.Since(start), time.Second, "the first request waited")

	answers := make(chan enqueued, 2)
	for n := 1; n <= 2; n++ {
		go func() {
			res, err := api.enqueues.Do(ctx, ev(n))
			if err != nil {
				res.err = err
			}
			answers <- res
		}()
		time.Sleep(50 * time.Millisecond)
	}
	ids := map[string]bool{}
	for range 2 {
		select {
		case a := <-answers:
			require.NoError(t, a.err)
			ids[a.res.EventID] = true
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
		}
	}
	xmin := func(id string) string {
		var x string
		require.NoError(t, pool.QueryRow(ctx, `SELECT xmin::text FROM events WHERE id = $1`, id).Scan(&x))
		return x
	}
	require.Len(t, ids, 2)
	xmins := []string{xmin(first.res.EventID)}
	for id := range ids {
		xmins = append(xmins, xmin(id))
	}
	require.NotEqual(t, xmins[0], xmins[1], "the first request shared a transaction")
	require.Equal(t, xmins[1], xmins[2], "the two requests that came close together were stored by one transaction")
}
