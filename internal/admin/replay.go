package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// replayDelivery answers POST /v1/deliveries/{id}/replay: a dead or
// succeeded delivery goes back to pending on a new generation of ten
// attempts (202, with the delivery). A pending or cancelled one, or one
// whose webhook was deleted, is a 409.
func (a *API) replayDelivery(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Delivery, "delivery")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	// The replay takes no options: the body may be empty or {}, nothing more.
	if r.ContentLength != 0 {
		var none struct{}
		if apiErr := decodeJSON(w, r, SmallBodyLimit, &none); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}
	ctx := r.Context()
	p := principalFrom(ctx)
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		a.logger.Error("error beginning transaction", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	res, err := a.enqueuer.Replay(ctx, tx, id, &dispatcher.ReplayOpts{KeyID: p.KeyID, AccountID: p.AccountID})
	if err != nil {
		if apiErr := replayError(err); apiErr != nil {
			writeError(w, apiErr)
			return
		}
		a.logger.Error("error replaying delivery", zap.String("delivery_id", id), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	d, err := store.GetDelivery(ctx, tx, id)
	if err != nil {
		a.logger.Error("error loading replayed delivery", zap.String("delivery_id", id), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	if err := tx.Commit(ctx); err != nil {
		a.logger.Error("error committing replay", zap.String("delivery_id", id), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.logger.Info("delivery replayed", zap.String("delivery_id", id), zap.String("from_state", res.FromState),
		zap.Int("generation", res.Generation), zap.String("key_id", p.KeyID))
	writeJSON(w, http.StatusAccepted, renderDelivery(d))
}

// replayError maps the dispatcher's replay refusals to the API; nil for
// an unexpected error.
func replayError(err error) *Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("delivery")
	case errors.Is(err, dispatcher.ErrDeliveryPending):
		return &Error{Status: http.StatusConflict, Code: "delivery_pending", Message: "the delivery is pending: it is already on its schedule; only dead or succeeded deliveries can be replayed"}
	case errors.Is(err, dispatcher.ErrDeliveryCancelled):
		return &Error{Status: http.StatusConflict, Code: "delivery_cancelled", Message: "the delivery was cancelled because its webhook was deleted; there is nowhere to send it"}
	case errors.Is(err, dispatcher.ErrWebhookDeleted):
		return &Error{Status: http.StatusConflict, Code: "webhook_deleted", Message: "the delivery's webhook has been deleted; there is nowhere to send it"}
	case errors.Is(err, dispatcher.ErrTestDelivery):
		return &Error{Status: http.StatusConflict, Code: "test_delivery", Message: "this is a test send: test sends are never replayed; send another with POST /v1/webhooks/{id}/test"}
	case errors.Is(err, dispatcher.ErrNotReplayable):
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

// replayDeliveries answers POST /v1/deliveries/replay: the deliveries
// matching the filter (webhook_id or account_id, a creation time range,
// state dead by default or succeeded) are fixed now and replayed in the
// background, paced per webhook. 202 with the batch, whose id GET
// /v1/replays/{id} follows.
func (a *API) replayDeliveries(w http.ResponseWriter, r *http.Request) {
	var req apitype.BulkReplay
	if apiErr := decodeJSON(w, r, SmallBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	ctx := r.Context()
	p := principalFrom(ctx)
	f, apiErr := a.bulkReplayFilter(ctx, p, &req)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		a.logger.Error("error beginning transaction", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	batch, err := a.enqueuer.StartReplayBatch(ctx, tx, f, &dispatcher.ReplayOpts{KeyID: p.KeyID})
	var v *dispatcher.ValidationError
	switch {
	case errors.Is(err, dispatcher.ErrReplayBatchTooLarge):
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "too_many_deliveries", Message: "more than 100000 deliveries match: narrow the filter with webhook_id, created_after and created_before, and replay in parts"})
		return
	case errors.As(err, &v):
		writeError(w, validationError(err))
		return
	case err != nil:
		a.logger.Error("error starting bulk replay", zap.String("account_id", f.AccountID), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	if err := tx.Commit(ctx); err != nil {
		a.logger.Error("error committing bulk replay", zap.String("account_id", f.AccountID), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.logger.Info("bulk replay started", zap.String("batch_id", batch.ID), zap.String("account_id", f.AccountID),
		zap.String("webhook_id", f.WebhookID), zap.Int("total", batch.Total), zap.String("key_id", p.KeyID))
	writeJSON(w, http.StatusAccepted, renderReplayBatch(batch))
}

// CountBulkReplay counts, up to limit, the deliveries POST
// /v1/deliveries/replay would replay for req asked by p: the filter is
// resolved by the route's own code (validation, the key's account, the
// webhook's), so the dashboard's confirmation counts what the API will
// replay. A request the route would refuse is refused with the route's
// message (refused, err nil); err is an error of the database.
func (a *API) CountBulkReplay(ctx context.Context, p *Principal, req *apitype.BulkReplay, limit int) (n int, refused string, err error) {
	f, apiErr := a.bulkReplayFilter(ctx, p, req)
	switch {
	case apiErr != nil && apiErr.Status >= 500:
		return 0, "", apiErr
	case apiErr != nil:
		return 0, apiErr.Message, nil
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

// getReplayBatch answers GET /v1/replays/{id}: a bulk replay's progress.
func (a *API) getReplayBatch(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, dispatcher.ReplayBatchPrefix, "bulk replay")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	b, err := store.GetReplayBatch(r.Context(), a.pool, id)
	if apiErr := a.checkLoaded(r, "bulk replay", err, func() string { return b.Filter.AccountID }); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, renderReplayBatch(b))
}
