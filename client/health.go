package client

import (
	"context"
	"net/http"
)

// Health checks that the process is up: GET /healthz, once, without
// retries.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/healthz", noRetry: true}, nil)
	return err
}

// Ready checks that webhookd can serve (its database answers and its
// migrations are current): GET /readyz, once, without retries. Not ready
// is an *APIError with Status 503, Code "not_ready" and the server's
// reasons, joined with "; ", as the Message.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/readyz", noRetry: true}, nil)
	return err
}
