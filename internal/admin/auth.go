package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/store"
)

// Principal is who a request acts as: the API key behind it.
type Principal struct {
	// KeyID is the key's id; empty for the bootstrap admin key; the
	// portal link's id (pl_…) for a dashboard session opened with one.
	KeyID string
	// Scope is store.ScopeAdmin, store.ScopeAccount, store.ScopeEventsWrite
	// or store.ScopePortalWrite.
	Scope string
	// AccountID binds the key to one account; empty means every account
	// (admin, or an unbound events:write key).
	AccountID string
}

// Bootstrap reports whether this is the configured bootstrap admin key.
func (p *Principal) Bootstrap() bool { return p.KeyID == "" }

// CanAccess reports whether the key may act on accountID's objects.
func (p *Principal) CanAccess(accountID string) bool {
	return p.AccountID == "" || p.AccountID == accountID
}

type principalKey struct{}

func principalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Which scopes may call a route.
var (
	scopesAdmin   = []string{store.ScopeAdmin}
	scopesAccount = []string{store.ScopeAdmin, store.ScopeAccount}
	scopesEvents  = []string{store.ScopeAdmin, store.ScopeAccount, store.ScopeEventsWrite}
)

// auth requires a valid, unrevoked, unexpired API key whose scope is one of
// scopes, and puts its Principal in the request context. No key or an
// unknown, revoked or expired one → 401; a key of the wrong scope → 403.
// With scopes nil it only authenticates: a typed operation's route, whose
// scopes the operation checks (admit).
func (a *API) auth(scopes []string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 7235, section 2.1).
		scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		raw = strings.TrimSpace(raw)
		if !strings.EqualFold(scheme, "Bearer") || raw == "" {
			a.refuseKey(w, r, authMissing, func() {
				w.Header().Set("WWW-Authenticate", `Bearer realm="webhookd"`)
				writeError(w, &Error{Status: http.StatusUnauthorized, Code: "missing_api_key", Field: "Authorization", Message: "an API key is required: send Authorization: Bearer <key>"})
			})
			return
		}
		p, err := a.authenticate(r.Context(), raw)
		if err != nil {
			if !errors.Is(err, errInvalidKey) {
				a.logger.Error("error looking up API key", zap.Error(err))
				writeError(w, errInternal(err))
				return
			}
			a.refuseKey(w, r, reasonOf(err), func() {
				w.Header().Set("WWW-Authenticate", `Bearer realm="webhookd", error="invalid_token"`)
				writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_api_key", Field: "Authorization", Message: invalidKeyMessage(err)})
			})
			return
		}
		allowed := scopes == nil
		for _, s := range scopes {
			allowed = allowed || s == p.Scope
		}
		if !allowed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhookd", error="insufficient_scope"`)
			writeError(w, &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Field: "Authorization", Message: "this API key's scope (" + p.Scope + ") does not allow " + routeOf(r)})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

var errInvalidKey = errors.New("invalid API key")

// expiredKeyError is a rotated key past its grace period. It is an
// errInvalidKey (errors.Is), so every caller of authenticate refuses it.
type expiredKeyError struct{ at time.Time }

func (e *expiredKeyError) Error() string {
	return "API key expired at " + e.at.UTC().Format(time.RFC3339)
}

func (e *expiredKeyError) Is(target error) bool { return target == errInvalidKey }

// invalidKeyMessage is the 401 message for err, an errInvalidKey.
func invalidKeyMessage(err error) string {
	var expired *expiredKeyError
	if errors.As(err, &expired) {
		return "the API key expired at " + expired.at.UTC().Format(time.RFC3339) + ": it was rotated, use the key that replaced it"
	}
	return "the API key is not valid (unknown or revoked)"
}

