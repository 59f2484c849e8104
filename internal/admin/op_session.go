package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/store"
)

// Dashboard sessions as operations: a browser signs in to the dashboard
// (package dashboard) with an API key (SignIn) or a portal link
// (OpenPortalSession); each of its requests finds who its session acts as
// (Session); it signs out (SignOut). A session is a dashboard_sessions row
// (store/session.go) keyed by the SHA-256 of its token, the cookie's value,
// which is never stored. These operations authenticate: they take no
// Principal and charge no budget, and return the Principal that the
// operations called next act as. A session's key is judged on every
// request by the rule the API's Bearer authentication uses (keyPrincipal):
// revoked, or rotated past its grace period, it ends the session.

// sessionScopes are the scopes whose keys may sign in to the dashboard.
var sessionScopes = scopesAccount

// ErrNoSession means a session token opens no session: unknown, expired,
// signed out, or its key or portal link revoked. It is the cause of
// Session's 401 (errors.Is).
var ErrNoSession = errors.New("no dashboard session")

// SignInRequest signs in with an API key.
type SignInRequest struct {
	// Key is the API key as typed (trimmed).
	Key string
	// ClientAddr is the browser's address, by which failed keys are
	// throttled as the API's are (the zero Addr: unknown).
	ClientAddr netip.Addr
	// TTL is how long the session lasts.
	TTL time.Duration
}

// SessionStarted is a session just opened.
type SessionStarted struct {
	// Token is the session's token, for the browser's cookie.
	Token string
	// Principal is who the session acts as.
	Principal *Principal
}

// SessionRequest names a session by its token (the cookie's value).
type SessionRequest struct {
	Token string
}

// Session is a live session.
type Session struct {
	// Principal is who it acts as: its key, or for a portal link's session
	// the link's account (scope account) with the link's id as KeyID.
	Principal *Principal
	// CSRF is the token every state-changing form of the session sends.
	CSRF string
	// KeyPrefix is the key's first characters ("" for the bootstrap admin
	// key and a portal link).
	KeyPrefix string
	// Portal says the session was opened with a portal link.
	Portal bool
}

// PortalSessionRequest opens a session with a portal link.
type PortalSessionRequest struct {
	// LinkToken is the link's token (the path's last segment).
	LinkToken string
	// Use is who uses the link, recorded with it.
	Use PortalLinkUse
	// TTL is how long the session lasts (whatever the link's lifetime).
	TTL time.Duration
	// Replaces is the token of the browser's session before, if any: it is
	// ended once the new one is open.
	Replaces string
}

// signInRefused is the sign-in's answer to a key refused for err (an
// errInvalidKey) from addr: 401, or 429 with RetryAfter once the address
// has failed too often. The failure is counted and logged as the API's
// are.
func (a *API) signInRefused(addr netip.Addr, err error) *Error {
	if blocked := a.keyFailed(addr, reasonOf(err)); blocked > 0 {
		return &Error{Status: http.StatusTooManyRequests, Code: "auth_throttled", Field: "key", RetryAfter: blocked,
			Message: "Too many invalid keys from this address: try again in a minute. A valid key still signs in."}
	}
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_api_key", Field: "key", Message: "This API key is not valid (unknown or revoked)."}
}

// SignIn opens a session for API key req.Key, authenticated exactly as
// the API's Bearer authentication does (the bootstrap admin key included,
// the key's use recorded). An empty key is 422; an unknown, revoked or
// expired key 401, counted and throttled per client address as the API's
// failed keys are (429 with RetryAfter: a valid key still signs in); a
// key of another scope than admin or account 403. Expired sessions are
// deleted on the way (sign-ins are rare, so this costs nothing that
// matters).
func (a *API) SignIn(ctx context.Context, req *SignInRequest) (*SessionStarted, error) {
	if req.Key == "" {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_api_key", Field: "key", Message: "Enter an API key."}
	}
	p, err := a.authenticate(ctx, req.Key)
	switch {
	case errors.Is(err, errInvalidKey):
		return nil, a.signInRefused(req.ClientAddr, err)
	case err != nil:
		return nil, a.internal("error authenticating dashboard sign-in", err)
	case !slices.Contains(sessionScopes, p.Scope):
		return nil, &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Field: "key",
			Message: "This key's scope (" + p.Scope + ") can't sign in: use an account or admin key."}
	}
	now := a.now().UTC()
	row := &store.DashboardSession{KeyHash: apikey.Hash(req.Key)}
	if !p.Bootstrap() {
		row.KeyID = &p.KeyID
	}
	token := newSession(row, now, req.TTL)
	if err := store.InsertDashboardSession(ctx, a.pool, row); err != nil {
		return nil, a.internal("error starting dashboard session", err, zap.String("key_id", keyName(p)))
	}
	if _, err := store.DeleteExpiredSessions(ctx, a.pool, now); err != nil {
		a.logger.Warn("error removing expired dashboard sessions", zap.Error(err))
	}
	fields := []zap.Field{zap.String("key_id", keyName(p)), zap.String("scope", p.Scope), zap.String("account_id", p.AccountID)}
	if req.ClientAddr.IsValid() {
		fields = append(fields, zap.Stringer("client_ip", req.ClientAddr))
	}
	a.logger.Info("dashboard sign-in", fields...)
	return &SessionStarted{Token: token, Principal: p}, nil
}

