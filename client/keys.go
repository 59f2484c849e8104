package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// API key scopes.
const (
	ScopeAdmin       = "admin"
	ScopeAccount     = "account"
	ScopeEventsWrite = "events:write"
)

// Key is an API key as listed. Key, the key itself, is set only in
// CreateKey's and RotateKey's answers.
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

// CreateKeyParams is a new API key.
type CreateKeyParams struct {
	// Scope is ScopeAdmin, ScopeAccount or ScopeEventsWrite.
	Scope string `json:"scope"`
	// AccountID binds the key to one account: required for ScopeAccount,
	// refused for ScopeAdmin.
	AccountID   string `json:"account_id,omitempty"`
	Description string `json:"description,omitempty"`
}

// CreateKey makes an API key (admin keys only): POST /v1/keys. The answer
// is the only time the key is shown. It is sent once, never retried: a retry
// after a lost answer would make a second key.
func (c *Client) CreateKey(ctx context.Context, p *CreateKeyParams) (*Key, error) {
	var out Key
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/keys", body: p, noRetry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListKeysParams filters and pages ListKeys.
type ListKeysParams struct {
	// AccountID lists only the keys bound to this account.
	AccountID string
	Cursor    string
	// Limit is the page size, 1 to 1000. Defaults to the server's 100.
	Limit int
}

// ListKeys lists API keys, newest first, never their secrets: GET
// /v1/keys.
func (c *Client) ListKeys(ctx context.Context, p *ListKeysParams) (*Page[Key], error) {
	if p == nil {
		p = &ListKeysParams{}
	}
	q := url.Values{}
	if p.AccountID != "" {
		q.Set("account_id", p.AccountID)
	}
	var out Page[Key]
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/keys", query: pageQuery(q, p.Cursor, p.Limit)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeKey revokes an API key for good: DELETE /v1/keys/{id}.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	seg, err := pathID("API key", id)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, &request{method: http.MethodDelete, path: "/v1/keys/" + seg}, nil)
	return err
}

// RotatedKey is RotateKey's answer: the new key, with Key set (the only
// time it is shown), and when the old key stops working.
type RotatedKey struct {
	Key
	OldKeyID        string    `json:"old_key_id"`
	OldKeyExpiresAt time.Time `json:"old_key_expires_at"`
}

// KeyGraceDefault, as RotateKey's grace, asks for the server's default
// grace period (1h).
const KeyGraceDefault time.Duration = -1

type rotateKeyRequest struct {
	Grace string `json:"grace"`
}

// RotateKey replaces API key id (admin keys only): POST
// /v1/keys/{id}/rotate. The new key has the old one's scope and account;
// the old one keeps working for grace (0 to 7 days; KeyGraceDefault, or
// any negative grace, asks for the server's default, 1h), then gets 401. It is sent once, never
// retried: a retry after a lost answer would make a second key, and the
// first rotation already stands.
func (c *Client) RotateKey(ctx context.Context, id string, grace time.Duration) (*RotatedKey, error) {
	seg, err := pathID("API key", id)
	if err != nil {
		return nil, err
	}
	var body any
	if grace >= 0 {
		body = &rotateKeyRequest{Grace: grace.String()}
	}
	var out RotatedKey
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/keys/" + seg + "/rotate", body: body, noRetry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
