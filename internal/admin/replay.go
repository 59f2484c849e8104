package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

var (
	opReplayDelivery   = &opSpec{route: "POST /v1/deliveries/{id}/replay", scopes: scopesAccount, budget: budgetManagement}
	opReplayDeliveries = &opSpec{route: "POST /v1/deliveries/replay", scopes: scopesAccount, budget: budgetManagement}
	opGetReplayBatch   = &opSpec{route: "GET /v1/replays/{id}", scopes: scopesAccount, budget: budgetManagement}
)

// ReplayDelivery replays one delivery (POST /v1/deliveries/{id}/replay):
// a dead or succeeded delivery goes back to pending on a new generation
// of ten attempts; the answer is the delivery (HTTP 202). Unknown or
// another account's: 404. A pending or cancelled one, a test send, or one
// whose webhook was deleted: 409.
func (a *API) ReplayDelivery(ctx context.Context, p *Principal, req *apitype.DeliveryReplay) (*apitype.Delivery, error) {
	if e := a.admit(ctx, p, opReplayDelivery); e != nil {
		return nil, e
	}
	id := req.ID
	if e := checkID(id, ident.Delivery, "delivery"); e != nil {
		return nil, e
	}
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		return nil, a.internal("error beginning transaction", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	res, err := a.enqueuer.Replay(ctx, tx, id, &engine.ReplayOpts{KeyID: p.KeyID, AccountID: p.AccountID})
	if err != nil {
		if apiErr := replayError(err); apiErr != nil {
			return nil, apiErr
		}
		return nil, a.internal("error replaying delivery", err, zap.String("delivery_id", id))
	}
	d, err := store.GetDelivery(ctx, tx, id)
	if err != nil {
		return nil, a.internal("error loading replayed delivery", err, zap.String("delivery_id", id))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, a.internal("error committing replay", err, zap.String("delivery_id", id))
	}
	a.logger.Info("delivery replayed", zap.String("delivery_id", id), zap.String("from_state", res.FromState),
		zap.Int("generation", res.Generation), zap.String("key_id", p.KeyID))
	return renderDelivery(d), nil
}

// decodeDeliveryReplay reads POST /v1/deliveries/{id}/replay: the path's
// id; the replay takes no options: the body may be empty or {}, nothing
// more.
func decodeDeliveryReplay(w http.ResponseWriter, r *http.Request, req *apitype.DeliveryReplay) *Error {
	id, apiErr := pathID(r, ident.Delivery, "delivery")
	if apiErr != nil {
		return apiErr
	}
	req.ID = id
	if r.ContentLength != 0 {
		var none struct{}
		return decodeJSON(w, r, SmallBodyLimit, &none)
	}
	return nil
}

// replayError maps the engine's replay refusals to the API; nil for
// an unexpected error.
func replayError(err error) *Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("delivery")
	case errors.Is(err, engine.ErrDeliveryPending):
		return &Error{Status: http.StatusConflict, Code: "delivery_pending", Message: "the delivery is pending: it is already on its schedule; only dead or succeeded deliveries can be replayed"}
	case errors.Is(err, engine.ErrDeliveryCancelled):
		return &Error{Status: http.StatusConflict, Code: "delivery_cancelled", Message: "the delivery was cancelled because its webhook was deleted; there is nowhere to send it"}
	case errors.Is(err, engine.ErrWebhookDeleted):
		return &Error{Status: http.StatusConflict, Code: "webhook_deleted", Message: "the delivery's webhook has been deleted; there is nowhere to send it"}
	case errors.Is(err, engine.ErrTestDelivery):
		return &Error{Status: http.StatusConflict, Code: "test_delivery", Message: "this is a test send: test sends are never replayed; send another with POST /v1/webhooks/{id}/test"}
	case errors.Is(err, engine.ErrNotReplayable):
		return &Error{Status: http.StatusConflict, Code: "not_replayable", Message: "only dead or succeeded deliveries can be replayed"}
	}
	return nil
}

