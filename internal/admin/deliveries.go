package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

func (a *API) getDelivery(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Delivery, "delivery")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	d, err := store.GetDelivery(r.Context(), a.pool, id)
	if apiErr := a.checkLoaded(r, "delivery", err, func() string { return d.AccountID }); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, renderDelivery(d))
}

// deliveryListParams are the query parameters of GET /v1/deliveries.
var deliveryListParams = []string{"state", "account_id", "webhook_id", "event_type", "event_id", "created_after", "created_before", "cursor", "limit"}

// listDeliveries answers GET /v1/deliveries: deliveries newest first,
// filtered by state, account_id, webhook_id, event_type, event_id and a
// creation time range (created_after inclusive, created_before exclusive),
// a page of limit at a time. webhook_id or account_id is required except
// with state=dead; a key bound to an account only ever sees that account.
func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request) {
	f, after, limit, apiErr := parseDeliveryList(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	ctx := r.Context()
	empty := apitype.Page[apitype.Delivery]{Data: []apitype.Delivery{}}

	// A webhook belongs to one account: naming it lets the query use the
	// account's indexes too (an event type is indexed per account).
	if f.WebhookID != "" {
		accountID, _, err := store.WebhookAccount(ctx, a.pool, f.WebhookID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeJSON(w, http.StatusOK, empty)
			return
		case err != nil:
			a.logger.Error("error looking up webhook", zap.String("webhook_id", f.WebhookID), zap.Error(err))
			writeError(w, errInternal(err))
			return
		case f.AccountID != "" && f.AccountID != accountID:
			writeJSON(w, http.StatusOK, empty)
			return
		}
		f.AccountID = accountID
	}

	rows, err := store.ListDeliveries(ctx, a.pool, f, after, limit+1)
	if err != nil {
		a.logger.Error("error listing deliveries", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	out := apitype.Page[apitype.Delivery]{Data: make([]apitype.Delivery, 0, min(len(rows), limit))}
	for i, d := range rows {
		if i == limit {
			// The extra row only says that there is a next page.
			out.NextCursor = store.DeliveryCursor{CreatedAt: rows[i-1].CreatedAt, ID: rows[i-1].ID}.String()
			break
		}
		out.Data = append(out.Data, summarize(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// parseDeliveryList validates GET /v1/deliveries's query, naming the
// parameter at fault: 400 for what does not parse (unknown or repeated
// parameters, limit, dates, cursor), 422 for values that parse but are not
// allowed.
func parseDeliveryList(r *http.Request) (*store.DeliveryFilter, *store.DeliveryCursor, int, *Error) {
	q, apiErr := queryParams(r, deliveryListParams...)
	if apiErr != nil {
		return nil, nil, 0, apiErr
	}
	// The limit follows every list's rules; the cursor is this list's own.
	pg, apiErr := parsePage(url.Values{"limit": q["limit"]}, ident.Delivery)
	if apiErr != nil {
		return nil, nil, 0, apiErr
	}
	f := &store.DeliveryFilter{
		State:     q.Get("state"),
		AccountID: q.Get("account_id"),
		WebhookID: q.Get("webhook_id"),
		EventType: q.Get("event_type"),
		EventID:   q.Get("event_id"),
	}
	if _, has := q["state"]; has && !validState(f.State) {
		return nil, nil, 0, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_state", Field: "state", Message: "state must be one of " + strings.Join(store.DeliveryStates, ", ")}
	}
	if _, has := q["account_id"]; has {
		if err := webhookrule.ValidateAccountID(f.AccountID); err != nil {
			return nil, nil, 0, validationError(err)
		}
	}
	if _, has := q["webhook_id"]; has && !ident.Valid(ident.Webhook, f.WebhookID) {
		return nil, nil, 0, invalidID("webhook_id", ident.Webhook)
	}
	if _, has := q["event_type"]; has {
		if err := webhookrule.ValidateType(f.EventType); err != nil {
			return nil, nil, 0, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_event_type", Field: "event_type", Message: "event_type must be 1 to 100 characters of lowercase letters, digits, _ and ., starting with a letter"}
		}
	}
	if _, has := q["event_id"]; has && !ident.Valid(ident.Event, f.EventID) {
		return nil, nil, 0, invalidID("event_id", ident.Event)
	}
	var err *Error
	if f.CreatedAfter, err = parseTime(q, "created_after"); err != nil {
		return nil, nil, 0, err
	}
	if f.CreatedBefore, err = parseTime(q, "created_before"); err != nil {
		return nil, nil, 0, err
	}
	if apiErr := checkRange(f.CreatedAfter, f.CreatedBefore); apiErr != nil {
		return nil, nil, 0, apiErr
	}
	var after *store.DeliveryCursor
	if raw, has := q["cursor"]; has {
		c, err := store.ParseDeliveryCursor(raw[0])
		if err != nil {
			return nil, nil, 0, &Error{Status: http.StatusBadRequest, Code: "invalid_cursor", Field: "cursor", Message: "cursor is not a cursor of this list: pass next_cursor from the previous page as it is"}
		}
		after = c
	}

	// Scope: a key bound to an account sees that account only.
	p := principalFrom(r.Context())
	if p.AccountID != "" {
		if f.AccountID != "" && f.AccountID != p.AccountID {
			return nil, nil, 0, &Error{Status: http.StatusForbidden, Code: "account_not_allowed", Field: "account_id", Message: "this API key is bound to another account"}
		}
		f.AccountID = p.AccountID
	}
	if f.AccountID == "" && f.WebhookID == "" && f.State != store.StateDead {
		return nil, nil, 0, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_filter", Field: "account_id", Message: "account_id or webhook_id is required (only state=dead may list every account)"}
	}
	if f.AccountID == "" && f.WebhookID == "" {
		// Every account's: webhookd's own notifications are listed only
		// when their account (or webhook) is named.
		f.ExceptAccount = dispatcher.NotifyAccount
	}
	return f, after, pg.limit, nil
}

func validState(s string) bool {
	for _, state := range store.DeliveryStates {
		if s == state {
			return true
		}
	}
	return false
}

func invalidID(field string, p ident.Prefix) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_id", Field: field, Message: fmt.Sprintf("%s must be an id of the form %s_ followed by 32 lowercase hex digits", field, p)}
}

// parseTime reads the RFC 3339 time in query parameter name, if any. A '+'
// in an offset arrives as a space when the client did not escape it; that
// is read as the '+' it was.
func parseTime(q url.Values, name string) (*time.Time, *Error) {
	raw, has := q[name]
	if !has {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ReplaceAll(raw[0], " ", "+"))
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_time", Field: name, Message: name + " must be an RFC 3339 time, such as 2026-01-02T15:04:05Z"}
	}
	return &t, nil
}

// checkRange refuses a time range that is empty: created_after must come
// before created_before.
func checkRange(after, before *time.Time) *Error {
	if after != nil && before != nil && !after.Before(*before) {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_range", Field: "created_before", Message: "created_before must be later than created_after"}
	}
	return nil
}

func summarize(d *store.Delivery) apitype.Delivery {
	return apitype.Delivery{
		ID: d.ID, EventID: d.EventID, WebhookID: d.WebhookID, AccountID: d.AccountID, EventType: d.EventType,
		State: d.State, AttemptCount: d.Attempts, Generation: d.Generation, NextAttemptAt: d.NextAttemptAt,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FinishedAt: d.FinishedAt, Test: d.Test,
	}
}

// renderDelivery is d with every attempt (of every generation) and every
// replay.
func renderDelivery(d *store.Delivery) *apitype.Delivery {
	out := summarize(d)
	out.Attempts = make([]apitype.Attempt, len(d.AttemptList))
	out.Replays = make([]apitype.Replay, len(d.Replays))
	for i, at := range d.AttemptList {
		out.Attempts[i] = apitype.Attempt{
			Number: at.Number, Generation: at.Generation, Counted: at.Counted,
			ScheduledAt: at.ScheduledAt, StartedAt: at.StartedAt,
			DurationMS: float64(at.Duration.Microseconds()) / 1000,
			StatusCode: at.StatusCode, ErrorKind: at.ErrorKind, ErrorMessage: at.ErrorMessage,
			ResponseExcerpt: excerpt(at.ResponseExcerpt), SignatureT: at.SignatureT,
		}
	}
	for i, rp := range d.Replays {
		out.Replays[i] = apitype.Replay{Generation: rp.Generation, FromState: rp.FromState, KeyID: rp.KeyID, BatchID: rp.BatchID, CreatedAt: rp.CreatedAt}
	}
	return &out
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
