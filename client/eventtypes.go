package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// EventType is an entry of the event catalogue.
type EventType struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	// Schema is the JSON Schema of the event's data.
	Schema json.RawMessage `json:"schema"`
	// Example is example data; it matches Schema.
	Example json.RawMessage `json:"example"`
	// Validate is whether enqueue refuses data that does not match Schema.
	Validate     bool       `json:"validate"`
	Deprecated   bool       `json:"deprecated"`
	DeprecatedAt *time.Time `json:"deprecated_at"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// CreateEventTypeParams is a new event type (admin keys only).
type CreateEventTypeParams struct {
	Type        string          `json:"type"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
	Validate    bool            `json:"validate,omitempty"`
}

// UpdateEventTypeParams are the fields to change; nil ones stay as they
// are.
type UpdateEventTypeParams struct {
	Description *string         `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Example     json.RawMessage `json:"example,omitempty"`
	Validate    *bool           `json:"validate,omitempty"`
	Deprecated  *bool           `json:"deprecated,omitempty"`
}

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