func renderReplayBatch(b *store.ReplayBatch) *apitype.ReplayBatch {
	out := &apitype.ReplayBatch{
		ID: b.ID, State: b.State, Total: b.Total, Replayed: b.Replayed, Skipped: b.Skipped,
		KeyID: b.KeyID, CreatedAt: b.CreatedAt, FinishedAt: b.FinishedAt,
	}
	out.Filter.AccountID = b.Filter.AccountID
	if b.Filter.WebhookID != "" {
		out.Filter.WebhookID = &b.Filter.WebhookID
	}
	out.Filter.State = b.Filter.State
	out.Filter.CreatedAfter = b.Filter.CreatedAfter
	out.Filter.CreatedBefore = b.Filter.CreatedBefore
	return out
}

// ReplayDeliveries starts a bulk replay (POST /v1/deliveries/replay):
// the deliveries matching the filter (webhook_id or account_id, a
// creation time range, state dead by default or succeeded) are fixed now
// and replayed in the background, paced per webhook. The answer is the
// batch (HTTP 202), whose id GetReplayBatch follows.
func (a *API) ReplayDeliveries(ctx context.Context, p *Principal, req *apitype.BulkReplay) (*apitype.ReplayBatch, error) {
	if e := a.admit(ctx, p, opReplayDeliveries); e != nil {
		return nil, e
	}
	f, apiErr := a.bulkReplayFilter(ctx, p, req)
	if apiErr != nil {
		return nil, apiErr
	}
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		return nil, a.internal("error beginning transaction", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	batch, err := a.enqueuer.StartReplayBatch(ctx, tx, f, &engine.ReplayOpts{KeyID: p.KeyID})
	var v *engine.ValidationError
	switch {
	case errors.Is(err, engine.ErrReplayBatchTooLarge):
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "too_many_deliveries", Message: "more than 100000 deliveries match: narrow the filter with webhook_id, created_after and created_before, and replay in parts"}
	case errors.As(err, &v):
		return nil, validationError(err)
	case err != nil:
		return nil, a.internal("error starting bulk replay", err, zap.String("account_id", f.AccountID))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, a.internal("error committing bulk replay", err, zap.String("account_id", f.AccountID))
	}
	a.logger.Info("bulk replay started", zap.String("batch_id", batch.ID), zap.String("account_id", f.AccountID),
		zap.String("webhook_id", f.WebhookID), zap.Int("total", batch.Total), zap.String("key_id", p.KeyID))
	return renderReplayBatch(batch), nil
}

// CountBulkReplay counts, up to limit, the deliveries POST
// /v1/deliveries/replay would replay for req asked by p: the filter is
// resolved by the route's own code (validation, the key's account, the
// webhook's), so the dashboard's confirmation counts what the API will
// replay. A request the route would refuse is refused with the route's
// message (refused, err nil); err is an error of the database. p must be
// allowed the route (admit: scope, and the count charges its rate budget
// as the route does, once per dashboard page): a refusal is an *Error.
func (a *API) CountBulkReplay(ctx context.Context, p *Principal, req *apitype.BulkReplay, limit int) (n int, refused string, err error) {
	if e := a.admit(ctx, p, opReplayDeliveries); e != nil {
		return 0, "", e
	}
	f, apiErr := a.bulkReplayFilter(ctx, p, req)
	switch {
	case apiErr != nil && apiErr.Status >= 500:
		return 0, "", apiErr
	case apiErr != nil:
		return 0, apiErr.Message, nil //nolint:nilerr // a refused filter is an answer (its message), not a failure
	}
	n, err = store.CountReplayable(ctx, a.pool, f, limit)
	if err != nil {
		return 0, "", fmt.Errorf("error counting deliveries to replay: %w", err)
	}
	return n, "", nil
}

