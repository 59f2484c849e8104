package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// ErrWebhookLimit means the account already has as many live webhooks as it
// may have: InsertWebhookWithin created nothing.
var ErrWebhookLimit = errors.New("the account has its most live webhooks already")

// webhooksLock serialises the creates of one account's webhooks: a
// transaction-scoped advisory lock keyed by the account, so the count and
// the insert after it can't interleave with another create's. Webhook rows
// are never locked (enqueue reads them without locks, and so does this); a
// hash collision between two accounts only makes their creates take turns.
const webhooksLock = `SELECT pg_advisory_xact_lock(hashtextextended('webhookd.webhooks:' || $1, 0))`

// webhooksCount counts the account's live webhooks, on the partial index
// of (account_id, id) WHERE deleted_at IS NULL.
const webhooksCount = `SELECT count(*) FROM webhooks WHERE account_id = $1 AND deleted_at IS NULL`

// CountLiveWebhooks is how many live (not deleted) webhooks accountID has.
func CountLiveWebhooks(ctx context.Context, db DB, accountID string) (int, error) {
	var n int
	err := db.QueryRow(ctx, webhooksCount, accountID).Scan(&n)
	return n, err
}

// InsertWebhookWithin inserts w like InsertWebhook unless w's account
// already has limit or more live webhooks, when it inserts nothing and
// returns ErrWebhookLimit. Concurrent creates for one account take turns
// (an advisory lock for the transaction's length), so however they race
// the account ends with at most limit; an account above limit (the limit was
// lowered) keeps its webhooks and can't add one.
func InsertWebhookWithin(ctx context.Context, db DB, w *Webhook, limit int) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, webhooksLock, w.AccountID); err != nil {
			return err
		}
		// A statement after the lock: its snapshot sees every create that
		// held the lock before.
		n, err := CountLiveWebhooks(ctx, tx, w.AccountID)
		if err != nil {
			return err
		}
		if n >= limit {
			return ErrWebhookLimit
		}
		return InsertWebhook(ctx, tx, w)
	})
}
