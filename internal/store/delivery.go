package store

// The test send's record (InsertTestDelivery). Deliveries' other
// statements are split by caller: delivery_worker.go (the worker's hot
// path), delivery_read.go (the API's and the dashboard's reads and the
// listing cursor), delivery_reconcile.go (the reconciler).

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

const testDeliveryFinish = `
WITH delivery AS (
    UPDATE deliveries SET test = true, state = $3, attempts = 1, gen_attempts = 1, next_attempt_at = NULL,
        job_id = NULL, finished_at = $4, updated_at = $4
    WHERE id = $1 AND part_day = $2
    RETURNING id, part_day
)
INSERT INTO attempts (delivery_id, number, generation, counted, scheduled_at, started_at, duration_us,
                      status_code, error_kind, error_message, response_excerpt, signature_t, part_day)
SELECT id, 1, 1, true, $5, $5, $6, $7, $8, $9, $10, $11, part_day FROM delivery`

// InsertTestDelivery stores a test send that has been made: its event and
// its one delivery (ev, with one webhook and no job), finished in state
// after attempt a, marked as a test. It never has a job, so nothing retries
// it.
func InsertTestDelivery(ctx context.Context, db DB, ev *NewEvent, state string, a *AttemptRecord, finishedAt time.Time) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := InsertEvents(ctx, tx, []*NewEvent{ev}); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, testDeliveryFinish, ev.DeliveryIDs[0], eventDay(ev), state, finishedAt,
			a.StartedAt, a.Duration.Microseconds(), a.StatusCode, a.ErrorKind, a.ErrorMessage, a.ResponseExcerpt, a.SignatureT)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("test delivery not stored")
		}
		return nil
	})
}
