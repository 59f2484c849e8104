package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
)

// Ordered delivery ("ordering": "fifo", internal/engine/fifo.go): the setting
// through create and update, the line's state in the webhook's answer, and
// POST /v1/webhooks/{id}/fifo/skip.

// checkOrdering refuses an ordering other than none or fifo (422
// invalid_ordering).
func checkOrdering(ordering *string) *Error {
	if ordering != nil && *ordering != store.OrderingNone && *ordering != store.OrderingFIFO {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_ordering", Field: "ordering",
			Message: `ordering must be "none" (deliveries go out unordered, the default) or "fifo" (strictly in order, one at a time)`}
	}
	return nil
}

// setOrdering switches hook to ordering in a transaction of its own (see
// store.SetOrdering) and returns it with the new setting.
func (a *API) setOrdering(ctx context.Context, hook *store.Webhook, ordering string) (*store.Webhook, error) {
	if hook.Ordering == ordering {
		return hook, nil
	}
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		return store.SetOrdering(ctx, tx, hook.ID, ordering, a.now().UTC())
	})
	if err != nil {
		return nil, err
	}
	a.logger.Info("webhook ordering changed", zap.String("webhook_id", hook.ID), zap.String("ordering", ordering))
	out := *hook
	out.Ordering = ordering
	return &out, nil
}

// withFIFO adds each FIFO webhook's line state to its answer (one query per
// FIFO webhook; none for the others).
func (a *API) withFIFO(ctx context.Context, outs ...*apitype.Webhook) error {
	for _, out := range outs {
		if out.Ordering != store.OrderingFIFO {
			continue
		}
		s, err := store.GetFIFOStatus(ctx, a.pool, out.ID)
		if err != nil {
			return err
		}
		out.FIFO = &apitype.WebhookFIFO{BlockedBy: s.BlockedBy, Waiting: s.Waiting}
	}
	return nil
}

// opSkipFIFOHead is POST /v1/webhooks/{id}/fifo/skip, for account and
// admin keys.
var opSkipFIFOHead = &opSpec{route: "POST /v1/webhooks/{id}/fifo/skip", scopes: scopesAccount, budget: budgetManagement}

// SkipFIFOHead is POST /v1/webhooks/{id}/fifo/skip: the dead delivery
// blocking a FIFO webhook's line leaves the line (it stays dead and can
// still be replayed, then outside the order) and the next delivery goes.
// 409 not_fifo for a webhook that is not FIFO, 409 not_blocking when the
// delivery named is not the dead head. Answers the webhook.
func (a *API) SkipFIFOHead(ctx context.Context, p *Principal, req *apitype.FIFOSkip) (*apitype.Webhook, error) {
	if e := a.admit(ctx, p, opSkipFIFOHead); e != nil {
		return nil, e
	}
	hook, apiErr := a.webhookOf(ctx, p, req.ID)
	if apiErr != nil {
		return nil, apiErr
	}
	switch {
	case req.DeliveryID == nil:
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "delivery_id", Message: "delivery_id is required: the id of the dead delivery blocking the line (fifo.blocked_by)"}
	case !ident.Valid(ident.Delivery, *req.DeliveryID):
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_delivery_id", Field: "delivery_id", Message: "delivery_id must be a delivery id (dlv_ followed by 32 hex digits)"}
	case hook.Ordering != store.OrderingFIFO:
		return nil, &Error{Status: http.StatusConflict, Code: "not_fifo", Field: "id", Message: `this webhook's ordering is not "fifo": it has no line to skip in`}
	}
	err := engine.SkipFIFOHead(ctx, a.pool, hook.ID, *req.DeliveryID, a.now, a.logger)
	if errors.Is(err, store.ErrNotBlocking) {
		return nil, &Error{Status: http.StatusConflict, Code: "not_blocking", Field: "delivery_id", Message: "that delivery is not the dead delivery blocking this webhook's line (see fifo.blocked_by): nothing was skipped"}
	}
	if err != nil {
		return nil, a.internal("error skipping a FIFO head", err, zap.String("webhook_id", hook.ID))
	}
	a.logger.Info("dead FIFO head skipped", zap.String("webhook_id", hook.ID), zap.String("delivery_id", *req.DeliveryID))
	out := renderWebhook(hook)
	if err := a.withFIFO(ctx, &out); err != nil {
		return nil, errInternal(err)
	}
	return &out, nil
}

// decodeFIFOSkip reads POST /v1/webhooks/{id}/fifo/skip: the path's id,
// then the body.
func decodeFIFOSkip(w http.ResponseWriter, r *http.Request, req *apitype.FIFOSkip) *Error {
	return decodeWebhookBody(w, r, SmallBodyLimit, false, req, &req.ID)
}
