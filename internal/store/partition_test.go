package store

import (
	"context"
	"fmt"
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
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, PartitionName("deliveries", old)).Scan(&exists))
	require.False(t, exists, "the old day's partition was dropped")
}

// Creating a partition waits for its table's default partition only a
// moment at a time: while a long query holds it, the hot path's statements
// (which queue behind a waiting exclusive lock) go on, and the partition
// is made once the query ends.
func TestEnsurePartitionsGivesWayToTheHotPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := testdb.New(t)
	day := Day(time.Now()).AddDate(0, 0, 20)

	// A long query holds the default partition of deliveries.
	long, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer long.Rollback(ctx) //nolint:errcheck // no-op after commit
	_, err = long.Exec(ctx, `SELECT count(*) FROM deliveries_default`)
	require.NoError(t, err)

	type result struct {
		created int
		err     error
	}
	done := make(chan result, 1)
	go func() {
		n, err := EnsurePartitions(ctx, pool, day, day, 20*time.Second)
		done <- result{n, err}
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND (query LIKE 'LOCK TABLE "deliveries_default"%' OR query LIKE '%webhookd_ensure_partition%'))`).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 5*time.Millisecond, "the partition's creation never waited for its lock")

	// The hot path meanwhile: each statement on deliveries gets through in
	// about one try (200 ms) at worst, not after the long query's 3 s.
	deadline := time.Now().Add(3 * time.Second)
	var worst time.Duration
	probe := time.NewTicker(10 * time.Millisecond) // a statement every 10 ms
	defer probe.Stop()
	for n := 0; time.Now().Before(deadline); n++ {
		start := time.Now()
		_, err := pool.Exec(ctx, `SELECT count(*) FROM deliveries WHERE id = $1`, fmt.Sprint("dlv_", n))
		require.NoError(t, err)
		worst = max(worst, time.Since(start))
		<-probe.C
	}
	require.Less(t, worst, 1500*time.Millisecond, "a hot-path statement queued behind the waiting lock")
	select {
	case res := <-done:
		t.Fatalf("EnsurePartitions returned while the long query held its lock: %+v", res)
	default:
	}

	require.NoError(t, long.Commit(ctx))
	select {
	case res := <-done:
		require.NoError(t, res.err, "the partitions, on a later try")
		require.Equal(t, len(PartitionedTables), res.created)
	case <-ctx.Done():
		t.Fatal("EnsurePartitions did not return")
	}
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, PartitionName("deliveries", day)).Scan(&exists))
	require.True(t, exists)
}

// A delivery whose row moves while its attempt is being recorded is
// recorded where it went, not skipped (which would leave it pending, to be
// sent again): moved within its day (the day's partition created, taking
// the row out of the default partition) or to a later day (retention).
func TestRecordAttemptsFollowsAMovedDelivery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		partition bool   // the delivery's day has its partition (else: the default one)
		move      string // run in a transaction that commits once the recording waits
		days      int    // the day the delivery ends up on, after its first
	}{
		{"into its day's new partition", false, `SELECT webhookd_ensure_partition('deliveries', $2) WHERE $1::text IS NOT NULL`, 0},
		{"to a later day's partition", true, `UPDATE deliveries SET part_day = $2::date + 1 WHERE id = $1`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pool := testdb.New(t)
			day := Day(time.Now()).AddDate(0, 0, 10) // no partition yet: the default one
			if tc.partition {
				_, err := pool.Exec(ctx, `SELECT webhookd_ensure_partition('deliveries', $1)`, day)
				require.NoError(t, err)
			}
			id := "dlv_moved"
			_, err := pool.Exec(ctx, `INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, part_day)
VALUES ($1, 'evt_x', 'wh_x', 'acct_x', 'ping', 7, $2)`, id, day)
			require.NoError(t, err)

			mover, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer mover.Rollback(ctx) //nolint:errcheck // no-op after commit
			_, err = mover.Exec(ctx, tc.move, id, day)
			require.NoError(t, err)

			now := time.Now().UTC().Truncate(time.Microsecond)
			status := 200
			type result struct {
				recorded []bool
				err      error
			}
			done := make(chan result, 1)
			go func() {
				recorded, err := RecordAttempts(ctx, pool, []Recording{{
					Target: &Target{DeliveryID: id, PartDay: day}, JobID: 7,
					Attempt: &AttemptRecord{Number: 1, Generation: 1, Counted: true, ScheduledAt: now, StartedAt: now, StatusCode: &status, SignatureT: now.Unix()},
					Outcome: &Outcome{State: StateSucceeded, Now: now},
				}})
				done <- result{recorded, err}
			}()
			require.Eventually(t, func() bool {
				var waiting bool
				err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
				return err == nil && waiting
			}, 10*time.Second, 5*time.Millisecond, "the recording never waited for the moving row")
			require.NoError(t, mover.Commit(ctx))

			res := <-done
			require.NoError(t, res.err)
			require.Equal(t, []bool{true}, res.recorded)
			var state string
			var attempts int
			var attemptDay time.Time
			require.NoError(t, pool.QueryRow(ctx, `SELECT d.state, d.attempts, a.part_day FROM deliveries d JOIN attempt_log a ON a.delivery_id = d.id WHERE d.id = $1`, id).
				Scan(&state, &attempts, &attemptDay))
			require.Equal(t, StateSucceeded, state)
			require.Equal(t, 1, attempts)
			require.True(t, attemptDay.Equal(day.AddDate(0, 0, tc.days)), "the attempt is in the delivery's day now, %s; got %s", day.AddDate(0, 0, tc.days), attemptDay)
		})
	}
}
