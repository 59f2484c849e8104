package apitype

import "time"

// Delivery states.
const (
	StatePending   = "pending"
	StateSucceeded = "succeeded"
	StateDead      = "dead"
	StateCancelled = "cancelled"
	// StatePaused: its webhook is paused; it waits, schedule kept, for the
	// webhook to resume.
	StatePaused = "paused"
)

// DeliveryStates are the delivery states, in the order they are listed in
// error messages.
var DeliveryStates = []string{StatePending, StateSucceeded, StateDead, StateCancelled, StatePaused}

// Delivery is one event's delivery to one webhook (schema DeliverySummary
// as listed, Delivery with its attempts and replays). Attempts and Replays
// are set, possibly empty, by GET /v1/deliveries/{id} and a replay, and
// absent from GET /v1/deliveries.
type Delivery struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	WebhookID string `json:"webhook_id"`
	AccountID string `json:"account_id"`
	EventType string `json:"event_type"`
	State     string `json:"state"`
	// AttemptCount counts the attempts of every generation.
	AttemptCount int `json:"attempt_count"`
	// Generation is 1, plus one per replay.
	Generation    int        `json:"generation"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	// Test marks a test send (POST /v1/webhooks/{id}/test).
	Test     bool      `json:"test"`
	Attempts []Attempt `json:"attempts,omitzero"`
	Replays  []Replay  `json:"replays,omitzero"`
}

// Attempt is one try at sending a delivery.
type Attempt struct {
	Number      int       `json:"number"`
	Generation  int       `json:"generation"`
	Counted     bool      `json:"counted"`
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	DurationMS  float64   `json:"duration_ms"`
	// StatusCode is the receiver's answer; nil when there was none.
	StatusCode      *int    `json:"status_code"`
	ErrorKind       *string `json:"error_kind"`
	ErrorMessage    *string `json:"error_message"`
	ResponseExcerpt *string `json:"response_excerpt"`
	SignatureT      int64   `json:"signature_t"`
}

// Replay is one replay of a delivery. KeyID is nil when the bootstrap admin
// key asked; BatchID names the bulk replay, if any.
type Replay struct {
	Generation int       `json:"generation"`
	FromState  string    `json:"from_state"`
	KeyID      *string   `json:"key_id"`
	BatchID    *string   `json:"batch_id"`
	CreatedAt  time.Time `json:"created_at"`
}

// BulkReplay is the body of POST /v1/deliveries/replay. Times are strings
// (RFC 3339) so that a bad one is named; State defaults to dead.
type BulkReplay struct {
	AccountID     *string `json:"account_id,omitempty"`
	WebhookID     *string `json:"webhook_id,omitempty"`
	State         *string `json:"state,omitempty"`
	CreatedAfter  *string `json:"created_after,omitempty"`
	CreatedBefore *string `json:"created_before,omitempty"`
}

// ReplayBatch is a bulk replay and its progress.
type ReplayBatch struct {
	ID string `json:"id"`
	// State is "running" or "done".
	State string `json:"state"`
	// Total is how many deliveries matched when the replay was asked for.
	Total      int               `json:"total"`
	Replayed   int               `json:"replayed"`
	Skipped    int               `json:"skipped"`
	Filter     ReplayBatchFilter `json:"filter"`
	KeyID      *string           `json:"key_id"`
	CreatedAt  time.Time         `json:"created_at"`
	FinishedAt *time.Time        `json:"finished_at"`
}

// ReplayBatchFilter is the filter a bulk replay was asked with, resolved:
// the account is always set.
type ReplayBatchFilter struct {
	AccountID     string     `json:"account_id"`
	WebhookID     *string    `json:"webhook_id"`
	State         string     `json:"state"`
	CreatedAfter  *time.Time `json:"created_after"`
	CreatedBefore *time.Time `json:"created_before"`
}

// DeliveryGet names the delivery of GET /v1/deliveries/{id}: the path's
// {id}.
type DeliveryGet struct {
	ID string `json:"id"`
}

// DeliveryReplay names the delivery of POST /v1/deliveries/{id}/replay:
// the path's {id} (the body takes nothing).
type DeliveryReplay struct {
	ID string `json:"id"`
}

// DeliveryList is the query of GET /v1/deliveries. A filter is nil when
// not given (given empty, it is refused as the API refuses it); times are
// strings (RFC 3339) so that a bad one is named. A page of Limit (0: the
// default, 100) from Cursor (a previous page's next_cursor).
type DeliveryList struct {
	State         *string `json:"state,omitempty"`
	AccountID     *string `json:"account_id,omitempty"`
	WebhookID     *string `json:"webhook_id,omitempty"`
	EventType     *string `json:"event_type,omitempty"`
	EventID       *string `json:"event_id,omitempty"`
	CreatedAfter  *string `json:"created_after,omitempty"`
	CreatedBefore *string `json:"created_before,omitempty"`
	Cursor        *string `json:"cursor,omitempty"`
	Limit         int     `json:"limit,omitempty"`
}

// ReplayBatchGet names the bulk replay of GET /v1/replays/{id}: the
// path's {id}.
type ReplayBatchGet struct {
	ID string `json:"id"`
}
