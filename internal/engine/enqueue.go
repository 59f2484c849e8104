package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// MaxBatchSize is the most events EnqueueMany accepts at once.
const MaxBatchSize = 1000

var (
	// ErrIdempotencyKeyReused means the idempotency key was used before, for
	// the same account, with a different payload. The API answers 409.
	ErrIdempotencyKeyReused = errors.New("idempotency key was already used with a different payload")
	// ErrBatchTooLarge means EnqueueMany was given more than MaxBatchSize
	// events.
	ErrBatchTooLarge = fmt.Errorf("a batch holds at most %d events", MaxBatchSize)
	// ErrFanoutTooLarge means a call would create more deliveries than the
	// Enqueuer's MaxFanout (see FanoutError). The API answers 422.
	ErrFanoutTooLarge = errors.New("too many deliveries for one request")
)

// FanoutError is ErrFanoutTooLarge with its figures. Nothing was stored,
// but like after any error the transaction must be rolled back (or back to
// a savepoint taken before the call): an idempotency key may have been
// claimed in it.
type FanoutError struct {
	// Deliveries is how many deliveries the call would create (from
	// EnqueueEach: the event at Index alone).
	Deliveries int
	// Limit is the Enqueuer's MaxFanout.
	Limit int
	// Index is the event over the limit on its own (EnqueueEach), or -1
	// when it is the call's total (Enqueue, EnqueueMany).
	Index int
}

func (e *FanoutError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("event %d would create %d deliveries, more than the %d a request may create", e.Index, e.Deliveries, e.Limit)
	}
	return fmt.Sprintf("the request would create %d deliveries, more than the %d a request may create", e.Deliveries, e.Limit)
}

// Unwrap makes errors.Is(err, ErrFanoutTooLarge) true.
func (e *FanoutError) Unwrap() error { return ErrFanoutTooLarge }

// BatchError lists every invalid event of a batch given to EnqueueMany.
type BatchError struct {
	// Items has one entry per invalid event, in index order.
	Items []BatchItemError
}

// BatchItemError is what is wrong with the event at Index of a batch.
type BatchItemError struct {
	Index int
	ValidationError
}

func (e *BatchError) Error() string {
	first := e.Items[0]
	return fmt.Sprintf("%d invalid events in batch; event %d: %s", len(e.Items), first.Index, first.Error())
}

// IdempotencyConflictError is ErrIdempotencyKeyReused for one event of a
// batch (index 0 for Enqueue).
type IdempotencyConflictError struct {
	// Index is the event whose key was used before with another payload.
	Index int
	// Earlier is the index of the event of the same batch that used the key
	// first, or -1 when it was used by an earlier request.
	Earlier int
}

func (e *IdempotencyConflictError) Error() string {
	if e.Earlier >= 0 {
		return fmt.Sprintf("event %d: idempotency key was already used by event %d of the batch with a different payload", e.Index, e.Earlier)
	}
	return fmt.Sprintf("event %d: %s", e.Index, ErrIdempotencyKeyReused)
}

// Unwrap makes errors.Is(err, ErrIdempotencyKeyReused) true.
func (e *IdempotencyConflictError) Unwrap() error { return ErrIdempotencyKeyReused }

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
	// Traceparent, optional, is the producer's W3C trace context: every
	// attempt carries its trace id (see webhookrule.AttemptTraceparent).
	Traceparent string
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
	river     *river.Client[pgx.Tx]
	now       func() time.Time
	fair      *fairness
	maxFanout int
	handoffs  atomic.Pointer[Handoffs] // EnqueueEach's and EnqueueManyHandoff's (SetHandoffs)
	wakes     atomic.Pointer[Wakes]    // announces their River jobs after the commit (SetWakes)
	webhooks  *webhookCache            // EnqueueEach's and EnqueueManyHandoff's; nil: off
}

