package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Target is everything the worker needs for one attempt, loaded in one query.
type Target struct {
	DeliveryID    string
	State         string
	Attempts      int
	Generation    int
	GenAttempts   int
	NextAttemptAt *time.Time
	JobID         *int64
	EventID       string
	AccountID     string
	WebhookID     string
	Body          []byte
	URL           string
	SecretCipher  []byte
	SecretKeyID   string
	WebhookGone   bool
}

const targetGet = `
SELECT d.id, d.state, d.attempts, d.generation, d.gen_attempts, d.next_attempt_at, d.job_id,
       d.event_id, d.account_id, d.webhook_id, e.body, w.url_normalized, w.secret_ciphertext, w.secret_key_id,
       w.deleted_at IS NOT NULL
FROM deliveries d
JOIN events e ON e.id = d.event_id
JOIN webhooks w ON w.id = d.webhook_id
WHERE d.id = $1`

// GetTarget loads delivery id with its event body and webhook, or ErrNotFound.
func GetTarget(ctx context.Context, db DB, id string) (*Target, error) {
	t := &Target{}
	err := db.QueryRow(ctx, targetGet, id).Scan(&t.DeliveryID, &t.State, &t.Attempts, &t.Generation, &t.GenAttempts, &t.NextAttemptAt, &t.JobID,
		&t.EventID, &t.AccountID, &t.WebhookID, &t.Body, &t.URL, &t.SecretCipher, &t.SecretKeyID, &t.WebhookGone)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return t, err
}

// AttemptRecord is one attempt as recorded.
type AttemptRecord struct {
	Number          int
	Generation      int
	Counted         bool
	ScheduledAt     time.Time
	StartedAt       time.Time
	Duration        time.Duration
	StatusCode      *int
	ErrorKind       *string
	ErrorMessage    *string
	ResponseExcerpt []byte
	SignatureT      int64
}

// Outcome is the state change an attempt causes.
type Outcome struct {
	// State is the delivery's state after the attempt.
	State string
	// NextAttemptAt is when the next attempt is due (pending only).
	NextAttemptAt *time.Time
	// Now is when the attempt ended.
	Now time.Time
}

const attemptRecord = `
WITH delivery AS (
    UPDATE deliveries SET
        attempts = attempts + CASE WHEN $5 THEN 1 ELSE 0 END,
        gen_attempts = gen_attempts + CASE WHEN $5 THEN 1 ELSE 0 END,
        state = $4,
        next_attempt_at = $6,
        finished_at = CASE WHEN $4 = 'pending' THEN NULL ELSE $7::timestamptz END,
        updated_at = $7
    WHERE id = $1 AND attempts = $2 AND job_id = $3 AND state = 'pending'
    RETURNING id
)
INSERT INTO attempts (delivery_id, number, generation, counted, scheduled_at, started_at, duration_us,
                      status_code, error_kind, error_message, response_excerpt, signature_t)
SELECT id, $8, $9, $5, $10, $11, $12, $13, $14, $15, $16, $17 FROM delivery
RETURNING id`

// RecordAttempt records attempt a and its outcome, guarded by the attempt
// count seen before sending (attemptsBefore) and the responsible job: when
// another run has recorded meanwhile, or the delivery is no longer pending,
// it changes nothing and returns recorded false.
func RecordAttempt(ctx context.Context, db DB, deliveryID string, attemptsBefore int, jobID int64, a *AttemptRecord, o *Outcome) (recorded bool, err error) {
	var attemptID int64
	err = db.QueryRow(ctx, attemptRecord, deliveryID, attemptsBefore, jobID, o.State, a.Counted, o.NextAttemptAt, o.Now,
		a.Number, a.Generation, a.ScheduledAt, a.StartedAt, a.Duration.Microseconds(), a.StatusCode, a.ErrorKind, a.ErrorMessage, a.ResponseExcerpt, a.SignatureT).Scan(&attemptID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

const deliveryCancel = `
UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = $3, updated_at = $3
WHERE id = $1 AND job_id = $2 AND state = 'pending'`

// CancelDelivery cancels the pending delivery id if job jobID is responsible
// for it, reporting whether it did.
func CancelDelivery(ctx context.Context, db DB, id string, jobID int64, now time.Time) (bool, error) {
	tag, err := db.Exec(ctx, deliveryCancel, id, jobID, now)
	return tag.RowsAffected() == 1, err
}

// Delivery is a deliveries row with its attempts.
type Delivery struct {
	ID            string
	EventID       string
	WebhookID     string
	AccountID     string
	EventType     string
	State         string
	Attempts      int
	Generation    int
	NextAttemptAt *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
	AttemptList   []AttemptRecord
}

const deliveryGet = `
SELECT id, event_id, webhook_id, account_id, event_type, state, attempts, generation, next_attempt_at, created_at, updated_at, finished_at
FROM deliveries WHERE id = $1`

const deliveryAttempts = `
SELECT number, generation, counted, scheduled_at, started_at, duration_us, status_code, error_kind, error_message, response_excerpt, signature_t
FROM attempts WHERE delivery_id = $1 ORDER BY id`

// GetDelivery returns delivery id with all its attempts, or ErrNotFound.
func GetDelivery(ctx context.Context, db DB, id string) (*Delivery, error) {
	d := &Delivery{}
	err := db.QueryRow(ctx, deliveryGet, id).Scan(&d.ID, &d.EventID, &d.WebhookID, &d.AccountID, &d.EventType, &d.State, &d.Attempts, &d.Generation, &d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, deliveryAttempts, id)
	if err != nil {
		return nil, err
	}
	d.AttemptList, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (AttemptRecord, error) {
		var a AttemptRecord
		var us int64
		err := row.Scan(&a.Number, &a.Generation, &a.Counted, &a.ScheduledAt, &a.StartedAt, &us, &a.StatusCode, &a.ErrorKind, &a.ErrorMessage, &a.ResponseExcerpt, &a.SignatureT)
		a.Duration = time.Duration(us) * time.Microsecond
		return a, err
	})
	return d, err
}

const orphansFind = `
SELECT d.id, d.job_id
FROM deliveries d
LEFT JOIN river_job j ON j.id = d.job_id
WHERE d.state = 'pending'
  AND (d.job_id IS NULL OR j.id IS NULL OR j.state IN ('completed', 'discarded', 'cancelled'))
ORDER BY d.id
LIMIT $1`

// Orphan is a pending delivery whose job is finished, discarded or missing.
type Orphan struct {
	DeliveryID string
	JobID      *int64
}

// FindOrphans lists up to limit pending deliveries that no live job serves.
func FindOrphans(ctx context.Context, db DB, limit int) ([]Orphan, error) {
	rows, err := db.Query(ctx, orphansFind, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Orphan, error) {
		var o Orphan
		return o, row.Scan(&o.DeliveryID, &o.JobID)
	})
}

const deliveryAdopt = `
UPDATE deliveries SET job_id = $3, updated_at = now()
WHERE id = $1 AND state = 'pending' AND job_id IS NOT DISTINCT FROM $2`

// AdoptDelivery points the pending delivery id at job newJobID if oldJobID is
// still responsible for it, reporting whether it did.
func AdoptDelivery(ctx context.Context, db DB, id string, oldJobID *int64, newJobID int64) (bool, error) {
	tag, err := db.Exec(ctx, deliveryAdopt, id, oldJobID, newJobID)
	return tag.RowsAffected() == 1, err
}
