package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

func (a *API) createEvent(w http.ResponseWriter, r *http.Request) {
	var req apitype.EventCreate
	if apiErr := decodeJSON(w, r, EventBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	key := req.IdempotencyKey
	if header := r.Header.Get("Idempotency-Key"); header != "" {
		if key != "" && key != header {
			writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "conflicting_idempotency_key", Field: "idempotency_key", Message: "idempotency_key and the Idempotency-Key header differ; send one"})
			return
		}
		key = header
	}
	accountID, apiErr := accountFor(r, &req.AccountID)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	trace := req.Traceparent
	if header := r.Header.Get("Traceparent"); header != "" && trace == "" {
		trace = header // the field, when given, wins over the header
	}
	ev := &engine.Event{AccountID: accountID, Type: req.Type, Data: req.Data, IdempotencyKey: key, Traceparent: trace}
	if err := engine.ValidateDecoded(ev); err != nil { // ev.Data was decoded: JSON
		writeError(w, validationError(err))
		return
	}
	ev.Traceparent = acceptTraceparent(r.Context(), ev.Traceparent) // tracing on: the accept span's (admin/trace.go)
	if apiErr := a.checkEventData(r.Context(), ev); apiErr != nil {
		writeError(w, apiErr)
		return
	}

	// Stored with the events of concurrent requests, in one transaction;
	// answered once committed.
	one, err := a.enqueues.Do(r.Context(), ev)
	if err == nil {
		err = one.err
	}
	res := one.res
	if err != nil {
		var v *engine.ValidationError
		switch {
		case errors.As(err, &v):
			writeError(w, validationError(err))
		case errors.Is(err, engine.ErrIdempotencyKeyReused):
			writeError(w, &Error{Status: http.StatusConflict, Code: "idempotency_key_reused", Field: "idempotency_key", Message: "this idempotency key was already used for this account with a different payload"})
		case errors.Is(err, engine.ErrFanoutTooLarge):
			writeError(w, fanoutError(err))
		default:
			a.logger.Error("error enqueuing event", zap.String("account_id", ev.AccountID), zap.Error(err))
			writeError(w, errInternal(err))
		}
		return
	}

	status := http.StatusAccepted
	if res.Repeat {
		status = http.StatusOK
	}
	writeJSON(w, status, renderEnqueued(res))
}

// enqueueTx runs enqueue (storing events) in a transaction of its own,
// committed when enqueue succeeds. enqueue's errors come back as they are.
// The hand-off enqueue returns (engine.Handoffs, in a process that works
// deliveries too; nil otherwise) is started once the transaction has
// committed, and released when it has not. A transaction that failed
// because an account's webhooks changed after this process cached them
// (engine.Enqueuer.WebhooksChanged; nothing of it was stored) is tried
// once more, with the webhooks read in it (engine.WithFreshWebhooks).
func (a *API) enqueueTx(ctx context.Context, events []*engine.Event, enqueue func(context.Context, pgx.Tx) (*engine.Handoff, error)) error {
	err := a.enqueueTxOnce(ctx, enqueue)
	if a.enqueuer.WebhooksChanged(err, events) {
		err = a.enqueueTxOnce(engine.WithFreshWebhooks(ctx), enqueue)
	}
	return err
}

func (a *API) enqueueTxOnce(ctx context.Context, enqueue func(context.Context, pgx.Tx) (*engine.Handoff, error)) error {
	// BEGIN goes with the first statement, the events' insert with the
	// COMMIT: two round trips fewer (store.PipelinedTx).
	tx, err := store.BeginPipelined(ctx, a.pool)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	handoff, err := enqueue(ctx, tx)
	if err != nil {
		return err // nothing reserved
	}
	if err := tx.Commit(ctx); err != nil {
		handoff.Release()
		return fmt.Errorf("error committing: %w", err)
	}
	handoff.Start()
	return nil
}

// fanoutError answers a request refused whole for the deliveries it would
// create (a *engine.FanoutError): 422 fanout_too_large, no field.
func fanoutError(err error) *Error {
	msg := "this request would create more deliveries than a request may; nothing was stored"
	var f *engine.FanoutError
	if errors.As(err, &f) {
		msg = fmt.Sprintf("this request would create %d deliveries (events × the webhooks each goes to), more than the %d a request may create; nothing was stored: send fewer events per request", f.Deliveries, f.Limit)
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: "fanout_too_large", Message: msg}
}

func renderEnqueued(res *engine.Enqueued) apitype.Enqueued {
	out := apitype.Enqueued{ID: res.EventID, Deliveries: make([]apitype.EnqueuedDelivery, len(res.Deliveries))}
	for i, d := range res.Deliveries {
		out.Deliveries[i] = apitype.EnqueuedDelivery{ID: d.ID, WebhookID: d.WebhookID}
	}
	return out
}

// BatchBodyLimit is the largest POST /v1/events/batch body: 4 MiB.
const BatchBodyLimit = 4 << 20

