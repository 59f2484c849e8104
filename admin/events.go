package admin

import (
	"encoding/json"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/mono/webhookd/dispatcher"
)

type eventRequest struct {
	AccountID      string          `json:"account_id"`
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
}

type eventResponse struct {
	ID         string                  `json:"id"`
	Deliveries []eventDeliveryResponse `json:"deliveries"`
}

type eventDeliveryResponse struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhook_id"`
}

func (a *API) createEvent(w http.ResponseWriter, r *http.Request) {
	var req eventRequest
	if apiErr := decodeJSON(w, r, EventBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	key := req.IdempotencyKey
	if header := r.Header.Get("Idempotency-Key"); header != "" {
		if key != "" && key != header {
			writeError(w, &apiError{Status: http.StatusUnprocessableEntity, Code: "conflicting_idempotency_key", Field: "idempotency_key", Message: "idempotency_key and the Idempotency-Key header differ; send one"})
			return
		}
		key = header
	}
	accountID, apiErr := accountFor(r, &req.AccountID)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	ev := &dispatcher.Event{AccountID: accountID, Type: req.Type, Data: req.Data, IdempotencyKey: key}
	if err := dispatcher.Validate(ev); err != nil {
		writeError(w, validationError(err))
		return
	}

	ctx := r.Context()
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		a.logger.Error("error beginning transaction", zap.Error(err))
		writeError(w, errInternal())
		return
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	res, err := a.enqueuer.Enqueue(ctx, tx, ev)
	if err != nil {
		var v *dispatcher.ValidationError
		switch {
		case errors.As(err, &v):
			writeError(w, validationError(err))
		case errors.Is(err, dispatcher.ErrIdempotencyKeyReused):
			writeError(w, &apiError{Status: http.StatusConflict, Code: "idempotency_key_reused", Field: "idempotency_key", Message: "this idempotency key was already used for this account with a different payload"})
		default:
			a.logger.Error("error enqueuing event", zap.String("account_id", ev.AccountID), zap.Error(err))
			writeError(w, errInternal())
		}
		return
	}
	if err := tx.Commit(ctx); err != nil {
		a.logger.Error("error committing event", zap.String("account_id", ev.AccountID), zap.Error(err))
		writeError(w, errInternal())
		return
	}

	out := eventResponse{ID: res.EventID, Deliveries: make([]eventDeliveryResponse, len(res.Deliveries))}
	for i, d := range res.Deliveries {
		out.Deliveries[i] = eventDeliveryResponse{ID: d.ID, WebhookID: d.WebhookID}
	}
	status := http.StatusAccepted
	if res.Repeat {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}
