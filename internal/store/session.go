package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// DashboardSession is a dashboard_sessions row (migration 4): a browser
// signed in to the dashboard with an API key (KeyID; nil for the bootstrap
// admin key, whose hash is KeyHash) or a portal link (PortalLinkID,
// migration 13). The token itself is never stored, only its SHA-256.
type DashboardSession struct {
	TokenHash    []byte
	KeyID        *string
	KeyHash      []byte
	CSRFToken    string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	PortalLinkID *string

	// Read with the session by GetDashboardSession, so that a revoked key,
	// a rotated one past its grace period, or a revoked link ends the
	// session on its next request:

	// Key is the session's API key as it is now (ID, Prefix, Scope,
	// AccountID, RevokedAt, ExpiresAt); nil when KeyID is nil or the key
	// row is gone.
	Key *APIKey
	// LinkAccountID and LinkRevokedAt are the portal link's; LinkAccountID
	// is nil when the link row is gone.
	LinkAccountID *string
	LinkRevokedAt *time.Time
}

const (
	sessionInsert = `
INSERT INTO dashboard_sessions (token_hash, key_id, portal_link_id, key_hash, csrf_token, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

	sessionGet = `
SELECT s.key_id, s.key_hash, s.csrf_token, s.created_at, s.expires_at, k.id, k.scope, k.account_id, k.prefix, k.revoked_at, k.expires_at,
       s.portal_link_id, l.account_id, l.revoked_at
FROM dashboard_sessions s LEFT JOIN api_keys k ON k.id = s.key_id LEFT JOIN portal_links l ON l.id = s.portal_link_id
WHERE s.token_hash = $1`

	sessionDelete = `DELETE FROM dashboard_sessions WHERE token_hash = $1`
)

// InsertDashboardSession stores s: a key's session, or a portal link's
// (PortalLinkID set, KeyHash the link's token hash: the credential it
// signed in with), which acts as the link's account and ends when the link
// is revoked.
func InsertDashboardSession(ctx context.Context, db DB, s *DashboardSession) error {
	_, err := db.Exec(ctx, sessionInsert, s.TokenHash, s.KeyID, s.PortalLinkID, s.KeyHash, s.CSRFToken, s.CreatedAt, s.ExpiresAt)
	return err
}

// GetDashboardSession returns the session whose token's SHA-256 is
// tokenHash, with its key or portal link as they are now, or ErrNotFound.
func GetDashboardSession(ctx context.Context, db DB, tokenHash []byte) (*DashboardSession, error) {
	s := &DashboardSession{TokenHash: tokenHash}
	var (
		keyID, scope, accountID, prefix *string
		revokedAt, keyExpiresAt         *time.Time
	)
	err := db.QueryRow(ctx, sessionGet, tokenHash).Scan(&s.KeyID, &s.KeyHash, &s.CSRFToken, &s.CreatedAt, &s.ExpiresAt,
		&keyID, &scope, &accountID, &prefix, &revokedAt, &keyExpiresAt,
		&s.PortalLinkID, &s.LinkAccountID, &s.LinkRevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if keyID != nil {
		s.Key = &APIKey{ID: *keyID, Scope: *scope, AccountID: accountID, RevokedAt: revokedAt, ExpiresAt: keyExpiresAt}
		if prefix != nil {
			s.Key.Prefix = *prefix
		}
	}
	return s, nil
}

// DeleteDashboardSession deletes the session whose token's SHA-256 is
// tokenHash (signing out, or a session found ended); none is not an error.
func DeleteDashboardSession(ctx context.Context, db DB, tokenHash []byte) error {
	_, err := db.Exec(ctx, sessionDelete, tokenHash)
	return err
}
