package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// A statement on the hot path that holds deliveries and then needs events
// (the batched load's order) while retention waits to drop a day: the
// drop gives way before PostgreSQL's deadlock detector would pick a
// victim, the statement goes on, and the drop succeeds on a later try.
func TestRetireDayGivesWayToTheHotPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := testdb.New(t)
	today := Day(time.Now())
	old := today.AddDate(0, 0, -40)
	_, err := EnsurePartitions(ctx, pool, old, old, 0)
	require.NoError(t, err)
	_, err = EnsurePartitions(ctx, pool, today, today, 0)
	require.NoError(t, err)

	// The hot path: holds deliveries.
	hot, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer hot.Rollback(ctx) //nolint:errcheck // no-op after commit
	_, err = hot.Exec(ctx, `SELECT count(*) FROM deliveries WHERE part_day = $1`, today)
	require.NoError(t, err)

	// Retention takes events, then waits for deliveries.
	type result struct {
		r   *Retirement
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := RetireDay(ctx, pool, old, &RetirePolicy{To: today, FinishedBefore: today, DeadBefore: today, LockTimeout: 20 * time.Second})
		done <- result{r, err}
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE events, deliveries, attempts%')`).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 5*time.Millisecond, "retention never waited for its locks")

	// The hot path now needs events: it must get them (no deadlock error,
	// whoever the detector would have picked), in well under the 1 s
	// deadlock_timeout plus the time to run.
	start := time.Now()
	_, err = hot.Exec(ctx, `SELECT count(*) FROM events WHERE part_day = $1`, today)
	require.NoError(t, err, "the hot path's statement")
	require.Less(t, time.Since(start), 5*time.Second)
	require.NoError(t, hot.Commit(ctx))

	select {
	case res := <-done:
		require.NoError(t, res.err, "the drop, on a later try")
	case <-ctx.Done():
		t.Fatal("RetireDay did not return")
	}
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, partitionName("deliveries", old)).Scan(&exists))
	require.False(t, exists, "the old day's partition was dropped")
}
