package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// jobReschedule gives a handed-off delivery's job (engine.Handoffs) to
// River, due at $2: available when due within River's scheduler interval
// (5 s; River makes its own short snoozes so, and fetches only jobs whose
// scheduled_at has come), scheduled otherwise, for River's scheduler to make
// available when due. Only while the job still waits on its lease
// (scheduled): a job River has taken since, or that is gone, is left alone.
const jobReschedule = `
UPDATE river_job SET scheduled_at = $2,
    state = CASE WHEN $2 <= now() + interval '5 seconds' THEN 'available' ELSE 'scheduled' END::river_job_state
WHERE id = $1 AND state = 'scheduled'`

// RescheduleJob moves job id, still scheduled, to at (zero: now); see
// jobReschedule.
func RescheduleJob(ctx context.Context, db DB, id int64, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	_, err := db.Exec(ctx, jobReschedule, id, at)
	return err
}

// LeasedJobs are delivery jobs that InsertEventsWithJobs writes into
// River's table itself, in the statement that inserts their events and
// deliveries: the jobs of handed-off deliveries (engine.Handoffs), each
// scheduled at the end of its lease. The row is the one River's insert
// writes for the same job (River's JobInsertFastMany: the args' JSON, the
// kind, queue, priority and maximum attempts, empty metadata and tags, no
// unique key), so that River works it as its own when the lease ends, and
// it saves the intake River's insert: a round trip, where the rest of the
// transaction is pipelined.
type LeasedJobs struct {
	Kind        string
	Queue       string
	MaxAttempts int
	ScheduledAt time.Time
	// IDs (from River's sequence, JobIDs), Deliveries and Priorities are
	// parallel: each job's id, its delivery's (its only argument) and its
	// River priority (a burst's excess is at bulk priority).
	IDs        []int64
	Deliveries []string
	Priorities []int16
}

// leasedJobsInsert is the CTE eventsInsert takes for LeasedJobs, its
// parameters after eventsInsert's own.
const leasedJobsInsert = `, job AS (
    INSERT INTO river_job (id, args, kind, max_attempts, priority, queue, scheduled_at, state)
    SELECT j.id, jsonb_build_object('delivery_id', j.delivery_id), $20, $21, j.priority, $23, $24, 'scheduled'
    FROM unnest($25::bigint[], $26::text[], $22::smallint[]) AS j (id, delivery_id, priority)
)`

// JobIDs takes n ids from River's job sequence in one statement.
func JobIDs(ctx context.Context, db DB, n int) ([]int64, error) {
	rows, err := db.Query(ctx, `SELECT nextval('river_job_id_seq') FROM generate_series(1, $1::int)`, n)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	if len(ids) != n {
		return nil, fmt.Errorf("river_job_id_seq gave %d ids of %d", len(ids), n)
	}
	return ids, nil
}