func (a *API) authenticate(ctx context.Context, raw string) (*Principal, error) {
	hash := apikey.Hash(raw)
	if a.isBootstrapHash(hash) {
		return &Principal{Scope: store.ScopeAdmin}, nil
	}
	if !apikey.LooksLikeKey(raw) {
		return nil, &invalidKeyError{reason: authMalformed}
	}
	// A key verified less than the cache's TTL ago is taken as read then
	// (keycache.go): revoked elsewhere, it works here at most that long.
	k, cached := a.keyCache.get(hash), true
	if k == nil {
		cached = false
		read := time.Now()
		var err error
		k, err = store.GetAPIKeyByHash(ctx, a.pool, hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &invalidKeyError{reason: authUnknown}
		}
		if err != nil {
			return nil, err
		}
		if k.RevokedAt == nil {
			a.keyCache.put(k, read)
		}
	}
	now := a.now()
	p, err := keyPrincipal(k, now)
	if err != nil {
		return nil, err
	}
	if !cached && (k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUsedResolution) {
		if err := store.TouchAPIKey(ctx, a.pool, k.ID, now); err != nil {
			a.logger.Warn("error recording API key use", zap.String("key_id", k.ID), zap.Error(err))
		}
	}
	return p, nil
}

// isBootstrapHash reports whether hash is the SHA-256 of the configured
// bootstrap admin key (false when none is configured).
func (a *API) isBootstrapHash(hash []byte) bool {
	return a.hasAdmin && subtle.ConstantTimeCompare(hash, a.adminKey[:]) == 1
}

// keyPrincipal is the one rule a stored key is judged by, whoever presents
// it (a Bearer request, a dashboard session on each of its requests): at
// now it acts as its Principal while it is live, and is refused once
// revoked or, rotated, past its grace period (an errInvalidKey).
func keyPrincipal(k *store.APIKey, now time.Time) (*Principal, error) {
	switch {
	case k.Live(now):
	case k.RevokedAt != nil:
		return nil, &invalidKeyError{reason: authRevoked}
	default: // a rotated key past its expires_at
		return nil, &expiredKeyError{at: *k.ExpiresAt}
	}
	p := &Principal{KeyID: k.ID, Scope: k.Scope}
	if k.AccountID != nil {
		p.AccountID = *k.AccountID
	}
	return p, nil
}

// lastUsedResolution: last_used_at is written at most once a minute per key.
const lastUsedResolution = time.Minute

// RequireAdmin guards a handler outside the JSON API (River UI) with the
// admin scope. A browser can't easily send a Bearer header, so besides
// Authorization: Bearer <key> it accepts HTTP Basic authentication with the
// admin key as the password (any username). No key, or an unknown or
// revoked one → 401 with a Basic challenge so browsers prompt; a key of
// another scope → 403.
func (a *API) RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		challenge := `Basic realm="webhookd admin", charset="UTF-8"`
		var raw string
		if scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
			raw = strings.TrimSpace(token)
		} else if _, password, ok := r.BasicAuth(); ok {
			raw = password
		}
		if raw == "" {
			a.refuseKey(w, r, authMissing, func() {
				w.Header().Set("WWW-Authenticate", challenge)
				writeError(w, &Error{Status: http.StatusUnauthorized, Code: "missing_api_key", Field: "Authorization", Message: "the admin API key is required: send Authorization: Bearer <key>, or Basic authentication with the key as the password"})
			})
			return
		}
		p, err := a.authenticate(r.Context(), raw)
		if err != nil {
			if !errors.Is(err, errInvalidKey) {
				a.logger.Error("error looking up API key", zap.Error(err))
				writeError(w, errInternal(err))
				return
			}
			a.refuseKey(w, r, reasonOf(err), func() {
				w.Header().Set("WWW-Authenticate", challenge)
				writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_api_key", Field: "Authorization", Message: invalidKeyMessage(err)})
			})
			return
		}
		if p.Scope != store.ScopeAdmin {
			writeError(w, &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Field: "Authorization", Message: "this API key's scope (" + p.Scope + ") does not allow " + r.URL.Path + ": an admin key is required"})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// routeOf names the route r matched, such as "POST /v1/keys" (its
// pattern, which begins with the method when the route names one).
func routeOf(r *http.Request) string {
	if strings.HasPrefix(r.Pattern, r.Method+" ") {
		return r.Pattern
	}
	return r.Method + " " + r.Pattern
}