// EnqueuerConfig configures an Enqueuer.
type EnqueuerConfig struct {
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// MaxFanout, above 0, is the most deliveries one call may create
	// (events × the live webhooks each goes to, event-type filters
	// applied; repeats of an idempotency key create none): a call over it
	// fails with a *FanoutError, having inserted no event, delivery or
	// job. The count is made as the deliveries are planned, with no query
	// of its own. The server sets WEBHOOKD_MAX_FANOUT_PER_REQUEST here for
	// the API. Defaults to 0: no limit, which suits the transactional
	// outbox (trusted code in the producer's transaction).
	MaxFanout int
	// WebhookCache, above 0, is how many bytes of accounts' live webhooks
	// EnqueueEach and EnqueueManyHandoff keep in memory, so that an event
	// of such an account is fanned out without reading them: its insert
	// carries the versions it used and fails, storing nothing, when one
	// changed (store.IsWebhooksChanged; WebhooksChanged tells the caller
	// to retry). Their callers must retry such a failure in a new
	// transaction with WithFreshWebhooks. Defaults to 0: off (an outbox
	// producer's transaction can't be retried).
	WebhookCache int64
}

// InsertNotifyInterval is the client-wide FetchCooldown of webhookd's River
// clients, which each queue's own overrides: what it still sets is how
// often a client sends a queue's insert notification. A job inserted less
// than that after another's notification has none of its own, and when the
// fetch that notification started ran before its commit, it waits for the
// next fetch: the queue's poll, a second where alarms ring (Wakes). River's
// minimum, 1 ms, keeps that to jobs inserted within a millisecond of
// another; River's default (100 ms, which an API-only process's client
// had) left most of a burst to the poll.
const InsertNotifyInterval = river.FetchCooldownMin

// NewEnqueuer returns an Enqueuer that inserts jobs with client. A nil client
// makes an insert-only River client, for services that share webhookd's
// database but run no workers. now defaults to time.Now.
func NewEnqueuer(client *river.Client[pgx.Tx], now func() time.Time) (*Enqueuer, error) {
	return NewEnqueuerWithConfig(client, &EnqueuerConfig{Now: now})
}

// NewEnqueuerWithConfig is NewEnqueuer with a config; a nil config means
// the defaults.
func NewEnqueuerWithConfig(client *river.Client[pgx.Tx], cfg *EnqueuerConfig) (*Enqueuer, error) {
	if cfg == nil {
		cfg = &EnqueuerConfig{}
	}
	if cfg.WebhookCache < 0 {
		return nil, fmt.Errorf("dispatcher.EnqueuerConfig: WebhookCache must be 0 (off) or more (got %d)", cfg.WebhookCache)
	}
	if cfg.MaxFanout < 0 {
		return nil, fmt.Errorf("dispatcher.EnqueuerConfig: MaxFanout must be 0 (no limit) or more (got %d)", cfg.MaxFanout)
	}
	if client == nil {
		var err error
		client, err = river.NewClient(riverpgxv5.New(nil), &river.Config{SkipUnknownJobCheck: true, FetchCooldown: InsertNotifyInterval})
		if err != nil {
			return nil, fmt.Errorf("error creating insert-only River client: %w", err)
		}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Enqueuer{river: client, now: now, fair: newFairness(FairRateDefault, FairBurstDefault, now), maxFanout: cfg.MaxFanout, webhooks: newWebhookCache(cfg.WebhookCache)}, nil
}

// SetHandoffs makes EnqueueEach and EnqueueManyHandoff hand deliveries off
// to h (the server does, in a process that also works deliveries).
func (e *Enqueuer) SetHandoffs(h *Handoffs) { e.handoffs.Store(h) }

// SetWakes makes the Handoff of EnqueueEach and EnqueueManyHandoff ring
// the deliveries queue's alarm at its Start (after the commit) when the
// transaction inserted River jobs: River's own insert notification is sent
// at most once per InsertNotifyInterval per client, so a job inserted just
// after another's could otherwise wait for the queue's poll (a second).
func (e *Enqueuer) SetWakes(w *Wakes) { e.wakes.Store(w) }

// MaxFanout is the most deliveries one call may create; 0 is no limit.
func (e *Enqueuer) MaxFanout() int { return e.maxFanout }

// Resume puts every paused delivery of webhook id back on its schedule,
// with this enqueuer's River client, in tx (see ResumePaused).
func (e *Enqueuer) Resume(ctx context.Context, tx pgx.Tx, webhookID string) (int, error) {
	return ResumePaused(ctx, e.river, tx, webhookID, e.now())
}

// Validate checks ev without touching the database.
func Validate(ev *Event) error {
	return validate(ev, webhookrule.ValidateData)
}

// ValidateDecoded is Validate for an event whose Data a JSON decoder
// produced (a json.RawMessage field of a successful Decode is JSON, or nil
// when absent): the same answers, without reading the data a second time
// to prove it JSON. The API validates its requests with it.
func ValidateDecoded(ev *Event) error {
	return validate(ev, func(data []byte) error { return webhookrule.ValidateDataKnownJSON(data, true) })
}

// validate is Validate with the data checked by validData, at its place
// in the order (prepare checks it by compacting it, which also proves it
// JSON, instead of reading it twice).
func validate(ev *Event, validData func([]byte) error) error {
	if err := webhookrule.ValidateAccountID(ev.AccountID); err != nil {
		return err
	}
	if err := webhookrule.ValidateType(ev.Type); err != nil {
		return err
	}
	if err := validateNotReserved(ev); err != nil {
		return err
	}
	if err := validData(ev.Data); err != nil {
		return err
	}
	if err := webhookrule.ValidateTraceparent(ev.Traceparent); err != nil {
		return err
	}
	return webhookrule.ValidateIdempotencyKey(ev.IdempotencyKey)
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
		h.Write([]byte(ev.OccurredAt.UTC().Format(webhookrule.TimestampLayout)))
	}
	return h.Sum(nil)
}

