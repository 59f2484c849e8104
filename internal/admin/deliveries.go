package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// The deliveries family's operations: GET /v1/deliveries/{id}, GET
// /v1/deliveries, POST /v1/deliveries/{id}/replay, POST
// /v1/deliveries/replay and GET /v1/replays/{id} (replay.go), for admin
// and account keys. The JSON API (routes), the dashboard and `webhookd
// deliveries` call them.
var (
	opGetDelivery    = &opSpec{route: "GET /v1/deliveries/{id}", scopes: scopesAccount, budget: budgetManagement}
	opListDeliveries = &opSpec{route: "GET /v1/deliveries", scopes: scopesAccount, budget: budgetManagement}
)

// GetDelivery is one delivery with every attempt (of every generation)
// and every replay (GET /v1/deliveries/{id}). Unknown, or another
// account's: 404.
func (a *API) GetDelivery(ctx context.Context, p *Principal, req *apitype.DeliveryGet) (*apitype.Delivery, error) {
	if e := a.admit(ctx, p, opGetDelivery); e != nil {
		return nil, e
	}
	if e := checkID(req.ID, ident.Delivery, "delivery"); e != nil {
		return nil, e
	}
	d, err := store.GetDelivery(ctx, a.pool, req.ID)
	if e := a.loadedFor(p, "delivery", req.ID, err, func() string { return d.AccountID }); e != nil {
		return nil, e
	}
	return renderDelivery(d), nil
}

// decodeDeliveryGet reads GET /v1/deliveries/{id}'s id.
func decodeDeliveryGet(_ http.ResponseWriter, r *http.Request, req *apitype.DeliveryGet) *Error {
	id, e := pathID(r, ident.Delivery, "delivery")
	req.ID = id
	return e
}

// deliveryListParams are the query parameters of GET /v1/deliveries.
var deliveryListParams = []string{"state", "account_id", "webhook_id", "event_type", "event_id", "created_after", "created_before", "cursor", "limit"}

// ListDeliveries is a page of deliveries newest first (GET
// /v1/deliveries), filtered by state, account_id, webhook_id, event_type,
// event_id and a creation time range (created_after inclusive,
// created_before exclusive). webhook_id or account_id is required except
// with state=dead; a key bound to an account only ever sees that account.
func (a *API) ListDeliveries(ctx context.Context, p *Principal, req *apitype.DeliveryList) (*apitype.Page[apitype.Delivery], error) {
	if e := a.admit(ctx, p, opListDeliveries); e != nil {
		return nil, e
	}
	f, after, limit, apiErr := deliveryFilter(p, req)
	if apiErr != nil {
		return nil, apiErr
	}
	empty := &apitype.Page[apitype.Delivery]{Data: []apitype.Delivery{}}

	// A webhook belongs to one account: naming it lets the query use the
	// account's indexes too (an event type is indexed per account).
	if f.WebhookID != "" {
		accountID, _, err := store.WebhookAccount(ctx, a.pool, f.WebhookID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return empty, nil
		case err != nil:
			return nil, a.internal("error looking up webhook", err, zap.String("webhook_id", f.WebhookID))
		case f.AccountID != "" && f.AccountID != accountID:
			return empty, nil
		}
		f.AccountID = accountID
	}

	rows, err := store.ListDeliveries(ctx, a.pool, f, after, limit+1)
	if err != nil {
		return nil, a.internal("error listing deliveries", err)
	}
	out := &apitype.Page[apitype.Delivery]{Data: make([]apitype.Delivery, 0, min(len(rows), limit))}
	for i, d := range rows {
		if i == limit {
			// The extra row only says that there is a next page.
			out.NextCursor = store.DeliveryCursor{CreatedAt: rows[i-1].CreatedAt, ID: rows[i-1].ID}.String()
			break
		}
		out.Data = append(out.Data, summarize(d))
	}
	return out, nil
}

// decodeDeliveryList reads GET /v1/deliveries's query into req, refusing
// what does not parse (unknown or repeated parameters, limit) with a 400.
func decodeDeliveryList(_ http.ResponseWriter, r *http.Request, req *apitype.DeliveryList) *Error {
	q, apiErr := queryParams(r, deliveryListParams...)
	if apiErr != nil {
		return apiErr
	}
	// The limit follows every list's rules; the cursor is this list's own.
	pg, apiErr := parsePage(url.Values{"limit": q["limit"]}, ident.Delivery)
	if apiErr != nil {
		return apiErr
	}
	req.Limit = pg.limit
	for name, dst := range map[string]**string{
		"state": &req.State, "account_id": &req.AccountID, "webhook_id": &req.WebhookID,
		"event_type": &req.EventType, "event_id": &req.EventID, "cursor": &req.Cursor,
		"created_after": &req.CreatedAfter, "created_before": &req.CreatedBefore,
	} {
		if raw, has := q[name]; has {
			*dst = &raw[0]
		}
	}
	return nil
}

