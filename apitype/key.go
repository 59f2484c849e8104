package apitype

import "time"

// API key scopes.
const (
	ScopeAdmin       = "admin"
	ScopeAccount     = "account"
	ScopeEventsWrite = "events:write"
	// ScopePortalWrite may only mint and revoke portal links: the key a
	// product's backend holds.
	ScopePortalWrite = "portal:write"
)

// Key is an API key as shown: never its hash, and Key, the key itself, only
// in the answer that created it (POST /v1/keys, POST /v1/keys/{id}/rotate).
type Key struct {
	Key         string     `json:"key,omitempty"`
	ID          string     `json:"id"`
	Prefix      string     `json:"prefix"`
	Scope       string     `json:"scope"`
	AccountID   *string    `json:"account_id"`
	Description string     `json:"description"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	// ExpiresAt is when a rotated key stops working; ReplacedBy the key it
	// was rotated to. Both nil until the key is rotated.
	ExpiresAt  *time.Time `json:"expires_at"`
	ReplacedBy *string    `json:"replaced_by"`
}

// KeyCreate is the body of POST /v1/keys.
type KeyCreate struct {
	// Scope is ScopeAdmin, ScopeAccount, ScopeEventsWrite or
	// ScopePortalWrite.
	Scope string `json:"scope"`
	// AccountID binds the key to one account: required for ScopeAccount,
	// refused for ScopeAdmin.
	AccountID   string `json:"account_id,omitempty"`
	Description string `json:"description,omitempty"`
}

// KeyRotate is the body of POST /v1/keys/{id}/rotate: how long the old
// key keeps working: a Go duration ("90m") or whole days ("2d"), 0 to 7
// days. Absent or null: 1h.
type KeyRotate struct {
	// ID is the key to rotate: the path's {id}, not a body field.
	ID    string  `json:"-"`
	Grace *string `json:"grace,omitempty"`
}

// KeyList is the query of GET /v1/keys: every key, or one account's
// (AccountID), a page of Limit (0: the default, 100) from Cursor (a
// previous page's next_cursor).
type KeyList struct {
	AccountID string `json:"account_id,omitempty"`
	Cursor    string `json:"cursor,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

// KeyRevoke names the key of DELETE /v1/keys/{id}: the path's {id}.
type KeyRevoke struct {
	ID string `json:"id"`
}

// KeyRotated is the answer of POST /v1/keys/{id}/rotate: the new key, with
// Key set (the only time it is shown), and when the old key stops working.
type KeyRotated struct {
	Key
	OldKeyID        string    `json:"old_key_id"`
	OldKeyExpiresAt time.Time `json:"old_key_expires_at"`
}

// PortalLinkCreate is the body of POST /v1/portal-links. AccountID may be
// empty for a key bound to an account; ExpiresIn is the link's lifetime in
// seconds (60 to 3600), absent or null: 600.
type PortalLinkCreate struct {
	AccountID string `json:"account_id,omitempty"`
	ExpiresIn *int64 `json:"expires_in,omitempty"`
	// Origin is where the link points ("https://host") when
	// WEBHOOKD_PUBLIC_URL is not set, and ClientAddr who asked: the HTTP
	// request's, not body fields; a caller in process may leave them
	// empty.
	Origin     string `json:"-"`
	ClientAddr string `json:"-"`
}

// PortalLinksRevoke is the query of DELETE /v1/portal-links: the account
// whose links to revoke (a bound key's own when empty).
type PortalLinksRevoke struct {
	AccountID string `json:"account_id,omitempty"`
}

// PortalLink is a link that signs a browser in to the dashboard for one
// account, once: the answer of POST /v1/portal-links, the only time URL is
// shown.
type PortalLink struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	AccountID string    `json:"account_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PortalLinksRevoked is the answer of DELETE /v1/portal-links.
type PortalLinksRevoked struct {
	AccountID string `json:"account_id"`
	// RevokedLinks is how many links were revoked, used or not;
	// EndedSessions how many dashboard sessions they had opened.
	RevokedLinks  int64 `json:"revoked_links"`
	EndedSessions int64 `json:"ended_sessions"`
}

// A key's states, as KeyStateAt judges them.
const (
	// KeyStateLive: works, not rotated.
	KeyStateLive = "live"
	// KeyStateRotated: rotated, still working until its expires_at.
	KeyStateRotated = "rotated"
	// KeyStateExpired: rotated, past its expires_at: refused.
	KeyStateExpired = "expired"
	// KeyStateRevoked: revoked: refused.
	KeyStateRevoked = "revoked"
)

// KeyStateAt is the one rule a key is judged by at now, from its
// revoked_at and expires_at: the API's authentication (a key works while
// KeyWorks) and every view of a key's state use it.
func KeyStateAt(revokedAt, expiresAt *time.Time, now time.Time) string {
	switch {
	case revokedAt != nil:
		return KeyStateRevoked
	case expiresAt != nil && !now.Before(*expiresAt):
		return KeyStateExpired
	case expiresAt != nil:
		return KeyStateRotated
	}
	return KeyStateLive
}

// KeyWorks reports whether a key in state is accepted.
func KeyWorks(state string) bool { return state == KeyStateLive || state == KeyStateRotated }
