package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/apitype"
)

// API key scopes.
const (
	// ScopeAdmin may do everything, for every account.
	ScopeAdmin = apitype.ScopeAdmin
	// ScopeAccount is bound to one account: its webhooks, deliveries and
	// events. It can't manage keys.
	ScopeAccount = apitype.ScopeAccount
	// ScopeEventsWrite may only enqueue events, for any account or bound to
	// one.
	ScopeEventsWrite = apitype.ScopeEventsWrite
)

// APIKey is an api_keys row. The key itself is never stored, only its hash.
type APIKey struct {
	ID          string
	Prefix      string
	Hash        []byte
	Scope       string
	AccountID   *string
	Description string
	CreatedAt   time.Time
	LastUsedAt  *time.Time
	RevokedAt   *time.Time
	// ExpiresAt, set when the key is rotated, is when it stops working.
	ExpiresAt *time.Time
	// ReplacedBy is the id of the key it was rotated to.
	ReplacedBy *string
}

// Live reports whether k can be used at now: it is not revoked, and, if it
// was rotated, now is before its ExpiresAt (it never works from then on).
// The API's Bearer authentication and the dashboard's sessions both ask
// it.
func (k *APIKey) Live(now time.Time) bool {
	return apitype.KeyWorks(apitype.KeyStateAt(k.RevokedAt, k.ExpiresAt, now))
}

const keyInsert = `
INSERT INTO api_keys (id, prefix, hash, scope, account_id, description, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

// InsertAPIKey stores k.
func InsertAPIKey(ctx context.Context, db DB, k *APIKey) error {
	_, err := db.Exec(ctx, keyInsert, k.ID, k.Prefix, k.Hash, k.Scope, k.AccountID, k.Description, k.CreatedAt)
	return err
}

const keyColumns = `id, prefix, hash, scope, account_id, description, created_at, last_used_at, revoked_at, expires_at, replaced_by`

func scanKey(row pgx.Row) (*APIKey, error) {
	k := &APIKey{}
	err := row.Scan(&k.ID, &k.Prefix, &k.Hash, &k.Scope, &k.AccountID, &k.Description, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt, &k.ExpiresAt, &k.ReplacedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return k, err
}

const keyByHash = `SELECT ` + keyColumns + ` FROM api_keys WHERE hash = $1`

// GetAPIKeyByHash returns the key whose SHA-256 is hash (revoked or not), or
// ErrNotFound.
func GetAPIKeyByHash(ctx context.Context, db DB, hash []byte) (*APIKey, error) {
	return scanKey(db.QueryRow(ctx, keyByHash, hash))
}

const keyGet = `SELECT ` + keyColumns + ` FROM api_keys WHERE id = $1`

// GetAPIKey returns key id, or ErrNotFound.
func GetAPIKey(ctx context.Context, db DB, id string) (*APIKey, error) {
	return scanKey(db.QueryRow(ctx, keyGet, id))
}

const keyGetForUpdate = keyGet + ` FOR UPDATE`

// GetAPIKeyForUpdate returns key id, locked until tx ends, or ErrNotFound.
func GetAPIKeyForUpdate(ctx context.Context, tx DB, id string) (*APIKey, error) {
	return scanKey(tx.QueryRow(ctx, keyGetForUpdate, id))
}

const keyReplace = `
UPDATE api_keys SET expires_at = $3, replaced_by = $2
WHERE id = $1 AND revoked_at IS NULL AND replaced_by IS NULL AND (expires_at IS NULL OR expires_at > $4)`

// ReplaceAPIKey marks key id as rotated to newID: it keeps working until
// expiresAt. It reports whether id was live (not revoked, rotated or
// expired at now).
func ReplaceAPIKey(ctx context.Context, db DB, id, newID string, expiresAt, now time.Time) (bool, error) {
	tag, err := db.Exec(ctx, keyReplace, id, newID, expiresAt, now)
	return tag.RowsAffected() == 1, err
}

const keyList = `SELECT ` + keyColumns + ` FROM api_keys
WHERE ($1::text IS NULL OR account_id = $1) AND ($2::text = '' OR id < $2)
ORDER BY id DESC LIMIT $3`

// ListAPIKeys lists keys newest first, optionally of one account, after the
// cursor id (exclusive; "" for the first page).
func ListAPIKeys(ctx context.Context, db DB, accountID *string, before string, limit int) ([]*APIKey, error) {
	rows, err := db.Query(ctx, keyList, accountID, before, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []*APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

const keyRevoke = `UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`

// RevokeAPIKey revokes key id, reporting whether it was live.
func RevokeAPIKey(ctx context.Context, db DB, id string, now time.Time) (bool, error) {
	tag, err := db.Exec(ctx, keyRevoke, id, now)
	return tag.RowsAffected() == 1, err
}

const keyTouch = `
UPDATE api_keys SET last_used_at = $2
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')`

// TouchAPIKey records that key id was used, at most once a minute.
func TouchAPIKey(ctx context.Context, db DB, id string, now time.Time) error {
	_, err := db.Exec(ctx, keyTouch, id, now)
	return err
}
