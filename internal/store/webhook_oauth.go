package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// WebhookOAuth is a webhook's OAuth2 client credentials setting
// (webhook_oauth). The client secret stays encrypted here.
type WebhookOAuth struct {
	WebhookID        string
	TokenURL         string
	ClientID         string
	SecretCiphertext []byte
	SecretKeyID      string
	Scopes           []string
	Audience         string
	// AuthStyle is "header" (HTTP Basic) or "body".
	AuthStyle string
	UpdatedAt time.Time
}

const webhookOAuthUpsert = `
INSERT INTO webhook_oauth (webhook_id, token_url, client_id, secret_ciphertext, secret_key_id, scopes, audience, auth_style, updated_at)
SELECT $1, $2, $3, $4, $5, coalesce($6::text[], '{}'), $7, $8, $9
FROM webhooks WHERE id = $1 AND deleted_at IS NULL
ON CONFLICT (webhook_id) DO UPDATE SET token_url = excluded.token_url, client_id = excluded.client_id,
    secret_ciphertext = excluded.secret_ciphertext, secret_key_id = excluded.secret_key_id, scopes = excluded.scopes,
    audience = excluded.audience, auth_style = excluded.auth_style, updated_at = excluded.updated_at`

const webhookOAuthDelete = `DELETE FROM webhook_oauth WHERE webhook_id = $1`

// SetWebhookOAuth sets (o not nil) or removes (o nil) the OAuth2 setting
// of the live webhook webhookID.
func SetWebhookOAuth(ctx context.Context, db DB, webhookID string, o *WebhookOAuth) error {
	if o == nil {
		_, err := db.Exec(ctx, webhookOAuthDelete, webhookID)
		return err
	}
	_, err := db.Exec(ctx, webhookOAuthUpsert, webhookID, o.TokenURL, o.ClientID, o.SecretCiphertext, o.SecretKeyID, o.Scopes, o.Audience, o.AuthStyle, o.UpdatedAt)
	return err
}

const webhookOAuthGet = `
SELECT webhook_id, token_url, client_id, secret_ciphertext, secret_key_id, scopes, audience, auth_style, updated_at
FROM webhook_oauth WHERE webhook_id = ANY($1)`

// GetWebhookOAuth returns the OAuth2 settings of webhookIDs, by webhook id;
// a webhook without one has no entry.
func GetWebhookOAuth(ctx context.Context, db DB, webhookIDs []string) (map[string]*WebhookOAuth, error) {
	rows, err := db.Query(ctx, webhookOAuthGet, webhookIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]*WebhookOAuth, len(webhookIDs))
	for rows.Next() {
		o := &WebhookOAuth{}
		if err := rows.Scan(&o.WebhookID, &o.TokenURL, &o.ClientID, &o.SecretCiphertext, &o.SecretKeyID, &o.Scopes, &o.Audience, &o.AuthStyle, &o.UpdatedAt); err != nil {
			return nil, err
		}
		out[o.WebhookID] = o
	}
	if err := rows.Err(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	return out, nil
}

const webhookOAuthIndex = `SELECT webhook_id, updated_at FROM webhook_oauth`

// WebhookOAuthIndex lists every webhook with an OAuth2 setting and when
// it last changed: the workers read it every half minute, so a webhook
// without one costs no query.
func WebhookOAuthIndex(ctx context.Context, db DB) (map[string]time.Time, error) {
	rows, err := db.Query(ctx, webhookOAuthIndex)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var (
			id string
			at time.Time
		)
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = at
	}
	return out, rows.Err()
}
