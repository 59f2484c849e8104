package apitype

import (
	"encoding/json"
	"time"
)

// EventCreate is the body of POST /v1/events, and one item of POST
// /v1/events/batch. AccountID may be empty for a key bound to an account;
// IdempotencyKey makes a repeat of the same event a no-op.
type EventCreate struct {
	AccountID      string          `json:"account_id,omitempty"`
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	// Traceparent is a W3C trace context the deliveries continue; the
	// Traceparent header is used when it is empty.
	Traceparent string `json:"traceparent,omitempty"`
}

// Enqueued is an accepted event and the deliveries made for it: the answer
// of POST /v1/events (202, or 200 for a repeat of an idempotency key).
type Enqueued struct {
	// ID is the event's id.
	ID         string             `json:"id"`
	Deliveries []EnqueuedDelivery `json:"deliveries"`
}

// EnqueuedDelivery is one delivery made for an event.
type EnqueuedDelivery struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhook_id"`
}

// EventBatch is the body of POST /v1/events/batch: up to 1,000 events,
// stored all or nothing. Events stay raw so that each bad one is named by
// its index.
type EventBatch struct {
	Events *[]json.RawMessage `json:"events"`
}

// EventBatchItem is one event of an accepted batch, in the batch's order.
type EventBatchItem struct {
	Enqueued
	// Repeat is true when the item's idempotency key matched an earlier
	// event (before or in this batch): nothing new was created for it.
	Repeat bool `json:"repeat"`
}

// Event is a stored event with its deliveries: GET /v1/events/{id}.
type Event struct {
	ID             string    `json:"id"`
	AccountID      string    `json:"account_id"`
	Type           string    `json:"type"`
	IdempotencyKey *string   `json:"idempotency_key"`
	OccurredAt     time.Time `json:"occurred_at"`
	CreatedAt      time.Time `json:"created_at"`
	// Body is the exact envelope sent to every webhook.
	Body       json.RawMessage `json:"body"`
	Deliveries []EventDelivery `json:"deliveries"`
}

// EventDelivery is one delivery of an event and its state.
type EventDelivery struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhook_id"`
	State     string `json:"state"`
}

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

// EventTypeCreate is the body of POST /v1/event-types (admin keys only).
type EventTypeCreate struct {
	Type        string          `json:"type"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
	Validate    bool            `json:"validate,omitempty"`
}

// EventTypePatch is the body of PATCH /v1/event-types/{type}: the fields
// to change; absent (or null) ones stay as they are.
type EventTypePatch struct {
	// Type is the event type to change: the path's {type}, not a body
	// field.
	Type        string          `json:"-"`
	Description *string         `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Example     json.RawMessage `json:"example,omitempty"`
	Validate    *bool           `json:"validate,omitempty"`
	Deprecated  *bool           `json:"deprecated,omitempty"`
}

// EventTypeList is the query of GET /v1/event-types: it takes nothing
// (the whole catalogue is one page).
type EventTypeList struct{}

// EventTypeGet names the event type of GET /v1/event-types/{type}: the
// path's {type}.
type EventTypeGet struct {
	Type string `json:"type"`
}

// EventTypes is the answer of GET /v1/event-types: the whole catalogue,
// deprecated types included, by name.
type EventTypes struct {
	Data []EventType `json:"data"`
}

// EventGet names the event of GET /v1/events/{id}: the path's {id}.
type EventGet struct {
	ID string `json:"id"`
}

// EventFind is the query of GET /v1/events: the event accepted with
// IdempotencyKey for AccountID (a bound key's own account when empty).
type EventFind struct {
	AccountID      string `json:"account_id,omitempty"`
	IdempotencyKey string `json:"idempotency_key"`
}
