package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/mono/webhookd/apitype"
)

// API key scopes.
const (
	ScopeAdmin       = apitype.ScopeAdmin
	ScopeAccount     = apitype.ScopeAccount
	ScopeEventsWrite = apitype.ScopeEventsWrite
)

// Key is an API key as listed. Key, the key itself, is set only in
// CreateKey's and RotateKey's answers.
type Key = apitype.Key

// CreateKeyParams is a new API key.
type CreateKeyParams = apitype.KeyCreate

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
type RotatedKey = apitype.KeyRotated

// KeyGraceDefault, as RotateKey's grace, asks for the server's default
// grace period (1h).
const KeyGraceDefault time.Duration = -1

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
		g := grace.String()
		body = &apitype.KeyRotate{Grace: &g}
	}
	var out RotatedKey
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/keys/" + seg + "/rotate", body: body, noRetry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
