package admin

import (
	"context"
	"crypto/subtle"
	"net/http"
	"sync/atomic"
	"time"
)

// This file is what the dashboard (package dashboard) needs from the API
// besides its typed operations: signing in with a key as the API
// authenticates one, and counting the operations of one page once
// (WithPage).

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
