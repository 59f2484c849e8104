package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// The attempt record deletes the River job of each delivery it finishes
// when asked (Recording.DeleteJob, migration 23): a success's and a death's,
// still running; not a retry's, not one not asked for, not one no longer
// running. And it deletes them by key on a ByKeyPool whose session planned
// the statement (one generic plan for the session's life) while river_job
// was one row and its statistics knew none of the 20,000 added since: a
// plain DELETE there read every 'running' entry of River's fetching index
// (19 ms for this batch). auto_explain, at NOTICE level, shows the DELETE's
// plan as it runs inside the function.
func TestRecordDeletesFinishedJobsByKey(t *testing.T) {
	pool, args := planFixture(t)
	ctx := context.Background()

	var (
		mu      sync.Mutex
		notices []string
	)
	base := pool.Config()
	base.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		notices = append(notices, n.Message)
	}
	base.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice`)
		return err
	}
	bk, err := NewByKeyPool(ctx, base, 1)
	require.NoError(t, err)
	t.Cleanup(bk.Close)

	// The fixture's batch of 80 (jobs 1, 51, 101, …): the first alone
	// while river_job holds only its job, then the other 79 after 20,000
	// more jobs, unknown to the statistics.
	insertJobs := func(from, to int, state string) {
		t.Helper()
		_, err := pool.Exec(ctx, `
INSERT INTO river_job (id, args, kind, max_attempts, queue, state, attempt, attempted_at)
SELECT g, '{}', 'webhookd.delivery', 25, 'deliveries', $3::river_job_state, 1, now()
FROM generate_series($1::bigint, $2::bigint) g`, from, to, state)
		require.NoError(t, err)
	}
	recording := func(i int) Recording {
		ids, jobs := args[1].([]string), args[4].([]int64)
		return Recording{
			Target:    &Target{DeliveryID: ids[i], PartDay: args[2].([]time.Time)[i]},
			JobID:     jobs[i],
			Attempt:   &AttemptRecord{Number: 1, Counted: true, ScheduledAt: time.Now(), StartedAt: time.Now()},
			Outcome:   &Outcome{State: StateSucceeded, Now: time.Now()},
			DeleteJob: true,
		}
	}
	insertJobs(1, 1, "running")
	recorded, err := RecordAttempts(ctx, bk, []Recording{recording(0)})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, recorded)
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM river_job`), "the success's job is deleted")

	insertJobs(2, 20001, "running")
	// Job 3,951 (delivery 79) was made available again (a rescuer): River's.
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'available' WHERE id = 3951`)
	require.NoError(t, err)
	batch := make([]Recording, 0, 79)
	for i := 1; i < 80; i++ {
		r := recording(i)
		switch i {
		case 1: // a retry: its job snoozes, for the next attempt
			next := time.Now().Add(time.Minute)
			r.Outcome = &Outcome{State: StatePending, NextAttemptAt: &next, Now: time.Now()}
		case 2:
			r.Outcome.State = StateDead
		case 3:
			r.DeleteJob = false // WEBHOOKD_KEEP_FINISHED_JOBS
		}
		batch = append(batch, r)
	}
	mu.Lock()
	notices = nil
	mu.Unlock()
	recorded, err = RecordAttempts(ctx, bk, batch)
	require.NoError(t, err)
	for i, ok := range recorded {
		require.True(t, ok, "attempt %d recorded", i+1)
	}

	var kept []int64
	rows, err := pool.Query(ctx, `SELECT id FROM river_job WHERE id = ANY($1) ORDER BY id`, args[4])
	require.NoError(t, err)
	kept, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{51, 151, 3951}, kept, "kept: the retry's, the one not asked for, the one no longer running")
	require.Equal(t, 20000-76, count(t, pool, `SELECT count(*) FROM river_job`), "nothing else deleted")

	mu.Lock()
	defer mu.Unlock()
	var plan string
	for _, n := range notices {
		if strings.Contains(n, "DELETE FROM river_job") {
			plan = n
		}
	}
	require.NotEmpty(t, plan, "auto_explain's plan of the DELETE among %d notices", len(notices))
	require.Contains(t, plan, "river_job_pkey", plan)
	require.NotContains(t, plan, "Seq Scan", plan)
}

func count(t *testing.T, db DB, query string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), query).Scan(&n))
	return n
}
