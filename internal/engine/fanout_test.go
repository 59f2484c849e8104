package engine_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
)

// MaxFanout bounds the deliveries one call creates, counted as they are
// planned (event-type filters applied, repeats of an idempotency key not
// counted): over it, a *FanoutError and nothing stored. EnqueueEach judges
// each event alone; the default (the outbox's) is no limit.
func TestEnqueueFanoutLimit(t *testing.T) {
	t.Parallel()

	const account = "acct_fanout"
	type testBundle struct {
		pool    *pgxpool.Pool
		client  *river.Client[pgx.Tx]
		limited *engine.Enqueuer
	}
	// One database: acct_fanout has four webhooks taking every type and two
	// taking only order.paid, so order.created makes 4 deliveries and
	// order.paid 6. The limit is 5.
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	for i := range 6 {
		id, _ := createWebhook(t, pool, keys, account, "http://127.0.0.2:1/"+string(rune('a'+i)))
		if i >= 4 {
			_, err := pool.Exec(context.Background(), `UPDATE webhooks SET event_types = '{order.paid}' WHERE id = $1`, id)
			require.NoError(t, err)
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{SkipUnknownJobCheck: true})
	require.NoError(t, err)
	limited, err := engine.NewEnqueuerWithConfig(client, &engine.EnqueuerConfig{MaxFanout: 5})
	require.NoError(t, err)
	require.Equal(t, 5, limited.MaxFanout())
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{pool: pool, client: client, limited: limited}
	}
	event := func(typ, key string) *engine.Event {
		return &engine.Event{AccountID: account, Type: typ, Data: rawJSON(`{"n":1}`), IdempotencyKey: key}
	}
	// inTx runs enqueue in a transaction rolled back at the end, after
	// checking that a failed call left no row in it.
	inTx := func(t *testing.T, b *testBundle, enqueue func(pgx.Tx) error) error {
		t.Helper()
		ctx := context.Background()
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		err = enqueue(tx)
		if err != nil {
			require.Zero(t, count(t, tx, "events"))
			require.Zero(t, count(t, tx, "deliveries"))
			require.Zero(t, count(t, tx, "river_job"))
		}
		return err
	}
	requireFanout := func(t *testing.T, err error, deliveries, index int) {
		t.Helper()
		require.ErrorIs(t, err, engine.ErrFanoutTooLarge)
		var f *engine.FanoutError
		require.ErrorAs(t, err, &f)
		require.Equal(t, engine.FanoutError{Deliveries: deliveries, Limit: 5, Index: index}, *f)
	}

	t.Run("Enqueue", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		require.NoError(t, inTx(t, b, func(tx pgx.Tx) error {
			res, err := b.limited.Enqueue(context.Background(), tx, event("order.created", ""))
			if err == nil {
				require.Len(t, res.Deliveries, 4)
			}
			return err
		}))
		err := inTx(t, b, func(tx pgx.Tx) error {
			_, err := b.limited.Enqueue(context.Background(), tx, event("order.paid", ""))
			return err
		})
		requireFanout(t, err, 6, -1)
	})

	t.Run("EnqueueManyCountsTheBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		// 4 + 4 deliveries: each event is within the limit, the batch is not.
		err := inTx(t, b, func(tx pgx.Tx) error {
			_, err := b.limited.EnqueueMany(context.Background(), tx, []*engine.Event{event("order.created", "k1"), event("order.created", "k2")})
			return err
		})
		requireFanout(t, err, 8, -1)
	})

	t.Run("EnqueueEachCountsEachEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		require.NoError(t, inTx(t, b, func(tx pgx.Tx) error {
			res, _, err := b.limited.EnqueueEach(context.Background(), tx, []*engine.Event{event("order.created", ""), event("order.created", "")})
			if err == nil {
				require.Len(t, res, 2)
			}
			return err
		}))
		err := inTx(t, b, func(tx pgx.Tx) error {
			_, _, err := b.limited.EnqueueEach(context.Background(), tx, []*engine.Event{event("order.created", ""), event("order.created", ""), event("order.paid", "")})
			return err
		})
		requireFanout(t, err, 6, 2)
	})

	t.Run("RepeatsCreateNone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		ctx := context.Background()
		require.NoError(t, inTx(t, b, func(tx pgx.Tx) error {
			if _, err := b.limited.Enqueue(ctx, tx, event("order.created", "repeat-1")); err != nil {
				return err
			}
			// The first event's repeat creates nothing: 0 + 4 deliveries.
			res, err := b.limited.EnqueueMany(ctx, tx, []*engine.Event{event("order.created", "repeat-1"), event("order.created", "repeat-2")})
			if err == nil {
				require.True(t, res[0].Repeat)
				require.False(t, res[1].Repeat)
			}
			return err
		}))
	})

	t.Run("OutboxDefaultNoLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		outbox, err := engine.NewEnqueuer(b.client, nil)
		require.NoError(t, err)
		require.Zero(t, outbox.MaxFanout())
		require.NoError(t, inTx(t, b, func(tx pgx.Tx) error {
			res, err := outbox.EnqueueMany(context.Background(), tx, []*engine.Event{event("order.paid", ""), event("order.paid", ""), event("order.paid", "")})
			if err == nil {
				require.Len(t, res[2].Deliveries, 6)
			}
			return err
		}))
	})

	t.Run("NegativeLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		_, err := engine.NewEnqueuerWithConfig(b.client, &engine.EnqueuerConfig{MaxFanout: -1})
		require.ErrorContains(t, err, "MaxFanout")
	})
}
