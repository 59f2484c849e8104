package client

import (
	"context"
	"net/http"
	"time"

	"github.com/mono/webhookd/apitype"
)

// ReplayDelivery sends a dead or succeeded delivery again on a fresh
// generation of attempts: POST /v1/deliveries/{id}/replay. A pending one is
// a 409 *APIError (also what a retry after a lost answer gets).
func (c *Client) ReplayDelivery(ctx context.Context, id string) (*Delivery, error) {
	seg, err := pathID("delivery", id)
	if err != nil {
		return nil, err
	}
	var out Delivery
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/deliveries/" + seg + "/replay"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplayFilter picks the deliveries of a bulk replay: WebhookID or
// AccountID is required.
type ReplayFilter struct {
	AccountID string
	WebhookID string
	// State is StateDead or StateSucceeded. Defaults to StateDead.
	State string
	// CreatedAfter (inclusive) and CreatedBefore (exclusive) bound the
	// delivery's creation time; zero means unbounded.
	CreatedAfter  time.Time
	CreatedBefore time.Time
}

// ReplayBatch is a bulk replay and its progress.
type ReplayBatch = apitype.ReplayBatch

// ReplayDeliveries replays every delivery matching f in the background:
// POST /v1/deliveries/replay. The matching deliveries are fixed when the
// server answers; GetReplay follows the progress. Asking twice never
// queues a delivery twice.
func (c *Client) ReplayDeliveries(ctx context.Context, f *ReplayFilter) (*ReplayBatch, error) {
	if f == nil {
		f = &ReplayFilter{}
	}
	body := map[string]string{}
	for name, v := range map[string]string{"account_id": f.AccountID, "webhook_id": f.WebhookID, "state": f.State} {
		if v != "" {
			body[name] = v
		}
	}
	if !f.CreatedAfter.IsZero() {
		body["created_after"] = f.CreatedAfter.UTC().Format(time.RFC3339Nano)
	}
	if !f.CreatedBefore.IsZero() {
		body["created_before"] = f.CreatedBefore.UTC().Format(time.RFC3339Nano)
	}
	var out ReplayBatch
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/deliveries/replay", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetReplay returns a bulk replay's progress: GET /v1/replays/{id}.
func (c *Client) GetReplay(ctx context.Context, id string) (*ReplayBatch, error) {
	seg, err := pathID("bulk replay", id)
	if err != nil {
		return nil, err
	}
	var out ReplayBatch
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/replays/" + seg}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
