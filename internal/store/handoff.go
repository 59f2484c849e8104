package store

import (
	"context"
	"time"
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
