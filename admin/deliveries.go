package admin

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/ident"
	"github.com/mono/webhookd/store"
)

type deliveryResponse struct {
	ID            string            `json:"id"`
	EventID       string            `json:"event_id"`
	WebhookID     string            `json:"webhook_id"`
	AccountID     string            `json:"account_id"`
	EventType     string            `json:"event_type"`
	State         string            `json:"state"`
	AttemptCount  int               `json:"attempt_count"`
	Generation    int               `json:"generation"`
	NextAttemptAt *time.Time        `json:"next_attempt_at"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
	FinishedAt    *time.Time        `json:"finished_at"`
	Attempts      []attemptResponse `json:"attempts"`
}

type attemptResponse struct {
	Number          int       `json:"number"`
	Generation      int       `json:"generation"`
	Counted         bool      `json:"counted"`
	ScheduledAt     time.Time `json:"scheduled_at"`
	StartedAt       time.Time `json:"started_at"`
	DurationMS      float64   `json:"duration_ms"`
	StatusCode      *int      `json:"status_code"`
	ErrorKind       *string   `json:"error_kind"`
	ErrorMessage    *string   `json:"error_message"`
	ResponseExcerpt *string   `json:"response_excerpt"`
	SignatureT      int64     `json:"signature_t"`
}

func (a *API) getDelivery(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ident.Valid(ident.Delivery, id) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: "delivery not found (ids look like dlv_ followed by 32 hex digits)"})
		return
	}
	d, err := store.GetDelivery(r.Context(), a.pool, id)
	if err == nil && !principalFrom(r.Context()).CanAccess(d.AccountID) {
		err = store.ErrNotFound // another account's delivery does not exist for this key
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errNotFound("delivery"))
		return
	}
	if err != nil {
		a.logger.Error("error loading delivery", zap.String("delivery_id", id), zap.Error(err))
		writeError(w, errInternal())
		return
	}
	writeJSON(w, http.StatusOK, renderDelivery(d))
}

func renderDelivery(d *store.Delivery) *deliveryResponse {
	out := &deliveryResponse{
		ID: d.ID, EventID: d.EventID, WebhookID: d.WebhookID, AccountID: d.AccountID, EventType: d.EventType,
		State: d.State, AttemptCount: d.Attempts, Generation: d.Generation, NextAttemptAt: d.NextAttemptAt,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FinishedAt: d.FinishedAt,
		Attempts: make([]attemptResponse, len(d.AttemptList)),
	}
	for i, at := range d.AttemptList {
		out.Attempts[i] = attemptResponse{
			Number: at.Number, Generation: at.Generation, Counted: at.Counted,
			ScheduledAt: at.ScheduledAt, StartedAt: at.StartedAt,
			DurationMS: float64(at.Duration.Microseconds()) / 1000,
			StatusCode: at.StatusCode, ErrorKind: at.ErrorKind, ErrorMessage: at.ErrorMessage,
			ResponseExcerpt: excerpt(at.ResponseExcerpt), SignatureT: at.SignatureT,
		}
	}
	return out
}

// excerpt makes a stored response excerpt safe to show: valid UTF-8 with no
// NUL bytes.
func excerpt(b []byte) *string {
	if b == nil {
		return nil
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	return &s
}
