// Package dispatcher is the transactional outbox for Go services that
// share webhookd's database: Enqueue, inside the producer's own pgx
// transaction, stores an event and one delivery (and one River job) per
// live webhook of its account whose event-type filter matches, so the
// event is sent if and only if that transaction commits.
//
//	enqueuer, err := dispatcher.NewEnqueuer(nil, nil) // nil: an insert-only River client
//	// ... in the producer's transaction tx:
//	_, err = enqueuer.Enqueue(ctx, tx, &dispatcher.Event{
//		AccountID: "acct_123",
//		Type:      "bank_transfer_approved",
//		Data:      json.RawMessage(`{"amount":240000,"currency":"COP"}`),
//	})
//	// on error roll tx back; else commit: the event is sent only then
//
// Input is validated before any SQL: a *ValidationError names the bad
// field. ErrIdempotencyKeyReused means an event's key was used before, for
// the same account, with a different payload. docs/producers.md has the
// whole story.
//
// This package is a façade and exports nothing but the outbox: the engine
// behind it (the delivery worker, replays, the reconciler, health, the
// notifications) is webhookd's own, in internal/engine, and webhookd itself
// never imports this package. The types below are that engine's, under
// their documented names.
package dispatcher

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/mono/webhookd/internal/engine"
)

// Event is what a producer enqueues: AccountID (whose webhooks receive
// it), Type (its stable name, e.g. bank_transfer_approved), Data (one JSON
// object, sent compacted but otherwise byte for byte), and optionally
// OccurredAt (defaults to now), IdempotencyKey (a repeat of the same event
// is a no-op) and Traceparent (the producer's W3C trace context).
type Event = engine.Event

// Enqueued is what Enqueue stored: the event's id (sent as Mono-Event-Id),
// one EnqueuedDelivery per webhook that will receive it, and Repeat, true
// when the idempotency key matched an earlier event (nothing new was
// created; this describes the original).
type Enqueued = engine.Enqueued

// EnqueuedDelivery is one delivery Enqueue created: its id and webhook.
type EnqueuedDelivery = engine.EnqueuedDelivery

// EnqueuerConfig configures an Enqueuer: Now (the clock, defaults to
// time.Now) and MaxFanout (above 0, the most deliveries one call may
// create; 0, the default, is no limit).
type EnqueuerConfig = engine.EnqueuerConfig

// ValidationError names the field of an Event that is invalid. It is
// returned before any SQL is issued.
type ValidationError = engine.ValidationError

// FanoutError is ErrFanoutTooLarge with its figures (Deliveries, Limit):
// a call would create more deliveries than the Enqueuer's MaxFanout.
// Nothing was stored, but roll the transaction back (or back to a savepoint
// taken before the call): an idempotency key may have been claimed in it.
type FanoutError = engine.FanoutError

// BatchError lists every invalid event of a batch given to EnqueueMany,
// each a BatchItemError (its Index and ValidationError).
type BatchError = engine.BatchError

// BatchItemError is what is wrong with the event at Index of a batch.
type BatchItemError = engine.BatchItemError

// IdempotencyConflictError is ErrIdempotencyKeyReused for one event of a
// batch: Index is the event, Earlier the event of the same batch that used
// the key first, or -1 when an earlier request did.
type IdempotencyConflictError = engine.IdempotencyConflictError

// MaxBatchSize is the most events EnqueueMany accepts at once.
const MaxBatchSize = engine.MaxBatchSize

var (
	// ErrIdempotencyKeyReused means the idempotency key was used before,
	// for the same account, with a different payload.
	ErrIdempotencyKeyReused = engine.ErrIdempotencyKeyReused
	// ErrFanoutTooLarge means a call would create more deliveries than the
	// Enqueuer's MaxFanout (see FanoutError).
	ErrFanoutTooLarge = engine.ErrFanoutTooLarge
	// ErrBatchTooLarge means EnqueueMany was given more than MaxBatchSize
	// events.
	ErrBatchTooLarge = engine.ErrBatchTooLarge
)

// Enqueuer accepts events into the outbox: Enqueue runs inside the
// caller's transaction, so an event is sent if and only if that
// transaction commits. It is safe for concurrent use.
type Enqueuer struct {
	impl *engine.Enqueuer
}

// NewEnqueuer returns an Enqueuer that inserts jobs with client. A nil
// client makes an insert-only River client, for services that share
// webhookd's database but run no workers. now defaults to time.Now.
func NewEnqueuer(client *river.Client[pgx.Tx], now func() time.Time) (*Enqueuer, error) {
	return wrap(engine.NewEnqueuer(client, now))
}

// NewEnqueuerWithConfig is NewEnqueuer with a config; a nil config means
// the defaults.
func NewEnqueuerWithConfig(client *river.Client[pgx.Tx], cfg *EnqueuerConfig) (*Enqueuer, error) {
	return wrap(engine.NewEnqueuerWithConfig(client, cfg))
}

func wrap(e *engine.Enqueuer, err error) (*Enqueuer, error) {
	if err != nil {
		return nil, err
	}
	return &Enqueuer{impl: e}, nil
}

// Enqueue validates ev (before issuing any SQL) and then, inside tx,
// stores the event's envelope bytes, one delivery per live webhook of the
// account whose event-type filter matches, and one River job per delivery.
// Nothing is sent unless tx commits.
//
// With an idempotency key already used for the same account and payload
// it creates nothing and returns the original with Repeat set; with a
// different payload it returns an error that is ErrIdempotencyKeyReused. A
// *ValidationError names the bad field; a *FanoutError says the event goes
// to more webhooks than MaxFanout. On any error, roll tx back.
func (e *Enqueuer) Enqueue(ctx context.Context, tx pgx.Tx, ev *Event) (*Enqueued, error) {
	return e.impl.Enqueue(ctx, tx, ev)
}

// EnqueueMany is Enqueue for up to MaxBatchSize events at once, all or
// nothing: every event is validated before any SQL (a *BatchError lists
// each invalid one). An event whose key was used before with the same
// payload returns the original with Repeat set; one with a different
// payload fails the batch with an *IdempotencyConflictError. The result is
// parallel to events. On any error, roll tx back.
func (e *Enqueuer) EnqueueMany(ctx context.Context, tx pgx.Tx, events []*Event) ([]*Enqueued, error) {
	return e.impl.EnqueueMany(ctx, tx, events)
}
