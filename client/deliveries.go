package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/mono/webhookd/apitype"
)

// Delivery states.
const (
	StatePending   = apitype.StatePending
	StateSucceeded = apitype.StateSucceeded
	StateDead      = apitype.StateDead
	StateCancelled = apitype.StateCancelled
	StatePaused    = apitype.StatePaused
)

// Delivery is one event's delivery to one webhook. Attempts and Replays
// are filled by GetDelivery and ReplayDelivery, not by ListDeliveries.
type Delivery = apitype.Delivery

// Attempt is one try at sending a delivery.
type Attempt = apitype.Attempt

// Replay is one replay of a delivery. KeyID is nil when the bootstrap
// admin key asked; BatchID names the bulk replay, if any.
type Replay = apitype.Replay

// DeliveryFilter filters and pages ListDeliveries. Empty fields don't
// filter. WebhookID or AccountID is required, except with State dead.
type DeliveryFilter struct {
	State     string
	AccountID string
	WebhookID string
	EventType string
	EventID   string
	// CreatedAfter (inclusive) and CreatedBefore (exclusive) bound the
	// delivery's creation time; zero means unbounded.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Cursor is the previous page's NextCursor; empty for the first page.
	Cursor string
	// Limit is the page size, 1 to 1000. Defaults to the server's 100.
	Limit int
}

func (f *DeliveryFilter) query() url.Values {
	q := url.Values{}
	for name, v := range map[string]string{"state": f.State, "account_id": f.AccountID, "webhook_id": f.WebhookID, "event_type": f.EventType, "event_id": f.EventID} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if !f.CreatedAfter.IsZero() {
		q.Set("created_after", f.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !f.CreatedBefore.IsZero() {
		q.Set("created_before", f.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	return pageQuery(q, f.Cursor, f.Limit)
}

// ListDeliveries lists deliveries newest first: GET /v1/deliveries. A key
// bound to an account only ever sees that account's.
func (c *Client) ListDeliveries(ctx context.Context, f *DeliveryFilter) (*Page[Delivery], error) {
	if f == nil {
		f = &DeliveryFilter{}
	}
	var out Page[Delivery]
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/deliveries", query: f.query()}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDelivery returns a delivery with every attempt and replay: GET
// /v1/deliveries/{id}.
func (c *Client) GetDelivery(ctx context.Context, id string) (*Delivery, error) {
	seg, err := pathID("delivery", id)
	if err != nil {
		return nil, err
	}
	var out Delivery
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/deliveries/" + seg}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
