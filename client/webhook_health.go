package client

import (
	"context"
	"net/http"

	"github.com/mono/webhookd/apitype"
)

// WebhookHealth is a webhook endpoint's health, as the worker processes
// write it every few seconds.
type WebhookHealth = apitype.WebhookHealth

// WebhookHealthCount counts a webhook's attempts of the last hour.
type WebhookHealthCount = apitype.WebhookHealthCount

// WebhookHealth returns a webhook's endpoint health: GET
// /v1/webhooks/{id}/health.
func (c *Client) WebhookHealth(ctx context.Context, id string) (*WebhookHealth, error) {
	seg, err := pathID("webhook", id)
	if err != nil {
		return nil, err
	}
	var out WebhookHealth
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/webhooks/" + seg + "/health"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