// parseDeliveryList validates GET /v1/deliveries's query as the request's
// principal, naming the parameter at fault (decodeDeliveryList, then
// deliveryFilter).
func parseDeliveryList(r *http.Request) (*store.DeliveryFilter, *store.DeliveryCursor, int, *Error) {
	var req apitype.DeliveryList
	if e := decodeDeliveryList(nil, r, &req); e != nil {
		return nil, nil, 0, e
	}
	return deliveryFilter(principalFrom(r.Context()), &req)
}

// deliveryFilter validates a delivery listing of p, naming the parameter
// at fault: 400 for a limit or cursor that is not one, 422 for values
// that parse but are not allowed, 403 for another account than p's.
func deliveryFilter(p *Principal, req *apitype.DeliveryList) (*store.DeliveryFilter, *store.DeliveryCursor, int, *Error) {
	limit := LimitDefault
	if req.Limit != 0 {
		pg, apiErr := parsePage(url.Values{"limit": {strconv.Itoa(req.Limit)}}, ident.Delivery)
		if apiErr != nil {
			return nil, nil, 0, apiErr
		}
		limit = pg.limit
	}
	val := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	f := &store.DeliveryFilter{
		State:     val(req.State),
		AccountID: val(req.AccountID),
		WebhookID: val(req.WebhookID),
		EventType: val(req.EventType),
		EventID:   val(req.EventID),
	}
	if req.State != nil && !validState(f.State) {
		return nil, nil, 0, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_state", Field: "state", Message: "state must be one of " + strings.Join(store.DeliveryStates, ", ")}
	}
	if req.AccountID != nil {
		if err := webhookrule.ValidateAccountID(f.AccountID); err != nil {
			return nil, nil, 0, validationError(err)
		}
	}
	if req.WebhookID != nil && !ident.Valid(ident.Webhook, f.WebhookID) {
		return nil, nil, 0, invalidID("webhook_id", ident.Webhook)
	}
	if req.EventType != nil {
		if err := webhookrule.ValidateType(f.EventType); err != nil {
			return nil, nil, 0, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_event_type", Field: "event_type", Message: "event_type must be 1 to 100 characters of lowercase letters, digits, _ and ., starting with a letter"}
		}
	}
	if req.EventID != nil && !ident.Valid(ident.Event, f.EventID) {
		return nil, nil, 0, invalidID("event_id", ident.Event)
	}
	// A '+' in a time's offset arrives as a space when the client did not
	// escape it in the query; that is read as the '+' it was.
	plus := func(s *string) *string {
		if s == nil {
			return nil
		}
		v := strings.ReplaceAll(*s, " ", "+")
		return &v
	}
	var err *Error
	if f.CreatedAfter, err = parseBodyTime(plus(req.CreatedAfter), "created_after"); err != nil {
		return nil, nil, 0, err
	}
	if f.CreatedBefore, err = parseBodyTime(plus(req.CreatedBefore), "created_before"); err != nil {
		return nil, nil, 0, err
	}
	if apiErr := checkRange(f.CreatedAfter, f.CreatedBefore); apiErr != nil {
		return nil, nil, 0, apiErr
	}
	var after *store.DeliveryCursor
	if req.Cursor != nil {
		c, err := store.ParseDeliveryCursor(*req.Cursor)
		if err != nil {
			return nil, nil, 0, &Error{Status: http.StatusBadRequest, Code: "invalid_cursor", Field: "cursor", Message: "cursor is not a cursor of this list: pass next_cursor from the previous page as it is"}
		}
		after = c
	}

	// Scope: a key bound to an account sees that account only.
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
		f.ExceptAccount = engine.NotifyAccount
	}
	return f, after, limit, nil
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
	for i := range d.AttemptList {
		out.Attempts[i] = attemptOf(&d.AttemptList[i])
	}
	for i, rp := range d.Replays {
		out.Replays[i] = apitype.Replay{Generation: rp.Generation, FromState: rp.FromState, KeyID: rp.KeyID, BatchID: rp.BatchID, CreatedAt: rp.CreatedAt}
	}
	return &out
}

// attemptOf is a stored attempt as the API shows it.
func attemptOf(at *store.AttemptRecord) apitype.Attempt {
	return apitype.Attempt{
		Number: at.Number, Generation: at.Generation, Counted: at.Counted,
		ScheduledAt: at.ScheduledAt, StartedAt: at.StartedAt,
		DurationMS: float64(at.Duration.Microseconds()) / 1000,
		StatusCode: at.StatusCode, ErrorKind: at.ErrorKind, ErrorMessage: at.ErrorMessage,
		ResponseExcerpt: excerpt(at.ResponseExcerpt), SignatureT: at.SignatureT,
	}
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
