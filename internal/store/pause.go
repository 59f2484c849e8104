package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/apitype"
)

// Pause reasons: apitype's.
const (
	PauseManual = apitype.PauseManual
	PauseAuto   = apitype.PauseAuto
	// PauseGone: the endpoint answered 410 Gone and the webhook's on_gone
	// is OnGonePause.
	PauseGone = apitype.PauseGone
)

// ErrAlreadyPaused and ErrNotPaused say a pause or resume changed nothing.
var (
	ErrAlreadyPaused = errors.New("the webhook is paused already")
	ErrNotPaused     = errors.New("the webhook is not paused")
)

const webhookPause = `
WITH paused AS (
    UPDATE webhooks SET paused_at = $3, pause_reason = $4
    WHERE id = $1 AND deleted_at IS NULL AND ($2::text = '' OR account_id = $2) AND paused_at IS NULL
    RETURNING id
)
INSERT INTO webhook_pauses (webhook_id, action, reason, key_id, created_at)
SELECT id, 'pause', $4, $5, $3 FROM paused
RETURNING webhook_id`

// PauseWebhook pauses the live webhook id (reason PauseManual or
// PauseAuto, by API key keyID or nil) and records it. New deliveries are
// then created paused, and the worker parks a pending one instead of
// sending it. ErrAlreadyPaused when it is paused; ErrNotFound when there is
// no such live webhook (of accountID, when not empty).
func PauseWebhook(ctx context.Context, db DB, id, accountID, reason string, keyID *string, now time.Time) error {
	var got string
	err := db.QueryRow(ctx, webhookPause, id, accountID, now, reason, keyID).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := GetWebhookOf(ctx, db, id, accountID); err != nil {
			return err
		}
		return ErrAlreadyPaused
	}
	return err
}

// GetWebhookOf returns the live webhook id, restricted to accountID when
// it is not empty, or ErrNotFound.
func GetWebhookOf(ctx context.Context, db DB, id, accountID string) (*Webhook, error) {
	w, err := GetWebhook(ctx, db, id)
	if err != nil {
		return nil, err
	}
	if accountID != "" && w.AccountID != accountID {
		return nil, ErrNotFound
	}
	return w, nil
}

const webhookUnpause = `
UPDATE webhooks SET paused_at = NULL, pause_reason = NULL
WHERE id = $1 AND deleted_at IS NULL AND ($2::text = '' OR account_id = $2) AND paused_at IS NOT NULL
RETURNING id`

// UnpauseWebhook clears the live webhook id's pause, in tx, before its
// paused deliveries are put back on their schedule (ResumePaused).
// ErrNotPaused when it is not paused; ErrNotFound when there is no such
// live webhook.
func UnpauseWebhook(ctx context.Context, tx pgx.Tx, id, accountID string) error {
	var got string
	err := tx.QueryRow(ctx, webhookUnpause, id, accountID).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := GetWebhookOf(ctx, tx, id, accountID); err != nil {
			return err
		}
		return ErrNotPaused
	}
	return err
}

// RecordResume records that webhook id was resumed with n deliveries.
func RecordResume(ctx context.Context, db DB, id, reason string, keyID *string, n int, now time.Time) error {
	_, err := db.Exec(ctx, `INSERT INTO webhook_pauses (webhook_id, action, reason, key_id, deliveries, created_at) VALUES ($1, 'resume', $2, $3, $4, $5)`,
		id, reason, keyID, n, now)
	return err
}

// PausedDelivery is a delivery waiting for its webhook to resume.
type PausedDelivery struct {
	ID      string
	PartDay time.Time
	// DueAt is when it was due: its next attempt, or its creation before
	// the first.
	DueAt time.Time
}

// pausedDeliveries reads them in creation order, through the partial index
// deliveries_paused_created_idx (migration 22): no index of deliveries
// holds next_attempt_at, so that a retry's update can be HOT.
const pausedDeliveries = `
SELECT id, part_day, coalesce(next_attempt_at, created_at)
FROM deliveries
WHERE webhook_id = $1 AND state = 'paused'
ORDER BY created_at, id
LIMIT $2
FOR UPDATE`

