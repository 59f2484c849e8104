package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/mono/webhookd/apitype"
)

// ScopePortalWrite may only mint and revoke portal links: the key a
// product's backend holds.
const ScopePortalWrite = apitype.ScopePortalWrite

// PortalLink is a link that signs a browser in to the dashboard for one
// account, once: send the user's browser to URL (a redirect, or a frame's
// src) before ExpiresAt. URL is shown only in CreatePortalLink's answer.
type PortalLink = apitype.PortalLink

// CreatePortalLinkParams is a portal link to mint.
type CreatePortalLinkParams struct {
	// AccountID is the account the link signs in to; a key bound to an
	// account may leave it empty.
	AccountID string
	// ExpiresIn is how long the link can be used, from a minute to an
	// hour, in whole seconds. Zero: the server's default, 10 minutes.
	ExpiresIn time.Duration
}

// CreatePortalLink mints a single-use dashboard link for an account
// (admin and portal:write keys): POST /v1/portal-links. A retry after a
// lost answer mints a second link; the first expires unused.
func (c *Client) CreatePortalLink(ctx context.Context, p *CreatePortalLinkParams) (*PortalLink, error) {
	req := apitype.PortalLinkCreate{AccountID: p.AccountID}
	if p.ExpiresIn != 0 {
		s := int64(p.ExpiresIn / time.Second)
		req.ExpiresIn = &s
	}
	var out PortalLink
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/portal-links", body: &req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PortalLinksRevoked is RevokePortalLinks's answer.
type PortalLinksRevoked = apitype.PortalLinksRevoked

// RevokePortalLinks revokes every portal link of accountID and ends the
// dashboard sessions they opened: DELETE /v1/portal-links. A key bound to
// an account may leave accountID empty.
func (c *Client) RevokePortalLinks(ctx context.Context, accountID string) (*PortalLinksRevoked, error) {
	q := url.Values{}
	if accountID != "" {
		q.Set("account_id", accountID)
	}
	var out PortalLinksRevoked
	if _, err := c.do(ctx, &request{method: http.MethodDelete, path: "/v1/portal-links", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