// bulkReplayFilter validates a bulk replay request of p into a filter
// bound to one account, naming the field at fault.
func (a *API) bulkReplayFilter(ctx context.Context, p *Principal, req *apitype.BulkReplay) (*store.ReplayFilter, *Error) {
	f := &store.ReplayFilter{State: store.StateDead}
	if req.State != nil {
		f.State = *req.State
		if f.State != store.StateDead && f.State != store.StateSucceeded {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_state", Field: "state", Message: "state must be dead (the default) or succeeded"}
		}
	}
	if req.AccountID != nil {
		f.AccountID = *req.AccountID
		if err := webhookrule.ValidateAccountID(f.AccountID); err != nil {
			return nil, validationError(err)
		}
	}
	if req.WebhookID != nil {
		f.WebhookID = *req.WebhookID
		if !ident.Valid(ident.Webhook, f.WebhookID) {
			return nil, invalidID("webhook_id", ident.Webhook)
		}
	}
	var err *Error
	if f.CreatedAfter, err = parseBodyTime(req.CreatedAfter, "created_after"); err != nil {
		return nil, err
	}
	if f.CreatedBefore, err = parseBodyTime(req.CreatedBefore, "created_before"); err != nil {
		return nil, err
	}
	if apiErr := checkRange(f.CreatedAfter, f.CreatedBefore); apiErr != nil {
		return nil, apiErr
	}

	if p.AccountID != "" {
		if f.AccountID != "" && f.AccountID != p.AccountID {
			return nil, &Error{Status: http.StatusForbidden, Code: "account_not_allowed", Field: "account_id", Message: "this API key is bound to another account"}
		}
		f.AccountID = p.AccountID
	}
	if f.WebhookID != "" {
		accountID, live, err := store.WebhookAccount(ctx, a.pool, f.WebhookID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.logger.Error("error looking up webhook", zap.String("webhook_id", f.WebhookID), zap.Error(err))
			return nil, errInternal(err)
		}
		if errors.Is(err, store.ErrNotFound) || (f.AccountID != "" && accountID != f.AccountID) {
			return nil, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "webhook_id", Message: "webhook not found"}
		}
		if !live {
			return nil, &Error{Status: http.StatusConflict, Code: "webhook_deleted", Field: "webhook_id", Message: "the webhook has been deleted; there is nowhere to send its deliveries"}
		}
		f.AccountID = accountID
	}
	if f.AccountID == "" {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_filter", Field: "account_id", Message: "account_id or webhook_id is required"}
	}
	return f, nil
}

// parseBodyTime reads an optional RFC 3339 time from a JSON body field.
func parseBodyTime(raw *string, name string) (*time.Time, *Error) {
	if raw == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *raw)
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_time", Field: name, Message: name + " must be an RFC 3339 time, such as 2026-01-02T15:04:05Z"}
	}
	return &t, nil
}

// GetReplayBatch is a bulk replay's progress (GET /v1/replays/{id}).
// Unknown or another account's: 404.
func (a *API) GetReplayBatch(ctx context.Context, p *Principal, req *apitype.ReplayBatchGet) (*apitype.ReplayBatch, error) {
	if e := a.admit(ctx, p, opGetReplayBatch); e != nil {
		return nil, e
	}
	if e := checkID(req.ID, engine.ReplayBatchPrefix, "bulk replay"); e != nil {
		return nil, e
	}
	b, err := store.GetReplayBatch(ctx, a.pool, req.ID)
	if e := a.loadedFor(p, "bulk replay", req.ID, err, func() string { return b.Filter.AccountID }); e != nil {
		return nil, e
	}
	return renderReplayBatch(b), nil
}

// decodeReplayBatchGet reads GET /v1/replays/{id}'s id.
func decodeReplayBatchGet(_ http.ResponseWriter, r *http.Request, req *apitype.ReplayBatchGet) *Error {
	id, e := pathID(r, engine.ReplayBatchPrefix, "bulk replay")
	req.ID = id
	return e
}
