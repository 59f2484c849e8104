package admin

import (
	"context"
	"crypto/subtle"
	"net/http"
	"slices"
	"sync/atomic"
	"time"
)

// This file is what the dashboard (package dashboard) needs from the API:
// signing in with a key as the API authenticates one, and calling the API's
// own routes in process, so that every form goes through the same
// validation, storage and messages as the JSON API.

// ErrInvalidKey means an API key is unknown, revoked or malformed.
var ErrInvalidKey = errInvalidKey

// Authenticate returns the Principal of API key raw exactly as the API's
// Bearer authentication does (the bootstrap admin key included, key use
// recorded), or ErrInvalidKey.
func (a *API) Authenticate(ctx context.Context, raw string) (*Principal, error) {
	return a.authenticate(ctx, raw)
}

// SignInFailed records a dashboard sign-in refused for its key (err, an
// ErrInvalidKey) as the API records a failed key: counted, logged within
// the log's limits, never the key, and throttled per client address. It
// reports how long the address is throttled for (0: not), during which
// the sign-in is to be refused 429.
func (a *API) SignInFailed(r *http.Request, err error) time.Duration {
	return a.keyFailed(r, reasonOf(err))
}

// IsBootstrapKeyHash reports whether hash is the SHA-256 of the configured
// bootstrap admin key (false when none is configured).
func (a *API) IsBootstrapKeyHash(hash []byte) bool {
	return a.hasAdmin && subtle.ConstantTimeCompare(hash, a.adminKey[:]) == 1
}

// WithPrincipal returns ctx carrying p, for InProcessHandler.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// pageKey is the context key of a *frontPage.
type pageKey struct{}

// frontPage is one request of a front end (a dashboard page) that makes
// several in-process API calls: the first call is counted against the
// key's management budget, the others are not.
type frontPage struct{ charged atomic.Bool }

// WithPage returns ctx marking the in-process API calls made with it as
// parts of one page: together they count as one request against the
// signed-in key's management budget, so a page showing twenty webhooks
// costs what one API request costs, not forty. The first call is
// charged (and refused 429 when the budget is spent).
func WithPage(ctx context.Context) context.Context {
	return context.WithValue(ctx, pageKey{}, &frontPage{})
}

// pageChargedCtx reports whether ctx is that of an in-process call of a
// page already charged (an HTTP request's, or an operation's), and marks
// the page charged otherwise.
func pageChargedCtx(ctx context.Context) bool {
	pg, ok := ctx.Value(pageKey{}).(*frontPage)
	return ok && pg.charged.Swap(true)
}

// InProcessHandler returns the API's routes for a caller in the same
// process that has authenticated the user itself (the dashboard's
// sessions). It never reads Authorization: each request must carry a
// Principal set with WithPrincipal, and one without is refused with 401,
// so the handler is useless if mounted on a listener by mistake. Each
// route's scopes and rate limits apply as in Handler: the dashboard's
// calls count against the signed-in key. Answers are the API's JSON.
func (a *API) InProcessHandler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		if rt.scopes == nil {
			continue
		}
		scopes, handler := rt.scopes, a.withRateLimit(rt, a.withBatchIntake(rt, rt.handler)).ServeHTTP
		if rt.op != nil {
			scopes, handler = nil, a.admitting(rt.op, rt.handler).ServeHTTP
		}
		mux.HandleFunc(rt.method+" "+rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			p := principalFrom(r.Context())
			if p == nil {
				writeError(w, &Error{Status: http.StatusUnauthorized, Code: "missing_api_key", Message: "no authenticated principal"})
				return
			}
			if scopes != nil && !slices.Contains(scopes, p.Scope) {
				writeError(w, &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Message: "this API key's scope (" + p.Scope + ") does not allow " + routeOf(r)})
				return
			}
			handler(w, r)
		})
	}
	return mux
}
