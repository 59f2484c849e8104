package client

import (
	"context"
	"net/http"

	"github.com/mono/webhookd/apitype"
)

// EventType is an entry of the event catalogue.
type EventType = apitype.EventType

// CreateEventTypeParams is a new event type (admin keys only).
type CreateEventTypeParams = apitype.EventTypeCreate

// UpdateEventTypeParams are the fields to change; nil ones stay as they
// are.
type UpdateEventTypeParams = apitype.EventTypePatch

// ListEventTypes returns the whole catalogue, by name: GET
// /v1/event-types.
func (c *Client) ListEventTypes(ctx context.Context) ([]EventType, error) {
	var out struct {
		Data []EventType `json:"data"`
	}
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/event-types"}, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// GetEventType returns one event type: GET /v1/event-types/{type}.
func (c *Client) GetEventType(ctx context.Context, name string) (*EventType, error) {
	seg, err := pathID("event type", name)
	if err != nil {
		return nil, err
	}
	var out EventType
	if _, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/event-types/" + seg}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateEventType registers an event type: POST /v1/event-types. A retry
// after a lost answer gets a 409 event_type_exists.
func (c *Client) CreateEventType(ctx context.Context, p *CreateEventTypeParams) (*EventType, error) {
	var out EventType
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/event-types", body: p}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateEventType changes, or deprecates, an event type: PATCH
// /v1/event-types/{type}.
func (c *Client) UpdateEventType(ctx context.Context, name string, p *UpdateEventTypeParams) (*EventType, error) {
	seg, err := pathID("event type", name)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = &UpdateEventTypeParams{}
	}
	var out EventType
	if _, err := c.do(ctx, &request{method: http.MethodPatch, path: "/v1/event-types/" + seg, body: p}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
