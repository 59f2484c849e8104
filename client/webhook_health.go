package client

import (
	"context"
	"net/http"
	"time"
)

// WebhookHealth is a webhook endpoint's health, as the worker processes
// write it every few seconds.
type WebhookHealth struct {
	WebhookID string `json:"webhook_id"`
	// ConsecutiveFailures counts the failed attempts since the last
	// successful one (approximate with several worker processes).
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	LastFailureAt       *time.Time `json:"last_failure_at"`
	// LastFailureKind is the error kind of the last failed attempt
	// (http_status, timeout, connect, ...).
	LastFailureKind *string            `json:"last_failure_kind"`
	LastHour        WebhookHealthCount `json:"last_hour"`
}

// WebhookHealthCount counts a webhook's attempts of the last hour.
type WebhookHealthCount struct {
	Attempts  int `json:"attempts"`
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
	// SuccessRate is Successes / Attempts, from 0 to 1; nil without
	// attempts.
	SuccessRate *float64 `json:"success_rate"`
}

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
