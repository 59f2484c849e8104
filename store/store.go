// Package store holds webhookd's SQL: every query on webhooks, events,
// deliveries, attempts and idempotency keys is a named constant here, run
// through a DB that is either a pool or a transaction.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what every store function runs on: *pgxpool.Pool, *pgx.Conn or
// pgx.Tx.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrDuplicateURL means the account already has a live webhook for the URL.
	ErrDuplicateURL = errors.New("the account already has a webhook with this URL")
)

// Delivery states.
const (
	StatePending   = "pending"
	StateSucceeded = "succeeded"
	StateDead      = "dead"
	StateCancelled = "cancelled"
)

// IsUniqueViolation reports whether err is PostgreSQL's 23505.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// Webhook is a webhooks row. The secret stays encrypted here.
type Webhook struct {
	ID               string
	AccountID        string
	URL              string
	URLNormalized    string
	Description      string
	SecretCiphertext []byte
	SecretKeyID      string
	CreatedAt        time.Time
	DeletedAt        *time.Time
}

const webhookInsert = `
INSERT INTO webhooks (id, account_id, url, url_normalized, description, secret_ciphertext, secret_key_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// InsertWebhook inserts w. A live webhook of the same account and normalised
// URL gives ErrDuplicateURL.
func InsertWebhook(ctx context.Context, db DB, w *Webhook) error {
	_, err := db.Exec(ctx, webhookInsert, w.ID, w.AccountID, w.URL, w.URLNormalized, w.Description, w.SecretCiphertext, w.SecretKeyID, w.CreatedAt)
	if IsUniqueViolation(err) {
		return ErrDuplicateURL
	}
	return err
}

const webhookGet = `
SELECT id, account_id, url, url_normalized, description, secret_ciphertext, secret_key_id, created_at, deleted_at
FROM webhooks WHERE id = $1 AND deleted_at IS NULL`

// GetWebhook returns the live webhook id, or ErrNotFound.
func GetWebhook(ctx context.Context, db DB, id string) (*Webhook, error) {
	w := &Webhook{}
	err := db.QueryRow(ctx, webhookGet, id).Scan(&w.ID, &w.AccountID, &w.URL, &w.URLNormalized, &w.Description, &w.SecretCiphertext, &w.SecretKeyID, &w.CreatedAt, &w.DeletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return w, err
}

const webhookDelete = `
WITH deleted AS (
    UPDATE webhooks SET deleted_at = $2
    WHERE id = $1 AND deleted_at IS NULL AND ($3::text = '' OR account_id = $3)
    RETURNING id
), cancelled AS (
    UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = $2, updated_at = $2
    WHERE webhook_id = (SELECT id FROM deleted) AND state = 'pending'
    RETURNING id
)
SELECT (SELECT count(*) FROM deleted), (SELECT count(*) FROM cancelled)`

// DeleteWebhook soft-deletes the live webhook id and cancels its pending
// deliveries (their jobs then finish without sending). A non-empty accountID
// restricts it to that account's webhooks. ErrNotFound when there is no such
// live webhook.
func DeleteWebhook(ctx context.Context, db DB, id, accountID string, now time.Time) (cancelled int64, err error) {
	var deleted int64
	if err := db.QueryRow(ctx, webhookDelete, id, now, accountID).Scan(&deleted, &cancelled); err != nil {
		return 0, err
	}
	if deleted == 0 {
		return 0, ErrNotFound
	}
	return cancelled, nil
}

const webhookIDsLive = `SELECT id FROM webhooks WHERE account_id = $1 AND deleted_at IS NULL ORDER BY id`

// LiveWebhookIDs lists the account's live webhooks, without locking them.
func LiveWebhookIDs(ctx context.Context, db DB, accountID string) ([]string, error) {
	rows, err := db.Query(ctx, webhookIDsLive, accountID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
