package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeadGroup is the deliveries of one webhook that died in a window.
type DeadGroup struct {
	WebhookID string
	AccountID string
	URL       string
	Count     int
	// DeliveryIDs are the first of them (at most 10), in the order they
	// died; Since is when the first died.
	DeliveryIDs []string
	Since       time.Time
}

const deadSince = `
SELECT d.webhook_id, w.account_id, w.url_normalized, count(*),
       (array_agg(d.id ORDER BY d.finished_at, d.id))[1:10], min(d.finished_at)
FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
WHERE d.state = 'dead' AND d.finished_at > $1 AND d.finished_at <= $2
  AND d.account_id <> $3 AND w.deleted_at IS NULL
GROUP BY d.webhook_id, w.account_id, w.url_normalized
ORDER BY d.webhook_id`

// DeadSince groups by webhook the deliveries that died after from and up
// to to (by finished_at), leaving out those of account skip (the
// notifications' own) and of deleted webhooks.
func DeadSince(ctx context.Context, db DB, from, to time.Time, skip string) ([]DeadGroup, error) {
	rows, err := db.Query(ctx, deadSince, from, to, skip)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeadGroup, error) {
		var g DeadGroup
		return g, row.Scan(&g.WebhookID, &g.AccountID, &g.URL, &g.Count, &g.DeliveryIDs, &g.Since)
	})
}

// LockCursorTime locks the cursor name (webhookd_cursors) in tx and returns
// the time it holds; ok is false when there is none yet.
func LockCursorTime(ctx context.Context, tx pgx.Tx, name string) (at time.Time, ok bool, err error) {
	var us int64
	err = tx.QueryRow(ctx, `SELECT position FROM webhookd_cursors WHERE name = $1 FOR UPDATE`, name).Scan(&us)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	return time.UnixMicro(us).UTC(), err == nil, err
}

// SetCursorTime sets the cursor name to at.
func SetCursorTime(ctx context.Context, tx pgx.Tx, name string, at time.Time) error {
	_, err := tx.Exec(ctx, `
INSERT INTO webhookd_cursors (name, position, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`, name, at.UnixMicro())
	return err
}
