package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// NewEvent is an accepted event with its deliveries, inserted in one
// statement.
type NewEvent struct {
	ID             string
	AccountID      string
	Type           string
	Body           []byte
	OccurredAt     time.Time
	IdempotencyKey *string
	CreatedAt      time.Time
	// Deliveries, WebhookIDs and JobIDs are parallel: one delivery per live
	// webhook, each with the River job responsible for it.
	DeliveryIDs []string
	WebhookIDs  []string
	JobIDs      []int64
}

const eventInsert = `
WITH event AS (
    INSERT INTO events (id, account_id, type, body, occurred_at, idempotency_key, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
)
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, next_attempt_at, created_at, updated_at)
SELECT d.id, $1, d.webhook_id, $2, $3, d.job_id, $7, $7, $7
FROM unnest($8::text[], $9::text[], $10::bigint[]) AS d (id, webhook_id, job_id)`

// InsertEvent inserts the event and its deliveries.
func InsertEvent(ctx context.Context, db DB, e *NewEvent) error {
	_, err := db.Exec(ctx, eventInsert, e.ID, e.AccountID, e.Type, e.Body, e.OccurredAt, e.IdempotencyKey, e.CreatedAt, e.DeliveryIDs, e.WebhookIDs, e.JobIDs)
	return err
}

const idempotencyClaim = `
INSERT INTO idempotency_keys (account_id, key, request_hash, event_id, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account_id, key) DO NOTHING
RETURNING event_id`

const idempotencyGet = `
SELECT request_hash, event_id FROM idempotency_keys WHERE account_id = $1 AND key = $2`

// ClaimIdempotencyKey records key for eventID. When the key is already taken
// (by a committed transaction; a concurrent one is waited for), it returns
// claimed false with the stored request hash and event id.
func ClaimIdempotencyKey(ctx context.Context, db DB, accountID, key string, hash []byte, eventID string, now time.Time) (claimed bool, storedHash []byte, storedEventID string, err error) {
	var got string
	err = db.QueryRow(ctx, idempotencyClaim, accountID, key, hash, eventID, now).Scan(&got)
	if err == nil {
		return true, nil, "", nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, nil, "", err
	}
	if err := db.QueryRow(ctx, idempotencyGet, accountID, key).Scan(&storedHash, &storedEventID); err != nil {
		return false, nil, "", err
	}
	return false, storedHash, storedEventID, nil
}

// Event is an events row with its deliveries.
type Event struct {
	ID         string
	AccountID  string
	Type       string
	Body       []byte
	OccurredAt time.Time
	CreatedAt  time.Time
	Deliveries []EventDelivery
}

// EventDelivery is one delivery of an event, in short.
type EventDelivery struct {
	ID        string
	WebhookID string
	State     string
}

const eventGet = `
SELECT id, account_id, type, body, occurred_at, created_at FROM events WHERE id = $1`

const eventDeliveries = `
SELECT id, webhook_id, state FROM deliveries WHERE event_id = $1 ORDER BY id`

// GetEvent returns the event id with its deliveries, or ErrNotFound.
func GetEvent(ctx context.Context, db DB, id string) (*Event, error) {
	e := &Event{}
	err := db.QueryRow(ctx, eventGet, id).Scan(&e.ID, &e.AccountID, &e.Type, &e.Body, &e.OccurredAt, &e.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, eventDeliveries, id)
	if err != nil {
		return nil, err
	}
	e.Deliveries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (EventDelivery, error) {
		var d EventDelivery
		return d, row.Scan(&d.ID, &d.WebhookID, &d.State)
	})
	return e, err
}
