package store

import (
	"context"
	"time"
)

// HealthFold is one webhook's counted attempts since the last flush of
// one worker process, folded: what FlushHealth adds to webhook_health.
type HealthFold struct {
	WebhookID string
	// LastSuccessAt is the latest successful attempt of the batch; nil if
	// it holds none.
	LastSuccessAt *time.Time
	// Failures is the number of failed attempts after LastSuccessAt (all
	// of the batch's failures when it holds no success).
	Failures int
	// LastFailureAt is the latest failed attempt of the batch, and
	// LastFailureKind its error kind; nil if it holds none.
	LastFailureAt   *time.Time
	LastFailureKind *string
}

// HealthMinute is one webhook's counted attempts that ended within one
// minute (Minute is its start, UTC), from one batch.
type HealthMinute struct {
	WebhookID string
	Minute    time.Time
	Successes int
	Failures  int
}

// healthFlush folds a batch into webhook_health and webhook_health_minutes
// in one statement. Rows are taken in webhook id (and minute) order, so
// that two processes flushing the same webhooks lock their rows in the
// same order and can't deadlock.
//
// consecutive_failures: a batch holding a success newer than the stored
// last_success_at resets it to the batch's failures after that success;
// any other batch adds its failures (after its own latest success, if it
// has an older one). Webhooks hard-deleted since (none are today) are
// skipped rather than failing the batch on the foreign key.
const healthFlush = `
WITH b AS (
    SELECT *
    FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::timestamptz[], $5::text[])
         AS b (webhook_id, last_success_at, failures, last_failure_at, last_failure_kind)
), h AS (
    INSERT INTO webhook_health AS h (webhook_id, consecutive_failures, last_success_at, last_failure_at, last_failure_kind, updated_at)
    SELECT b.webhook_id, b.failures, b.last_success_at, b.last_failure_at, b.last_failure_kind, $6
    FROM b
    WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.id = b.webhook_id)
    ORDER BY b.webhook_id
    ON CONFLICT (webhook_id) DO UPDATE SET
        consecutive_failures = CASE
            WHEN excluded.last_success_at > coalesce(h.last_success_at, '-infinity') THEN excluded.consecutive_failures
            ELSE h.consecutive_failures + excluded.consecutive_failures
        END,
        last_success_at = greatest(h.last_success_at, excluded.last_success_at),
        last_failure_at = greatest(h.last_failure_at, excluded.last_failure_at),
        last_failure_kind = CASE
            WHEN excluded.last_failure_at > coalesce(h.last_failure_at, '-infinity') THEN excluded.last_failure_kind
            ELSE h.last_failure_kind
        END,
        updated_at = excluded.updated_at
    RETURNING 1
), m AS (
    INSERT INTO webhook_health_minutes AS m (webhook_id, minute, successes, failures)
    SELECT u.webhook_id, u.minute, u.successes, u.failures
    FROM unnest($7::text[], $8::timestamptz[], $9::int[], $10::int[]) AS u (webhook_id, minute, successes, failures)
    ORDER BY u.webhook_id, u.minute
    ON CONFLICT (webhook_id, minute) DO UPDATE SET
        successes = m.successes + excluded.successes,
        failures = m.failures + excluded.failures
    RETURNING 1
)
SELECT (SELECT count(*) FROM h), (SELECT count(*) FROM m)`

// FlushHealth folds one batch of folds and minute counts into
// webhook_health and webhook_health_minutes, in one statement. Each
// webhook may appear once in folds, each (webhook, minute) once in
// minutes. now is the rows' updated_at.
func FlushHealth(ctx context.Context, db DB, folds []HealthFold, minutes []HealthMinute, now time.Time) error {
	if len(folds) == 0 && len(minutes) == 0 {
		return nil
	}
	ids := make([]string, len(folds))
	successAt := make([]*time.Time, len(folds))
	failures := make([]int32, len(folds))
	failureAt := make([]*time.Time, len(folds))
	kinds := make([]*string, len(folds))
	for i, f := range folds {
		ids[i], successAt[i], failures[i], failureAt[i], kinds[i] = f.WebhookID, f.LastSuccessAt, int32(f.Failures), f.LastFailureAt, f.LastFailureKind
	}
	mIDs := make([]string, len(minutes))
	mAt := make([]time.Time, len(minutes))
	mOK := make([]int32, len(minutes))
	mFailed := make([]int32, len(minutes))
	for i, m := range minutes {
		mIDs[i], mAt[i], mOK[i], mFailed[i] = m.WebhookID, m.Minute, int32(m.Successes), int32(m.Failures)
	}
	var nh, nm int64
	return db.QueryRow(ctx, healthFlush, ids, successAt, failures, failureAt, kinds, now, mIDs, mAt, mOK, mFailed).Scan(&nh, &nm)
}

const healthMinutesPrune = `DELETE FROM webhook_health_minutes WHERE minute < $1`

// PruneHealthMinutes deletes the minute counts older than before.
func PruneHealthMinutes(ctx context.Context, db DB, before time.Time) (int64, error) {
	tag, err := db.Exec(ctx, healthMinutesPrune, before)
	return tag.RowsAffected(), err
}

// WebhookHealth is one webhook's health: its webhook_health row (zero
// values when it has none yet) and its attempts of the last hour.
type WebhookHealth struct {
	WebhookID           string
	ConsecutiveFailures int
	LastSuccessAt       *time.Time
	LastFailureAt       *time.Time
	LastFailureKind     *string
	// Attempts, Successes and Failures count the minutes after since.
	Attempts  int
	Successes int
	Failures  int
	// SuccessRate is Successes / Attempts; nil without attempts.
	SuccessRate *float64
}

const healthGet = `
SELECT coalesce(h.consecutive_failures, 0), h.last_success_at, h.last_failure_at, h.last_failure_kind,
       m.successes, m.failures,
       CASE WHEN m.successes + m.failures > 0 THEN m.successes::float8 / (m.successes + m.failures) END
FROM (
    SELECT coalesce(sum(successes), 0)::int AS successes, coalesce(sum(failures), 0)::int AS failures
    FROM webhook_health_minutes
    WHERE webhook_id = $1 AND minute > $2
) m
LEFT JOIN webhook_health h ON h.webhook_id = $1`

// GetWebhookHealth reads webhook id's health, counting the minute rows
// after since (the caller's now minus an hour) for the last hour. A webhook
// without attempts yet has zero counts and nil times and rate; whether it
// exists is the caller's to check.
func GetWebhookHealth(ctx context.Context, db DB, id string, since time.Time) (*WebhookHealth, error) {
	h := WebhookHealth{WebhookID: id}
	err := db.QueryRow(ctx, healthGet, id, since).Scan(&h.ConsecutiveFailures, &h.LastSuccessAt, &h.LastFailureAt,
		&h.LastFailureKind, &h.Successes, &h.Failures, &h.SuccessRate)
	if err != nil {
		return nil, err
	}
	h.Attempts = h.Successes + h.Failures
	return &h, nil
}
