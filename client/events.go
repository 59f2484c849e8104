package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/uuid"

	"github.com/mono/webhookd/apitype"
)

// EventParams is an event to send to every webhook of an account.
type EventParams struct {
	// AccountID may be empty for a key bound to an account.
	AccountID string `json:"account_id,omitempty"`
	// Type is the event type, such as "payment.succeeded".
	Type string `json:"type"`
	// Data is the event's data: anything that encodes to a JSON object (a
	// struct, a map, a json.RawMessage).
	Data any `json:"data"`
	// IdempotencyKey makes a repeat of the same event a no-op. Empty means
	// one is generated for this call, and reused by its retries.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Enqueued is an accepted event and the deliveries made for it.
type Enqueued struct {
	// Enqueued is the answer: the event's id and its deliveries.
	apitype.Enqueued
	// IdempotencyKey is the key the event was sent with (generated or
	// given).
	IdempotencyKey string `json:"idempotency_key"`
	// Repeat is true when the key matched an earlier event: nothing new was
	// created, and ID is the earlier event's.
	Repeat bool `json:"repeat"`
}

// EnqueuedDelivery is one delivery made for an event.
type EnqueuedDelivery = apitype.EnqueuedDelivery

// newIdempotencyKey is the key of an event sent without one.
func newIdempotencyKey() string { return "wkc_" + uuid.NewString() }

// SendEvent enqueues an event: POST /v1/events. Without an
// IdempotencyKey one is generated, and every retry of this call sends the
// same key, so a retry after a lost answer can't create a second event.
func (c *Client) SendEvent(ctx context.Context, p *EventParams) (*Enqueued, error) {
	if p == nil {
		return nil, fmt.Errorf("SendEvent: params are required")
	}
	body := *p
	if body.IdempotencyKey == "" {
		body.IdempotencyKey = newIdempotencyKey()
	}
	var out Enqueued
	status, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/events", body: &body}, &out)
	if err != nil {
		return nil, err
	}
	out.IdempotencyKey = body.IdempotencyKey
	out.Repeat = status == http.StatusOK
	return &out, nil
}

// SendEvents enqueues up to 1,000 events in one transaction, all or
// nothing: POST /v1/events/batch. Events without an IdempotencyKey get one
// each, reused by the call's retries. The answer is one Enqueued per
// event, in order. A refused batch is an *APIError whose Items name each
// bad event.
func (c *Client) SendEvents(ctx context.Context, events []*EventParams) ([]*Enqueued, error) {
	items := make([]EventParams, len(events))
	for i, p := range events {
		if p == nil {
			return nil, fmt.Errorf("SendEvents: event %d is nil", i)
		}
		items[i] = *p
		if items[i].IdempotencyKey == "" {
			items[i].IdempotencyKey = newIdempotencyKey()
		}
	}
	var out struct {
		Data []*Enqueued `json:"data"`
	}
	body := map[string][]EventParams{"events": items}
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/events/batch", body: body}, &out); err != nil {
		return nil, err
	}
	if len(out.Data) != len(items) {
		return nil, fmt.Errorf("SendEvents: %d events sent, %d in the answer", len(items), len(out.Data))
	}
	for i, e := range out.Data {
		e.IdempotencyKey = items[i].IdempotencyKey
	}
	return out.Data, nil
}

// Event is a stored event with its deliveries.
type Event = apitype.Event

// EventDelivery is one delivery of an event and its state.
type EventDelivery = apitype.EventDelivery

// GetEvent returns an event and its deliveries: GET /v1/events/{id}.
func (c *Client) GetEvent(ctx context.Context, id string) (*Event, error) {
	seg, err := pathID("event", id)
	if err != nil {
		return nil, err
	}
	var out Event
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/events/" + seg}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FindEvent returns the event an account sent with idempotencyKey: GET
// /v1/events?account_id=…&idempotency_key=…. accountID may be empty for a
// key bound to an account. None is a 404 *APIError.
func (c *Client) FindEvent(ctx context.Context, accountID, idempotencyKey string) (*Event, error) {
	q := url.Values{"idempotency_key": {idempotencyKey}}
	if accountID != "" {
		q.Set("account_id", accountID)
	}
	var out Event
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/events", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
