package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailingWebhook is a webhook whose consecutive failed attempts just
// crossed the endpoint.failing threshold.
type FailingWebhook struct {
	WebhookID           string
	AccountID           string
	URL                 string
	ConsecutiveFailures int
	LastFailureKind     *string
}

// failingRearm clears the mark of webhooks that have had a successful
// attempt since their endpoint.failing notification.
const failingRearm = `
UPDATE webhook_health SET failing_notified_at = NULL
WHERE webhook_id = ANY($1) AND failing_notified_at IS NOT NULL AND last_success_at > failing_notified_at`

// failingCross marks, and returns, the live webhooks among ids at or over
// threshold consecutive failures that are not marked yet.
const failingCross = `
UPDATE webhook_health h SET failing_notified_at = $3
FROM webhooks w
WHERE w.id = h.webhook_id AND h.webhook_id = ANY($1) AND w.deleted_at IS NULL
  AND h.consecutive_failures >= $2 AND h.failing_notified_at IS NULL
RETURNING h.webhook_id, w.account_id, w.url_normalized, h.consecutive_failures, h.last_failure_kind`

// CrossFailing applies endpoint.failing's hysteresis to webhooks ids, in
// tx after their health was written: a webhook with a success since its
// last notification is re-armed, and those at or over threshold
// consecutive failures and armed are marked and returned (one
// notification each, not again until an attempt has succeeded).
func CrossFailing(ctx context.Context, tx pgx.Tx, ids []string, threshold int, now time.Time) ([]FailingWebhook, error) {
	if _, err := tx.Exec(ctx, failingRearm, ids); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, failingCross, ids, threshold, now)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (FailingWebhook, error) {
		var f FailingWebhook
		return f, row.Scan(&f.WebhookID, &f.AccountID, &f.URL, &f.ConsecutiveFailures, &f.LastFailureKind)
	})
}
