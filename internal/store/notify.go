package store

import (
	"context"
	"errors"
	"time"
)

// OperatorWebhookID is the id of the operator's notification webhook: the
// one webhook of the internal notification account, kept in line with
// WEBHOOKD_NOTIFY_URL and WEBHOOKD_NOTIFY_SECRET by every process at start
// (EnsureOperatorWebhook, RemoveOperatorWebhook).
const OperatorWebhookID = "wh_00000000000000000000000000000001"

const operatorWebhookUpsert = `
INSERT INTO webhooks (id, account_id, url, url_normalized, description, secret_ciphertext, secret_key_id, created_at, event_types)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO UPDATE SET
    account_id = EXCLUDED.account_id, url = EXCLUDED.url, url_normalized = EXCLUDED.url_normalized,
    description = EXCLUDED.description, secret_ciphertext = EXCLUDED.secret_ciphertext,
    secret_key_id = EXCLUDED.secret_key_id, event_types = EXCLUDED.event_types, deleted_at = NULL,
    previous_secret_ciphertext = NULL, previous_secret_key_id = NULL, previous_secret_expires_at = NULL`

// EnsureOperatorWebhook makes w (its ID OperatorWebhookID) the live
// operator webhook, inserting it or replacing the URL, secret and event
// types of the one there (deleted or not; its pause stays).
func EnsureOperatorWebhook(ctx context.Context, db DB, w *Webhook) error {
	_, err := db.Exec(ctx, operatorWebhookUpsert, OperatorWebhookID, w.AccountID, w.URL, w.URLNormalized, w.Description,
		w.SecretCiphertext, w.SecretKeyID, w.CreatedAt, w.EventTypes)
	return err
}

// RemoveOperatorWebhook deletes the operator webhook, if there is one (no
// WEBHOOKD_NOTIFY_URL any more), cancelling its pending deliveries. Without
// one it only reads.
func RemoveOperatorWebhook(ctx context.Context, db DB, now time.Time) error {
	if _, err := GetWebhook(ctx, db, OperatorWebhookID); errors.Is(err, ErrNotFound) {
		return nil
	}
	_, err := DeleteWebhook(ctx, db, OperatorWebhookID, "", now)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
