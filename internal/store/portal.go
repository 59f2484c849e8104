package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/apitype"
)

// ScopePortalWrite may only mint and revoke portal links, for any account
// or bound to one: the key a product's backend holds.
const ScopePortalWrite = apitype.ScopePortalWrite

// PortalLink is a portal_links row: the record of one sign-in link. The
// token itself is never stored, only its hash.
type PortalLink struct {
	ID        string
	TokenHash []byte
	AccountID string
	// CreatedByKeyID is the key that minted it ("bootstrap" for the
	// bootstrap admin key); CreatedFrom the client address.
	CreatedByKeyID string
	CreatedFrom    string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	// UsedAt, UsedFrom and UsedUserAgent are set by the one request that
	// used it.
	UsedAt        *time.Time
	UsedFrom      *string
	UsedUserAgent *string
	RevokedAt     *time.Time
}

const portalLinkInsert = `
INSERT INTO portal_links (id, token_hash, account_id, created_by_key_id, created_from, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

// InsertPortalLink stores l.
func InsertPortalLink(ctx context.Context, db DB, l *PortalLink) error {
	_, err := db.Exec(ctx, portalLinkInsert, l.ID, l.TokenHash, l.AccountID, l.CreatedByKeyID, l.CreatedFrom, l.CreatedAt, l.ExpiresAt)
	return err
}

const portalLinkColumns = `id, token_hash, account_id, created_by_key_id, created_from, created_at, expires_at, used_at, used_from, used_user_agent, revoked_at`

func scanPortalLink(row pgx.Row) (*PortalLink, error) {
	l := &PortalLink{}
	err := row.Scan(&l.ID, &l.TokenHash, &l.AccountID, &l.CreatedByKeyID, &l.CreatedFrom, &l.CreatedAt, &l.ExpiresAt,
		&l.UsedAt, &l.UsedFrom, &l.UsedUserAgent, &l.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return l, err
}

// The link is used by the one statement that finds it unused, unrevoked
// and unexpired, so two requests with the same token can't both win.
const portalLinkUse = `
UPDATE portal_links SET used_at = $2, used_from = $3, used_user_agent = $4
WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
RETURNING ` + portalLinkColumns

// UsePortalLink marks the link whose token hashes to tokenHash used at now
// from address from (with the browser's user agent), and returns it. A
// link that is unknown, used, revoked or expired is ErrNotFound: read it
// with GetPortalLinkByHash to say which.
func UsePortalLink(ctx context.Context, db DB, tokenHash []byte, now time.Time, from, userAgent string) (*PortalLink, error) {
	return scanPortalLink(db.QueryRow(ctx, portalLinkUse, tokenHash, now, from, userAgent))
}

const portalLinkByHash = `SELECT ` + portalLinkColumns + ` FROM portal_links WHERE token_hash = $1`

// GetPortalLinkByHash returns the link whose token hashes to tokenHash, or
// ErrNotFound.
func GetPortalLinkByHash(ctx context.Context, db DB, tokenHash []byte) (*PortalLink, error) {
	return scanPortalLink(db.QueryRow(ctx, portalLinkByHash, tokenHash))
}

// Revoking marks every unrevoked link of the account (used or not) and
// deletes the sessions they opened, in one statement.
const portalLinksRevoke = `
WITH revoked AS (
    UPDATE portal_links SET revoked_at = $2, revoked_by_key_id = $3
    WHERE account_id = $1 AND revoked_at IS NULL
    RETURNING id
), ended AS (
    DELETE FROM dashboard_sessions WHERE portal_link_id IN (SELECT id FROM revoked)
    RETURNING 1
)
SELECT (SELECT count(*) FROM revoked), (SELECT count(*) FROM ended)`

// RevokePortalLinks revokes every link of accountID not revoked yet, used
// or not, by key byKeyID, and ends the dashboard sessions they opened. It
// reports how many links it revoked and sessions it ended.
func RevokePortalLinks(ctx context.Context, db DB, accountID string, now time.Time, byKeyID string) (links, sessions int64, err error) {
	err = db.QueryRow(ctx, portalLinksRevoke, accountID, now, byKeyID).Scan(&links, &sessions)
	return links, sessions, err
}

// Records of links that expired long ago are deleted a batch at a time
// (PortalLinksPruneBatch), so that pruning never holds a mint back.
const portalLinksPrune = `
DELETE FROM portal_links WHERE id IN (
    SELECT id FROM portal_links WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
)`

// PortalLinksPruneBatch is the most link records PrunePortalLinks deletes
// at once.
const PortalLinksPruneBatch = 100

// PrunePortalLinks deletes up to PortalLinksPruneBatch records of links
// that expired before cutoff (and any session they still had) and
// reports how many.
func PrunePortalLinks(ctx context.Context, db DB, cutoff time.Time) (int64, error) {
	tag, err := db.Exec(ctx, portalLinksPrune, cutoff, PortalLinksPruneBatch)
	return tag.RowsAffected(), err
}
