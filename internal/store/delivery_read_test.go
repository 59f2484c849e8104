package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/testdb"
)

// GetDelivery from a pool reads the delivery and its attempts on one
// snapshot. An attempt recorded after it read the delivery's row, and
// before it read the attempts, is not shown beside the row from before it:
// a client polling GET /v1/deliveries/{id} at the moment of a record sees
// the delivery before the attempt or after it, never half of each. The
// attempts' read is held back by a lock taken before GetDelivery starts,
// so the record commits exactly between its two reads.
func TestGetDeliveryOneSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := testdb.New(t)
	id := ident.New(ident.Delivery)
	day := Day(time.Now())
	_, err := pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, next_attempt_at, part_day)
VALUES ($1, 'evt_s', 'wh_s', 'acct_s', 'ping', 'pending', now(), $2)`, id, day)
	require.NoError(t, err)

	// The recording transaction holds the attempts until it commits.
	rec, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer rec.Rollback(ctx) //nolint:errcheck // committed below
	_, err = rec.Exec(ctx, `LOCK TABLE attempts IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	type got struct {
		d   *Delivery
		err error
	}
	done := make(chan got, 1)
	go func() {
		d, err := GetDelivery(ctx, pool, id)
		done <- got{d, err}
	}()
	// GetDelivery has read the row once it waits for the attempts' lock
	// (in this test's database: pg_locks shows the whole server's).
	require.Eventually(t, func() bool {
		var waiting bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE NOT l.granted AND c.relname LIKE 'attempts%'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting)
		return err == nil && waiting
	}, 30*time.Second, 5*time.Millisecond, "GetDelivery never waited for the attempts")

	_, err = rec.Exec(ctx, `
INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, status_code, signature_t, part_day)
VALUES ($1, 1, 0, now(), now(), 1000, 200, 1, $2)`, id, day)
	require.NoError(t, err)
	_, err = rec.Exec(ctx, `UPDATE deliveries SET state = 'succeeded', attempts = 1, next_attempt_at = NULL, finished_at = now() WHERE id = $1`, id)
	require.NoError(t, err)
	require.NoError(t, rec.Commit(ctx))

	g := <-done
	require.NoError(t, g.err)
	require.Equal(t, StatePending, g.d.State, "the row was read before the record")
	require.Zero(t, g.d.Attempts)
	require.Empty(t, g.d.AttemptList, "an attempt recorded after the row was read, shown beside the row from before it")

	// The next read sees both.
	d, err := GetDelivery(ctx, pool, id)
	require.NoError(t, err)
	require.Equal(t, StateSucceeded, d.State)
	require.Len(t, d.AttemptList, 1)
}
