package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// This file is the frame of the typed operations (see the package doc,
// "Typed operations"): an operation's spec (opSpec), the admission every
// operation starts with (admit: scope, then the per-key rate limit), the
// HTTP middleware that runs that same admission before a request's body is
// read (admitting), the one generic JSON adapter (handle), and WithPage,
// which makes the calls of one front-end page one charge.

// opSpec is what an operation is allowed: its name as a route ("POST
// /v1/keys", named in 403 messages), the scopes whose keys may call it
// and the rate budget it counts in. One spec per operation, declared
// beside it (keys.go: opCreateKey …) and named by its entry in routes.
type opSpec struct {
	route  string
	scopes []string
	// budget is budgetManagement for every operation so far ("" counts
	// in none).
	budget string
}

// admittedKey is the context key of the *opSpec the HTTP layer has
// already admitted the request for (admitting), so that the operation it
// calls does not check and charge it twice.
type admittedKey struct{}

// headersKey is the context key of the http.Header that admit writes the
// RateLimit fields into: the answer's, when the caller is the JSON API.
type headersKey struct{}

// withHeaders returns ctx carrying h for admit's RateLimit fields.
func withHeaders(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, headersKey{}, h)
}

// admit is the first thing every operation does: it decides whether p may
// call op and charges p's rate budget. No principal → 401; a scope not in
// op.scopes → 403 insufficient_scope; over the key's budget → 429
// rate_limited with RetryAfter. The calls of one dashboard page (WithPage)
// count once. A request the HTTP layer admitted
// already (admitting) passes without a second charge.
//
// Account binding is not decided here but by the operation, on the
// object it loads: another account's object is 404 (errNotFound), as if
// it did not exist.
func (a *API) admit(ctx context.Context, p *Principal, op *opSpec) *Error {
	if done, _ := ctx.Value(admittedKey{}).(*opSpec); done == op {
		return nil
	}
	if p == nil {
		return &Error{Status: http.StatusUnauthorized, Code: "missing_api_key", Field: "Authorization", Message: "no authenticated principal"}
	}
	if !slices.Contains(op.scopes, p.Scope) {
		return &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Field: "Authorization", Message: "this API key's scope (" + p.Scope + ") does not allow " + op.route}
	}
	if op.budget == "" || (op.budget == budgetManagement && pageChargedCtx(ctx)) {
		return nil
	}
	h, _ := ctx.Value(headersKey{}).(http.Header)
	return a.take(h, p, op.budget, 1)
}

// pageKey is the context key of a *frontPage.
type pageKey struct{}

// frontPage is one request of a front end (a dashboard page) that makes
// several operation calls: the first call is counted against the key's
// management budget, the others are not.
type frontPage struct{ charged atomic.Bool }

// WithPage returns ctx marking the operation calls made with it as parts
// of one page: together they count as one request against the caller's
// management budget, so a page showing twenty webhooks costs what one API
// request costs, not forty. The first call is charged (and refused 429
// when the budget is spent).
func WithPage(ctx context.Context) context.Context {
	return context.WithValue(ctx, pageKey{}, &frontPage{})
}

// pageChargedCtx reports whether ctx is that of a call of a page already
// charged, and marks the page charged otherwise.
func pageChargedCtx(ctx context.Context) bool {
	pg, ok := ctx.Value(pageKey{}).(*frontPage)
	return ok && pg.charged.Swap(true)
}

// admitting runs admit for op on an authenticated request (auth has put
// its Principal in the context) before the body is read, in the order the
// API has always refused in (401, 403, 429, then the body's problems), and
// marks the request admitted for the operation the handler calls.
func (a *API) admitting(op *opSpec, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := withHeaders(r.Context(), w.Header())
		if e := a.admit(ctx, principalFrom(ctx), op); e != nil {
			a.writeOpError(w, e)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, admittedKey{}, op)))
	})
}

// loadedFor is an operation's answer to loading what (id) for p: nil
// when err is nil and the object's account (accountID, called only then)
// is p's to see; 404 when it is unknown or another account's, as if it
// did not exist; an unexpected err is logged and answered by errInternal.
func (a *API) loadedFor(p *Principal, what, id string, err error, accountID func() string) *Error {
	if err == nil && !p.CanAccess(accountID()) {
		err = store.ErrNotFound // another account's object does not exist for this key
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotFound(what)
	case err != nil:
		return a.internal("error loading "+what, err, zap.String("id", id))
	}
	return nil
}

// decodeBody reads an operation's request from a JSON body of at most
// SmallBodyLimit bytes (decodeJSON's rules).
func decodeBody[Req any](w http.ResponseWriter, r *http.Request, req *Req) *Error {
	return decodeJSON(w, r, SmallBodyLimit, req)
}

// NoContent is the answer of an operation that answers nothing (HTTP 204).
type NoContent = struct{}

// handle is the JSON adapter of one typed operation: decode reads the
// request (path, query, body) into a Req, refusing it with an *Error;
// op is called as the request's Principal; its answer is written with
// status (204: no body), its error mapped by writeOpError. decode may be
// nil for an operation that takes nothing from the request.
func handle[Req, Resp any](a *API, status int, decode func(http.ResponseWriter, *http.Request, *Req) *Error, op func(context.Context, *Principal, *Req) (*Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if decode != nil {
			if e := decode(w, r, &req); e != nil {
				writeError(w, e)
				return
			}
		}
		ctx := withHeaders(r.Context(), w.Header())
		resp, err := op(ctx, principalFrom(ctx), &req)
		if err != nil {
			a.writeOpError(w, err)
			return
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, resp)
	}
}

// writeOpError answers an operation's error: an *Error as it is (a 403
// insufficient_scope with its Bearer challenge, as auth answers one);
// anything else, which an operation should not return, is logged and
// answered by errInternal (500, or 503 when the database is away).
func (a *API) writeOpError(w http.ResponseWriter, err error) {
	var e *Error
	ok := errors.As(err, &e)
	if !ok {
		a.logger.Error("unexpected error from an operation", zap.Error(err))
		e = errInternal(err)
	}
	if e.Code == "insufficient_scope" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="webhookd", error="insufficient_scope"`)
	}
	writeError(w, e)
}

// internal logs an operation's unexpected error once (msg, with fields)
// and returns its answer, errInternal's: every caller gets an *Error, and
// errors.Unwrap of it is err.
func (a *API) internal(msg string, err error, fields ...zap.Field) *Error {
	a.logger.Error(msg, append(fields, zap.Error(err))...)
	return errInternal(err)
}

// OperatorPrincipal is the caller of the operations that `webhookd`'s
// commands (keys …) make: the operator running them holds DATABASE_URL,
// which is every power the bootstrap admin key has, so they act as it
// (admin scope, every account, counted in the bootstrap key's budget: no
// limit by default).
func OperatorPrincipal() *Principal { return &Principal{Scope: store.ScopeAdmin} }