// Session is the live session of req.Token. A token that opens none is
// 401 with cause ErrNoSession; a session that has ended (expired, its key
// revoked or rotated past its grace period, its portal link revoked, or
// the bootstrap key changed) is deleted on the way.
func (a *API) Session(ctx context.Context, req *SessionRequest) (*Session, error) {
	if req.Token == "" {
		return nil, errNoSession()
	}
	tokenHash := hashToken(req.Token)
	row, err := store.GetDashboardSession(ctx, a.pool, tokenHash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errNoSession()
	case err != nil:
		return nil, a.internal("error loading dashboard session", err)
	}
	s, live := a.judgeSession(row, a.now())
	if !live {
		if err := store.DeleteDashboardSession(ctx, a.pool, tokenHash); err != nil {
			a.logger.Warn("error deleting ended dashboard session", zap.Error(err))
		}
		return nil, errNoSession()
	}
	return s, nil
}

// judgeSession is row's session at now, and whether it is live.
func (a *API) judgeSession(row *store.DashboardSession, now time.Time) (*Session, bool) {
	s := &Session{CSRF: row.CSRFToken}
	live := now.Before(row.ExpiresAt)
	switch k := row.Key; {
	case row.PortalLinkID != nil:
		s.Portal = true
		s.Principal = &Principal{KeyID: *row.PortalLinkID, Scope: store.ScopeAccount}
		if row.LinkAccountID == nil || row.LinkRevokedAt != nil {
			return s, false
		}
		s.Principal.AccountID = *row.LinkAccountID
	case row.KeyID == nil:
		s.Principal = &Principal{Scope: store.ScopeAdmin}
		live = live && a.isBootstrapHash(row.KeyHash)
	case k == nil:
		return s, false // the key row is gone
	default:
		p, err := keyPrincipal(k, now)
		if err != nil || !slices.Contains(sessionScopes, p.Scope) {
			return s, false
		}
		s.Principal, s.KeyPrefix = p, k.Prefix
	}
	return s, live
}

// errNoSession is Session's 401.
func errNoSession() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "no_session", Message: "no live dashboard session: sign in", cause: ErrNoSession}
}

// SignOut ends the session of req.Token (none is not an error).
func (a *API) SignOut(ctx context.Context, req *SessionRequest) (*NoContent, error) {
	if err := store.DeleteDashboardSession(ctx, a.pool, hashToken(req.Token)); err != nil {
		return nil, a.internal("error deleting dashboard session", err)
	}
	return &NoContent{}, nil
}

// OpenPortalSession uses the portal link of req.LinkToken, once, and
// opens a session for its account: the link is used if and only if the
// session exists (one transaction, openPortalLink). A link that can't be
// used is 401 with the reason's message and the *PortalLinkError as cause,
// and nothing changes. The session of req.Replaces, if any, ends.
func (a *API) OpenPortalSession(ctx context.Context, req *PortalSessionRequest) (*SessionStarted, error) {
	now := a.now().UTC()
	var (
		token string
		p     *Principal
	)
	_, err := a.openPortalLink(ctx, req.LinkToken, &req.Use, func(tx pgx.Tx, link *store.PortalLink) error {
		row := &store.DashboardSession{PortalLinkID: &link.ID, KeyHash: link.TokenHash}
		token = newSession(row, now, req.TTL)
		p = &Principal{KeyID: link.ID, Scope: store.ScopeAccount, AccountID: link.AccountID}
		return store.InsertDashboardSession(ctx, tx, row)
	})
	var refused *PortalLinkError
	switch {
	case errors.As(err, &refused):
		return nil, &Error{Status: http.StatusUnauthorized, Code: "portal_link_" + refused.Reason, Message: portalRefusals[refused.Reason], cause: refused}
	case err != nil:
		return nil, a.internal("error opening a portal link", err)
	}
	if req.Replaces != "" {
		if err := store.DeleteDashboardSession(ctx, a.pool, hashToken(req.Replaces)); err != nil {
			a.logger.Warn("error deleting the session a portal link replaced", zap.Error(err))
		}
	}
	return &SessionStarted{Token: token, Principal: p}, nil
}

// portalRefusals is what the sign-in page says for each refused link.
var portalRefusals = map[string]string{
	PortalLinkUnknown: "This sign-in link is not valid. Open Webhooks again from your product to get a new one, or sign in with an API key.",
	PortalLinkUsed:    "This sign-in link was already used: each link works once. Open Webhooks again from your product to get a new one.",
	PortalLinkExpired: "This sign-in link has expired. Open Webhooks again from your product to get a new one.",
	PortalLinkRevoked: "This sign-in link was revoked. Open Webhooks again from your product to get a new one.",
}

// newSession fills row as a session created at now lasting ttl, with a
// new token (returned) and CSRF token.
func newSession(row *store.DashboardSession, now time.Time, ttl time.Duration) string {
	token := randomToken()
	row.TokenHash, row.CSRFToken, row.CreatedAt, row.ExpiresAt = hashToken(token), randomToken(), now, now.Add(ttl)
	return token
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is the SHA-256 of a session's token, the row's key: hashed as
// keys and portal links' tokens are.
func hashToken(token string) []byte { return apikey.Hash(token) }
