package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/mono/webhookd/apitype"
)

// Webhook is a registered endpoint. Secret is set only in CreateWebhook's
// answer; RevealSecret reads it later.
type Webhook = apitype.Webhook

// Signature schemes: SchemeMono sends Mono-Signature; SchemeStandard sends
// the Standard Webhooks headers (webhook-id, webhook-timestamp,
// webhook-signature) too.
const (
	SchemeMono     = apitype.SchemeMono
	SchemeStandard = apitype.SchemeStandard
)

// What a 410 Gone answer does: OnGoneRetry retries it like any failure;
// OnGonePause pauses the webhook (PauseReason "gone").
const (
	OnGoneRetry = apitype.OnGoneRetry
	OnGonePause = apitype.OnGonePause
)

// CreateWebhookParams is a new webhook.
type CreateWebhookParams struct {
	// AccountID may be empty for a key bound to an account.
	AccountID   string `json:"account_id,omitempty"`
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	// Headers are custom headers sent on every attempt (at most 10; no
	// hop-by-hop, Host, User-Agent, Mono-* or Content-* names).
	Headers map[string]string `json:"headers,omitempty"`
	// SignatureScheme defaults to SchemeMono; OnGone to OnGoneRetry.
	SignatureScheme string `json:"signature_scheme,omitempty"`
	OnGone          string `json:"on_gone,omitempty"`
}

// CreateWebhook registers a webhook: POST /v1/webhooks. The answer holds
// its signing secret. A retry after a lost answer gets a 409 duplicate_url
// rather than a second webhook.
func (c *Client) CreateWebhook(ctx context.Context, p *CreateWebhookParams) (*Webhook, error) {
	var out Webhook
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/webhooks", body: p}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWebhooksParams filters and pages ListWebhooks.
type ListWebhooksParams struct {
	// AccountID is required, except for a key bound to an account.
	AccountID string
	// Cursor is the previous page's NextCursor; empty for the first page.
	Cursor string
	// Limit is the page size, 1 to 1000. Defaults to the server's 100.
	Limit int
}

// ListWebhooks lists an account's live webhooks, newest first: GET
// /v1/webhooks.
func (c *Client) ListWebhooks(ctx context.Context, p *ListWebhooksParams) (*Page[Webhook], error) {
	if p == nil {
		p = &ListWebhooksParams{}
	}
	q := url.Values{}
	if p.AccountID != "" {
		q.Set("account_id", p.AccountID)
	}
	var out Page[Webhook]
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/webhooks", query: pageQuery(q, p.Cursor, p.Limit)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetWebhook returns one webhook, without its secret: GET
// /v1/webhooks/{id}.
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	seg, err := pathID("webhook", id)
	if err != nil {
		return nil, err
	}
	var out Webhook
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/webhooks/" + seg}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevealSecret returns a webhook's signing secret: GET
// /v1/webhooks/{id}/secret. The server records that this key saw it.
func (c *Client) RevealSecret(ctx context.Context, id string) (string, error) {
	seg, err := pathID("webhook", id)
	if err != nil {
		return "", err
	}
	var out apitype.WebhookSecret
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/webhooks/" + seg + "/secret"}, &out); err != nil {
		return "", err
	}
	return out.Secret, nil
}

// UpdateWebhookParams are the fields to change; nil ones stay as they are.
type UpdateWebhookParams struct {
	Description *string `json:"description,omitempty"`
	// Headers, when not nil, replaces the custom headers; an empty map
	// removes them.
	Headers *map[string]string `json:"headers,omitempty"`
	// SignatureScheme switches the scheme; switching to SchemeStandard
	// while the secret predates the standard form is a 422
	// secret_rotation_required (rotate, then switch).
	SignatureScheme *string `json:"signature_scheme,omitempty"`
	// OnGone sets what a 410 answer does.
	OnGone *string `json:"on_gone,omitempty"`
}

// UpdateWebhook changes a webhook: PATCH /v1/webhooks/{id}.
func (c *Client) UpdateWebhook(ctx context.Context, id string, p *UpdateWebhookParams) (*Webhook, error) {
	seg, err := pathID("webhook", id)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = &UpdateWebhookParams{}
	}
	var out Webhook
	if _, err := c.do(ctx, &request{method: http.MethodPatch, path: "/v1/webhooks/" + seg, body: p}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWebhook deletes a webhook (softly; its pending and paused
// deliveries are cancelled): DELETE /v1/webhooks/{id}.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	seg, err := pathID("webhook", id)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, &request{method: http.MethodDelete, path: "/v1/webhooks/" + seg}, nil)
	return err
}

// TestSend is the answer of SendTest: the one attempt of a test event.
type TestSend = apitype.TestSend

// SendTest sends a signed test event to webhook id at once and returns
// the attempt: POST /v1/webhooks/{id}/test. eventType "" sends
// webhook.test; a catalogue type sends its example data. It is never
// retried, by the server or by this client (a second try would send a
// second event); a failed attempt is not an error here: see Succeeded.
func (c *Client) SendTest(ctx context.Context, id, eventType string) (*TestSend, error) {
	seg, err := pathID("webhook", id)
	if err != nil {
		return nil, err
	}
	body := map[string]string{}
	if eventType != "" {
		body["type"] = eventType
	}
	var out TestSend
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/webhooks/" + seg + "/test", body: body, noRetry: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
