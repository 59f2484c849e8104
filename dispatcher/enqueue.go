package dispatcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/mono/webhookd/ident"
	"github.com/mono/webhookd/store"
)

// ErrIdempotencyKeyReused means the idempotency key was used before, for the
// same account, with a different payload. The API answers 409.
var ErrIdempotencyKeyReused = errors.New("idempotency key was already used with a different payload")

// Event is what a producer enqueues.
type Event struct {
	// AccountID is the account whose webhooks receive the event.
	AccountID string
	// Type is the event's stable name, e.g. bank_transfer_approved.
	Type string
	// Data is the event payload: one JSON object, sent compacted but
	// otherwise byte for byte as given.
	Data json.RawMessage
	// OccurredAt is when the event was generated. Defaults to now.
	OccurredAt time.Time
	// IdempotencyKey, optional, makes a repeat of the same event a no-op.
	IdempotencyKey string
}

// Enqueued is the result of Enqueue.
type Enqueued struct {
	// EventID is the event's id, sent as Mono-Event-Id.
	EventID string
	// Deliveries has one entry per webhook that will receive the event.
	Deliveries []EnqueuedDelivery
	// Repeat is true when the idempotency key matched an earlier event, in
	// which case nothing new was created and this describes the original.
	Repeat bool
}

// EnqueuedDelivery is one delivery created by Enqueue.
type EnqueuedDelivery struct {
	ID        string
	WebhookID string
}

// Enqueuer accepts events into the outbox: Enqueue runs inside the caller's
// transaction, so an event is sent if and only if that transaction commits.
type Enqueuer struct {
	river *river.Client[pgx.Tx]
	now   func() time.Time
}

// NewEnqueuer returns an Enqueuer that inserts jobs with client. A nil client
// makes an insert-only River client, for services that share webhookd's
// database but run no workers. now defaults to time.Now.
func NewEnqueuer(client *river.Client[pgx.Tx], now func() time.Time) (*Enqueuer, error) {
	if client == nil {
		var err error
		client, err = river.NewClient(riverpgxv5.New(nil), &river.Config{SkipUnknownJobCheck: true})
		if err != nil {
			return nil, fmt.Errorf("error creating insert-only River client: %w", err)
		}
	}
	if now == nil {
		now = time.Now
	}
	return &Enqueuer{river: client, now: now}, nil
}

// Validate checks ev without touching the database.
func Validate(ev *Event) error {
	if err := ValidateAccountID(ev.AccountID); err != nil {
		return err
	}
	if err := ValidateType(ev.Type); err != nil {
		return err
	}
	if err := ValidateData(ev.Data); err != nil {
		return err
	}
	return ValidateIdempotencyKey(ev.IdempotencyKey)
}

// requestHash identifies an event's payload for idempotency: the same key
// with a different hash is a conflict.
func requestHash(ev *Event, compactData []byte) []byte {
	h := sha256.New()
	h.Write([]byte(ev.Type))
	h.Write([]byte{0})
	h.Write(compactData)
	if !ev.OccurredAt.IsZero() {
		h.Write([]byte{0})
		h.Write([]byte(ev.OccurredAt.UTC().Format(TimestampLayout)))
	}
	return h.Sum(nil)
}

// Enqueue validates ev (before issuing any SQL) and then, inside tx, stores
// the event's envelope bytes, one delivery per live webhook of the account
// and one River job per delivery. Nothing is sent unless tx commits.
//
// With an idempotency key already used for the same account and payload it
// creates nothing and returns the original with Repeat set; with a different
// payload it returns ErrIdempotencyKeyReused. A *ValidationError names the
// bad field.
func (e *Enqueuer) Enqueue(ctx context.Context, tx pgx.Tx, ev *Event) (*Enqueued, error) {
	if err := Validate(ev); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, ev.Data); err != nil {
		return nil, &ValidationError{Field: "data", Code: "invalid_data", Message: "data must be a JSON object"}
	}

	now := e.now().UTC()
	occurredAt := ev.OccurredAt
	if occurredAt.IsZero() {
		occurredAt = now
	}
	body, err := Envelope(ev.Type, compact.Bytes(), occurredAt)
	if err != nil {
		return nil, fmt.Errorf("error building envelope: %w", err)
	}

	eventID := ident.New(ident.Event)
	var idempotencyKey *string
	if ev.IdempotencyKey != "" {
		idempotencyKey = &ev.IdempotencyKey
		hash := requestHash(ev, compact.Bytes())
		claimed, storedHash, storedEventID, err := store.ClaimIdempotencyKey(ctx, tx, ev.AccountID, ev.IdempotencyKey, hash, eventID, now)
		if err != nil {
			return nil, fmt.Errorf("error claiming idempotency key: %w", err)
		}
		if !claimed {
			if !bytes.Equal(storedHash, hash) {
				return nil, ErrIdempotencyKeyReused
			}
			return e.original(ctx, tx, storedEventID)
		}
	}

	webhookIDs, err := store.LiveWebhookIDs(ctx, tx, ev.AccountID)
	if err != nil {
		return nil, fmt.Errorf("error listing webhooks of account %s: %w", ev.AccountID, err)
	}

	newEvent := &store.NewEvent{
		ID:             eventID,
		AccountID:      ev.AccountID,
		Type:           ev.Type,
		Body:           body,
		OccurredAt:     occurredAt,
		IdempotencyKey: idempotencyKey,
		CreatedAt:      now,
		DeliveryIDs:    make([]string, len(webhookIDs)),
		WebhookIDs:     webhookIDs,
		JobIDs:         make([]int64, len(webhookIDs)),
	}
	if len(webhookIDs) > 0 {
		params := make([]river.InsertManyParams, len(webhookIDs))
		for i := range webhookIDs {
			newEvent.DeliveryIDs[i] = ident.New(ident.Delivery)
			params[i] = river.InsertManyParams{Args: DeliveryArgs{DeliveryID: newEvent.DeliveryIDs[i]}}
		}
		results, err := e.river.InsertManyTx(ctx, tx, params)
		if err != nil {
			return nil, fmt.Errorf("error inserting delivery jobs: %w", err)
		}
		for i, res := range results {
			newEvent.JobIDs[i] = res.Job.ID
		}
	}
	if err := store.InsertEvent(ctx, tx, newEvent); err != nil {
		return nil, fmt.Errorf("error inserting event: %w", err)
	}

	out := &Enqueued{EventID: eventID, Deliveries: make([]EnqueuedDelivery, len(webhookIDs))}
	for i := range webhookIDs {
		out.Deliveries[i] = EnqueuedDelivery{ID: newEvent.DeliveryIDs[i], WebhookID: webhookIDs[i]}
	}
	return out, nil
}

func (e *Enqueuer) original(ctx context.Context, tx pgx.Tx, eventID string) (*Enqueued, error) {
	stored, err := store.GetEvent(ctx, tx, eventID)
	if err != nil {
		return nil, fmt.Errorf("error loading event %s for idempotency key: %w", eventID, err)
	}
	out := &Enqueued{EventID: stored.ID, Repeat: true, Deliveries: make([]EnqueuedDelivery, len(stored.Deliveries))}
	for i, d := range stored.Deliveries {
		out.Deliveries[i] = EnqueuedDelivery{ID: d.ID, WebhookID: d.WebhookID}
	}
	return out, nil
}