// Enqueue validates ev (before issuing any SQL) and then, inside tx, stores
// the event's envelope bytes, one delivery per live webhook of the account
// and one River job per delivery. Nothing is sent unless tx commits.
//
// With an idempotency key already used for the same account and payload it
// creates nothing and returns the original with Repeat set; with a different
// payload it returns an error that is ErrIdempotencyKeyReused. A
// *ValidationError names the bad field; a *FanoutError says the event goes
// to more webhooks than MaxFanout. On any error, roll tx back.
func (e *Enqueuer) Enqueue(ctx context.Context, tx pgx.Tx, ev *Event) (*Enqueued, error) {
	now := e.now().UTC()
	p, err := prepare(ev, now)
	if err != nil {
		return nil, err
	}
	out, err := e.insert(ctx, tx, []*prepared{p}, now, false, false, nil)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// EnqueueMany is Enqueue for up to MaxBatchSize events at once, all or
// nothing: it validates every event before issuing any SQL (a *BatchError
// lists each invalid one), then stores them all with one statement for the
// idempotency keys, one River InsertManyTx for every delivery of the batch
// and one statement for the events and deliveries. The result is parallel
// to events.
//
// Idempotency keys work per event: an event whose key was used before (or
// earlier in the same batch) with the same payload returns the original with
// Repeat set; one with a different payload fails the whole batch with an
// *IdempotencyConflictError naming its index. A batch whose deliveries
// together exceed MaxFanout fails whole with a *FanoutError. On any error,
// roll tx back.
func (e *Enqueuer) EnqueueMany(ctx context.Context, tx pgx.Tx, events []*Event) ([]*Enqueued, error) {
	return e.enqueueMany(ctx, tx, events, false, false, nil)
}

// EnqueueEach is EnqueueMany for events of separate requests stored in one
// transaction (the API batches concurrent POST /v1/events so): MaxFanout
// applies to each event alone, and an event over it fails the call with a
// *FanoutError naming its Index. Its deliveries that go at once are handed
// off to this process's Handoffs, when set (SetHandoffs): their jobs wait
// a lease ahead, and the caller must Start the Handoff once tx has
// committed, or Release it when tx did not (both do nothing on a nil
// Handoff, which is what comes back without Handoffs and Wakes). Start
// also rings the Wakes (SetWakes) when tx inserted River jobs. On an error
// nothing is reserved and the Handoff is nil.
func (e *Enqueuer) EnqueueEach(ctx context.Context, tx pgx.Tx, events []*Event) ([]*Enqueued, *Handoff, error) {
	return e.enqueueHandoff(ctx, tx, events, true)
}

// EnqueueManyHandoff is EnqueueMany handing deliveries off as EnqueueEach
// does.
func (e *Enqueuer) EnqueueManyHandoff(ctx context.Context, tx pgx.Tx, events []*Event) ([]*Enqueued, *Handoff, error) {
	return e.enqueueHandoff(ctx, tx, events, false)
}

// enqueueHandoff is enqueueMany with this process's Handoffs, if any.
func (e *Enqueuer) enqueueHandoff(ctx context.Context, tx pgx.Tx, events []*Event, perEvent bool) ([]*Enqueued, *Handoff, error) {
	h, w := e.handoffs.Load(), e.wakes.Load()
	cached := e.webhooks != nil && ctx.Value(freshWebhooksKey{}) == nil
	if h == nil && w == nil {
		out, err := e.enqueueMany(ctx, tx, events, perEvent, cached, nil)
		return out, nil, err
	}
	ho := &Handoff{h: h, wakes: w}
	out, err := e.enqueueMany(ctx, tx, events, perEvent, cached, ho)
	if err != nil {
		ho.Release()
		return nil, nil, err
	}
	return out, ho, nil
}

// enqueueMany is EnqueueMany, with MaxFanout applied to each event alone
// when perEvent, fanning out from the webhook cache when cached, handing
// deliveries off to ho when not nil.
func (e *Enqueuer) enqueueMany(ctx context.Context, tx pgx.Tx, events []*Event, perEvent, cached bool, ho *Handoff) ([]*Enqueued, error) {
	if len(events) > MaxBatchSize {
		return nil, ErrBatchTooLarge
	}
	now := e.now().UTC()
	items := make([]*prepared, len(events))
	var bad BatchError
	for i, ev := range events {
		p, err := prepare(ev, now)
		var v *ValidationError
		switch {
		case errors.As(err, &v):
			bad.Items = append(bad.Items, BatchItemError{Index: i, ValidationError: *v})
		case err != nil:
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		items[i] = p
	}
	if len(bad.Items) > 0 {
		return nil, &bad
	}
	if err := linkRepeats(items); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []*Enqueued{}, nil
	}
	return e.insert(ctx, tx, items, now, perEvent, cached, ho)
}

// prepared is a validated event, ready to insert.
type prepared struct {
	ev         *Event
	id         string
	body       []byte
	occurredAt time.Time
	// hash identifies the payload for the idempotency key (nil without one).
	hash []byte
	// sameAs is the index of an earlier event of the batch with the same
	// idempotency key and payload, whose result this one shares; -1 if none.
	sameAs int
}

// prepare validates ev and builds what is stored for it, without SQL.
func prepare(ev *Event, now time.Time) (*prepared, error) {
	if ev == nil {
		return nil, &ValidationError{Field: "event", Code: "missing_field", Message: "event is required"}
	}
	// The data is read once: compacting it is also what proves it JSON
	// (json.Compact and json.Valid share the scanner), so its check here
	// is ValidateData's without a json.Valid of its own.
	var compact bytes.Buffer
	compact.Grow(len(ev.Data))
	compactErr := json.Compact(&compact, ev.Data)
	if err := validate(ev, func(data []byte) error {
		return webhookrule.ValidateDataKnownJSON(data, compactErr == nil)
	}); err != nil {
		return nil, err
	}
	p := &prepared{ev: ev, id: ident.New(ident.Event), occurredAt: ev.OccurredAt, sameAs: -1}
	if p.occurredAt.IsZero() {
		p.occurredAt = now
	}
	var err error
	if p.body, err = webhookrule.EnvelopeCompacted(ev.Type, compact.Bytes(), p.occurredAt); err != nil {
		return nil, fmt.Errorf("error building envelope: %w", err)
	}
	if ev.IdempotencyKey != "" {
		p.hash = requestHash(ev, compact.Bytes())
	}
	return p, nil
}

// linkRepeats finds idempotency keys used twice in one batch: a repeat with
// the same payload shares the first one's result; another payload is a
// conflict.
func linkRepeats(items []*prepared) error {
	type ref struct{ accountID, key string }
	first := make(map[ref]int)
	for i, p := range items {
		if p.hash == nil {
			continue
		}
		r := ref{p.ev.AccountID, p.ev.IdempotencyKey}
		j, seen := first[r]
		if !seen {
			first[r] = i
			continue
		}
		if !bytes.Equal(items[j].hash, p.hash) {
			return &IdempotencyConflictError{Index: i, Earlier: j}
		}
		p.sameAs = j
	}
	return nil
}

// insert stores items (validated, with in-batch repeats linked) inside tx,
// unless their deliveries exceed MaxFanout: all of them together, or when
// perEvent any one event's. Deliveries that go at once are handed off to
// ho, when not nil, while it has room. When cached, the accounts' webhooks
// come from the webhook cache where it holds them, and the insert checks
// their versions (store.InsertEventsChecked).
func (e *Enqueuer) insert(ctx context.Context, tx pgx.Tx, items []*prepared, now time.Time, perEvent, cached bool, ho *Handoff) ([]*Enqueued, error) {
	out := make([]*Enqueued, len(items))

	// Claim the idempotency keys; a key already taken makes its event a
	// repeat of the stored one, or a conflict.
	var (
		claims  []store.IdempotencyClaim
		claimOf []int
	)
	for i, p := range items {
		if p.hash != nil && p.sameAs < 0 {
			claims = append(claims, store.IdempotencyClaim{AccountID: p.ev.AccountID, Key: p.ev.IdempotencyKey, RequestHash: p.hash, EventID: p.id})
			claimOf = append(claimOf, i)
		}
	}
	var originals []string
	if len(claims) > 0 {
		taken, err := store.ClaimIdempotencyKeys(ctx, tx, claims, now)
		if err != nil {
			return nil, fmt.Errorf("error claiming idempotency keys: %w", err)
		}
		for c, stored := range taken {
			i := claimOf[c]
			if !bytes.Equal(stored.RequestHash, items[i].hash) {
				return nil, &IdempotencyConflictError{Index: i, Earlier: -1}
			}
			out[i] = &Enqueued{EventID: stored.EventID, Repeat: true}
			originals = append(originals, stored.EventID)
		}
	}

	// The new events, with one delivery per live webhook of their account.
	var (
		fresh    []*store.NewEvent
		accounts []string
	)
	for i, p := range items {
		if out[i] == nil && p.sameAs < 0 {
			accounts = append(accounts, p.ev.AccountID)
		}
	}
	webhooks := map[string][]store.LiveWebhook{}
	var versions *store.WebhookVersions // of the accounts fanned out from the cache
	if len(accounts) > 0 {
		slices.Sort(accounts)
		accounts = slices.Compact(accounts)
		var err error
		switch {
		case cached:
			var missing []string
			versions, missing = e.webhooks.lookup(accounts, webhooks)
			if len(missing) > 0 {
				read, readVersions, err := store.LiveWebhooksWithTargets(ctx, tx, missing)
				if err != nil {
					return nil, fmt.Errorf("error listing webhooks: %w", err)
				}
				e.webhooks.put(read, readVersions)
				maps.Copy(webhooks, read)
			}
		case ho.active():
			// A handed-off delivery's attempt needs no load.
			webhooks, _, err = store.LiveWebhooksWithTargets(ctx, tx, accounts)
		default:
			webhooks, err = store.LiveWebhooks(ctx, tx, accounts)
		}
		if err != nil {
			return nil, fmt.Errorf("error listing webhooks: %w", err)
		}
	}
	// Each new event's deliveries: its account's webhooks whose event-type
	// filter takes it. Counted before anything is inserted.
	targets := make([][]store.LiveWebhook, len(items))
	total := 0
	for i, p := range items {
		if out[i] != nil || p.sameAs >= 0 {
			continue
		}
		for _, w := range webhooks[p.ev.AccountID] {
			if webhookrule.MatchEventType(w.EventTypes, p.ev.Type) {
				targets[i] = append(targets[i], w)
			}
		}
		if e.maxFanout > 0 && perEvent && len(targets[i]) > e.maxFanout {
			return nil, &FanoutError{Deliveries: len(targets[i]), Limit: e.maxFanout, Index: i}
		}
		total += len(targets[i])
	}
	if e.maxFanout > 0 && !perEvent && total > e.maxFanout {
		return nil, &FanoutError{Deliveries: total, Limit: e.maxFanout, Index: -1}
	}
	// Deliveries to rate-limited webhooks are given their start slots now,
	// their jobs inserted at them (internal/engine/throttle.go).
	slots, err := reserveIntakeSlots(ctx, tx, targets, now)
	if err != nil {
		return nil, err
	}
	var (
		params       []river.InsertManyParams
		freshTargets [][]store.LiveWebhook
	)
	for i, p := range items {
		if out[i] != nil || p.sameAs >= 0 {
			continue
		}
		ids := make([]string, len(targets[i]))
		for j, w := range targets[i] {
			ids[j] = w.ID
		}
		ev := &store.NewEvent{
			ID: p.id, AccountID: p.ev.AccountID, Type: p.ev.Type, Body: p.body, OccurredAt: p.occurredAt, CreatedAt: now,
			DeliveryIDs: make([]string, len(ids)), WebhookIDs: ids, JobIDs: make([]int64, len(ids)),
		}
		if p.hash != nil {
			ev.IdempotencyKey = &p.ev.IdempotencyKey
		}
		if p.ev.Traceparent != "" {
			ev.Traceparent = &p.ev.Traceparent
		}
		res := &Enqueued{EventID: p.id, Deliveries: make([]EnqueuedDelivery, len(ids))}
		// Within its fair rate an account's deliveries go in at normal
		// priority; the excess of a burst waits behind other accounts.
		opts := &river.InsertOpts{Priority: e.fair.priority(p.ev.AccountID)}
		for j, webhookID := range ids {
			ev.DeliveryIDs[j] = ident.New(ident.Delivery)
			res.Deliveries[j] = EnqueuedDelivery{ID: ev.DeliveryIDs[j], WebhookID: webhookID}
			if targets[i][j].Paused {
				continue // created paused, with no job (JobIDs[j] stays 0)
			}
			jobOpts := opts
			if slot := slots.take(targets[i][j]); slot != nil {
				if ev.Slots == nil {
					ev.Slots = make([]*time.Time, len(ids))
				}
				ev.Slots[j] = slot
				jobOpts = &river.InsertOpts{Priority: PriorityNormal, ScheduledAt: *slot}
			} else if !targets[i][j].FIFO && targets[i][j].RateLimit == nil &&
				ho.take(ev, j, targets[i][j].Target, opts.Priority) {
				// Attempted by this process after the commit; River's
				// at the end of the lease (internal/engine/handoff.go).
				// Its job is written with the event (leasedJobs below).
				continue
			}
			params = append(params, river.InsertManyParams{Args: DeliveryArgs{DeliveryID: ev.DeliveryIDs[j]}, InsertOpts: jobOpts})
		}
		out[i] = res
		fresh = append(fresh, ev)
		freshTargets = append(freshTargets, targets[i])
	}
	// FIFO webhooks' deliveries take their places in line, holding each
	// webhook's lock until tx ends (internal/engine/fifo.go).
	if err := takeFIFOSeqs(ctx, tx, fresh, freshTargets); err != nil {
		return nil, err
	}

	// One River insert for every delivery of the batch that River's queue
	// takes, then one statement for the events, the deliveries pointing at
	// their jobs, and the handed-off deliveries' jobs.
	leased, err := ho.leasedJobs(ctx, tx)
	if err != nil {
		return nil, err
	}
	if len(params) > 0 {
		ho.riverJobs()
		jobOf, err := insertDeliveryJobs(ctx, e.river, tx, params)
		if err != nil {
			return nil, err
		}
		for _, ev := range fresh {
			for j, id := range ev.DeliveryIDs {
				if job, ok := jobOf[id]; ok {
					ev.JobIDs[j] = job // a paused webhook's stays 0; a handed-off one's is set
				}
			}
		}
	}
	if len(fresh) > 0 {
		if err := store.InsertEventsChecked(ctx, tx, fresh, leased, versions); err != nil {
			return nil, fmt.Errorf("error inserting events: %w", err)
		}
	}

	// Repeats answer with the original's deliveries.
	if len(originals) > 0 {
		deliveries, err := store.EventDeliveries(ctx, tx, originals)
		if err != nil {
			return nil, fmt.Errorf("error loading the original events of idempotency keys: %w", err)
		}
		for _, res := range out {
			if res == nil || !res.Repeat {
				continue
			}
			stored := deliveries[res.EventID]
			res.Deliveries = make([]EnqueuedDelivery, len(stored))
			for j, d := range stored {
				res.Deliveries[j] = EnqueuedDelivery{ID: d.ID, WebhookID: d.WebhookID}
			}
		}
	}
	for i, p := range items {
		if p.sameAs >= 0 {
			repeat := *out[p.sameAs]
			repeat.Repeat = true
			out[i] = &repeat
		}
	}
	return out, nil
}