// PausedDeliveries locks and returns up to limit of webhook id's paused
// deliveries, oldest first (not in due order: each one's DueAt says when
// it is due).
func PausedDeliveries(ctx context.Context, tx pgx.Tx, webhookID string, limit int) ([]PausedDelivery, error) {
	rows, err := tx.Query(ctx, pausedDeliveries, webhookID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (PausedDelivery, error) {
		var d PausedDelivery
		return d, row.Scan(&d.ID, &d.PartDay, &d.DueAt)
	})
}

const pausedResume = `
UPDATE deliveries d SET state = 'pending', job_id = r.job_id, updated_at = $4
FROM unnest($1::text[], $2::date[], $3::bigint[]) AS r (id, part_day, job_id)
WHERE d.id = r.id AND d.part_day = r.part_day AND d.state = 'paused'`

// UnparkDeliveries puts paused deliveries back to pending, each served by
// its new job.
func UnparkDeliveries(ctx context.Context, tx pgx.Tx, ids []string, days []time.Time, jobIDs []int64, now time.Time) (int64, error) {
	tag, err := tx.Exec(ctx, pausedResume, ids, days, jobIDs, now)
	return tag.RowsAffected(), err
}

const deliveryPark = `
UPDATE deliveries SET state = 'paused', job_id = NULL, updated_at = $4
WHERE id = $1 AND part_day = $2 AND job_id = $3 AND state = 'pending'`

// ParkDelivery sets the pending delivery t, served by job jobID, aside
// while its webhook is paused: no attempt is used and its next attempt
// time is kept, so resuming puts it back where it was in the schedule.
func ParkDelivery(ctx context.Context, db DB, t *Target, jobID int64, now time.Time) (bool, error) {
	tag, err := db.Exec(ctx, deliveryPark, t.DeliveryID, t.PartDay, jobID, now)
	return tag.RowsAffected() == 1, err
}

// pausedHooks walks the distinct webhooks of paused deliveries through
// the partial index on them, one index probe per webhook (a loose index
// scan), not one row per paused delivery: a webhook paused for a day can
// hold millions, and the reconciler asks every minute. A query ending in
// a LIMIT stops the walk once it has its rows.
const pausedHooks = `
WITH RECURSIVE hooks AS (
    (SELECT webhook_id FROM deliveries WHERE state = 'paused' ORDER BY webhook_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.webhook_id FROM deliveries d
            WHERE d.state = 'paused' AND d.webhook_id > h.webhook_id
            ORDER BY d.webhook_id LIMIT 1)
    FROM hooks h
    WHERE h.webhook_id IS NOT NULL
)`

// strandedPaused lists the live, unpaused webhooks among pausedHooks.
const strandedPaused = pausedHooks + `
SELECT h.webhook_id
FROM hooks h JOIN webhooks w ON w.id = h.webhook_id
WHERE w.paused_at IS NULL AND w.deleted_at IS NULL
LIMIT $1`

// StrandedPausedWebhooks lists up to limit live webhooks that are not
// paused but have paused deliveries (created while a resume committed):
// the reconciler resumes them. A deleted webhook's paused deliveries are
// never resumed (see AbandonedPausedWebhooks).
func StrandedPausedWebhooks(ctx context.Context, db DB, limit int) ([]string, error) {
	return webhookIDs(ctx, db, strandedPaused, limit)
}

// webhookIDs runs query, which selects webhook ids, with args.
func webhookIDs(ctx context.Context, db DB, query string, args ...any) ([]string, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

const autoPauseCandidates = `
SELECT w.id
FROM webhooks w JOIN webhook_health h ON h.webhook_id = w.id
WHERE w.deleted_at IS NULL AND w.paused_at IS NULL
  AND h.consecutive_failures > 0
  AND h.last_failure_at > coalesce(h.last_success_at, '-infinity')
  AND coalesce(h.last_success_at, w.created_at) < $1
LIMIT $2`

// AutoPauseCandidates lists up to limit live, unpaused webhooks whose last
// attempt failed and that have had no successful attempt since before
// since (nor, never having had one, since they were created).
func AutoPauseCandidates(ctx context.Context, db DB, since time.Time, limit int) ([]string, error) {
	return webhookIDs(ctx, db, autoPauseCandidates, since, limit)
}