// batchError is the error shape with the per-item list:
//
//	{"error":{"code":"invalid_batch","message":"...","field":"events","items":[{"index":3,"field":"type","code":"...","message":"..."}]}}
type batchError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Field   string          `json:"field,omitempty"`
	Items   []batchItemFail `json:"items"`
}

type batchItemFail struct {
	Index   int    `json:"index"`
	Field   string `json:"field,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// status decides the answer's status: 400 for a malformed item, 403
	// for another account's, 422 for an invalid one.
	status int
}

func writeBatchError(w http.ResponseWriter, status int, e *batchError) {
	writeJSON(w, status, map[string]*batchError{"error": e})
}

// createEventBatch accepts up to engine.MaxBatchSize events in one
// transaction, all or nothing. Every item is checked before anything is
// stored; the answer lists each bad one by index.
func (a *API) createEventBatch(w http.ResponseWriter, r *http.Request) {
	var req apitype.EventBatch
	if apiErr := decodeJSON(w, r, BatchBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if r.Header.Get("Idempotency-Key") != "" {
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_header_not_allowed", Field: "Idempotency-Key", Message: "a batch takes an idempotency_key per event, not the Idempotency-Key header"})
		return
	}
	switch {
	case req.Events == nil:
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "events", Message: "events is required: an array of 1 to 1000 events"})
		return
	case len(*req.Events) == 0:
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "empty_batch", Field: "events", Message: "events must hold at least one event"})
		return
	case len(*req.Events) > engine.MaxBatchSize:
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "too_many_events", Field: "events", Message: fmt.Sprintf("a batch holds at most %d events, not %d", engine.MaxBatchSize, len(*req.Events))})
		return
	}

	acceptEvents(r.Context(), len(*req.Events))
	events := make([]*engine.Event, len(*req.Events))
	var fails []batchItemFail
	for i, raw := range *req.Events {
		ev, fail := a.batchItem(r, raw)
		if fail != nil {
			fail.Index = i
			fails = append(fails, *fail)
		}
		events[i] = ev
	}
	if len(fails) > 0 {
		// A malformed item makes the batch malformed; failing that, an item
		// of another account makes it forbidden; otherwise it is invalid.
		status, code := http.StatusUnprocessableEntity, "invalid_batch"
		if slices.ContainsFunc(fails, func(f batchItemFail) bool { return f.status == http.StatusBadRequest }) {
			status = http.StatusBadRequest
		} else if slices.ContainsFunc(fails, func(f batchItemFail) bool { return f.status == http.StatusForbidden }) {
			status, code = http.StatusForbidden, "account_not_allowed"
		}
		writeBatchError(w, status, &batchError{
			Code: code, Field: "events", Items: fails,
			Message: fmt.Sprintf("%d of the %d events are not valid (the first is event %d); nothing was stored", len(fails), len(events), fails[0].Index),
		})
		return
	}

	var results []*engine.Enqueued
	err := a.enqueueTx(r.Context(), events, func(ctx context.Context, tx pgx.Tx) (handoff *engine.Handoff, err error) {
		results, handoff, err = a.enqueuer.EnqueueManyHandoff(ctx, tx, events)
		return handoff, err
	})
	if err != nil {
		var (
			batchErr    *engine.BatchError
			conflictErr *engine.IdempotencyConflictError
		)
		switch {
		case errors.As(err, &batchErr):
			// Checked above already; kept so the two can never disagree.
			items := make([]batchItemFail, len(batchErr.Items))
			for i, it := range batchErr.Items {
				items[i] = batchItemFail{Index: it.Index, Field: it.Field, Code: it.Code, Message: it.Message}
			}
			writeBatchError(w, http.StatusUnprocessableEntity, &batchError{Code: "invalid_batch", Field: "events", Items: items, Message: err.Error()})
		case errors.As(err, &conflictErr):
			writeBatchError(w, http.StatusConflict, &batchError{
				Code: "idempotency_key_reused", Field: "events", Message: conflictErr.Error() + "; nothing was stored",
				Items: []batchItemFail{{Index: conflictErr.Index, Field: "idempotency_key", Code: "idempotency_key_reused", Message: conflictErr.Error()}},
			})
		case errors.Is(err, engine.ErrFanoutTooLarge):
			writeError(w, fanoutError(err))
		default:
			a.logger.Error("error enqueuing batch", zap.Int("events", len(events)), zap.Error(err))
			writeError(w, errInternal(err))
		}
		return
	}

	out := make([]apitype.EventBatchItem, len(results))
	created := 0
	for i, res := range results {
		out[i] = apitype.EventBatchItem{Enqueued: renderEnqueued(res), Repeat: res.Repeat}
		if !res.Repeat {
			created++
		}
	}
	a.logger.Info("event batch accepted", zap.Int("events", len(results)), zap.Int("created", created))
	status := http.StatusAccepted
	if created == 0 {
		status = http.StatusOK // the whole batch was a repeat
	}
	writeJSON(w, status, apitype.List[apitype.EventBatchItem]{Data: out})
}

// batchItem decodes and checks one event of a batch like POST /v1/events
// does, without touching the database.
func (a *API) batchItem(r *http.Request, raw json.RawMessage) (*engine.Event, *batchItemFail) {
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &batchItemFail{status: http.StatusBadRequest, Code: "invalid_type", Message: "each event must be a JSON object"}
	}
	var item apitype.EventCreate
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&item); err != nil {
		e := jsonError(err, BatchBodyLimit)
		return nil, &batchItemFail{status: e.Status, Field: e.Field, Code: e.Code, Message: e.Message}
	}
	accountID, apiErr := accountFor(r, &item.AccountID)
	if apiErr == nil {
		ev := &engine.Event{AccountID: accountID, Type: item.Type, Data: item.Data, IdempotencyKey: item.IdempotencyKey, Traceparent: item.Traceparent}
		if err := engine.ValidateDecoded(ev); err != nil { // ev.Data was decoded: JSON
			apiErr = validationError(err)
		} else if apiErr = a.checkEventData(r.Context(), ev); apiErr == nil {
			ev.Traceparent = acceptTraceparent(r.Context(), ev.Traceparent) // tracing on: the accept span's (admin/trace.go)
			return ev, nil
		}
	}
	return nil, &batchItemFail{status: apiErr.Status, Field: apiErr.Field, Code: apiErr.Code, Message: apiErr.Message}
}

// The event reads: GET /v1/events/{id} and GET /v1/events (by idempotency
// key), for admin and account keys. (POST /v1/events and
// /v1/events/batch stay HTTP handlers: the events of concurrent requests
// share one transaction and one commit.)
var (
	opGetEvent  = &opSpec{route: "GET /v1/events/{id}", scopes: scopesAccount, budget: budgetManagement}
	opFindEvent = &opSpec{route: "GET /v1/events", scopes: scopesAccount, budget: budgetManagement}
)

// GetEvent is one event with its deliveries (GET /v1/events/{id}).
// Unknown or another account's: 404.
func (a *API) GetEvent(ctx context.Context, p *Principal, req *apitype.EventGet) (*apitype.Event, error) {
	if e := a.admit(ctx, p, opGetEvent); e != nil {
		return nil, e
	}
	if e := checkID(req.ID, ident.Event, "event"); e != nil {
		return nil, e
	}
	ev, err := store.GetEvent(ctx, a.pool, req.ID)
	return a.loadedEvent(p, req.ID, ev, err)
}

// decodeEventGet reads GET /v1/events/{id}'s id.
func decodeEventGet(_ http.ResponseWriter, r *http.Request, req *apitype.EventGet) *Error {
	id, e := pathID(r, ident.Event, "event")
	req.ID = id
	return e
}

// FindEvent is the event accepted with an idempotency key (GET
// /v1/events?idempotency_key=…&account_id=…), or 404. A bound key finds
// in its own account; another account_id is 403.
func (a *API) FindEvent(ctx context.Context, p *Principal, req *apitype.EventFind) (*apitype.Event, error) {
	if e := a.admit(ctx, p, opFindEvent); e != nil {
		return nil, e
	}
	accountID, apiErr := accountOf(p, req.AccountID)
	if apiErr != nil {
		return nil, apiErr
	}
	key := req.IdempotencyKey
	if key == "" {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "idempotency_key", Message: "idempotency_key is required"}
	}
	if err := webhookrule.ValidateIdempotencyKey(key); err != nil {
		return nil, validationError(err)
	}
	ev, err := store.GetEventByIdempotencyKey(ctx, a.pool, accountID, key)
	return a.loadedEvent(p, "", ev, err)
}

// decodeEventFind reads GET /v1/events's query: account_id,
// idempotency_key.
func decodeEventFind(_ http.ResponseWriter, r *http.Request, req *apitype.EventFind) *Error {
	q, apiErr := queryParams(r, "account_id", "idempotency_key")
	if apiErr != nil {
		return apiErr
	}
	req.AccountID, req.IdempotencyKey = q.Get("account_id"), q.Get("idempotency_key")
	return nil
}

// loadedEvent is a loaded event as answered, or 404 when there is none
// or it is another account's.
func (a *API) loadedEvent(p *Principal, id string, ev *store.Event, err error) (*apitype.Event, error) {
	if apiErr := a.loadedFor(p, "event", id, err, func() string { return ev.AccountID }); apiErr != nil {
		return nil, apiErr
	}
	out := &apitype.Event{
		ID: ev.ID, AccountID: ev.AccountID, Type: ev.Type, IdempotencyKey: ev.IdempotencyKey,
		OccurredAt: ev.OccurredAt, CreatedAt: ev.CreatedAt, Body: ev.Body,
		Deliveries: make([]apitype.EventDelivery, len(ev.Deliveries)),
	}
	for i, d := range ev.Deliveries {
		out.Deliveries[i] = apitype.EventDelivery{ID: d.ID, WebhookID: d.WebhookID, State: d.State}
	}
	return out, nil
}
