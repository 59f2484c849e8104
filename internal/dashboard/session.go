package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/store"
)

// Cookies. Both are HttpOnly, SameSite=Strict, limited to Prefix, and
// Secure when the user's connection is https (see Dashboard.setCookie).
const (
	// sessionCookie holds the session token (its SHA-256 is the row's key).
	sessionCookie = "webhookd_session"
	// signInCookie holds the sign-in form's CSRF token (double submit),
	// before there is a session.
	signInCookie = "webhookd_signin"
)

// session is a signed-in browser: the key it acts as and its CSRF token.
type session struct {
	Principal *admin.Principal
	// CSRF is sent back by every state-changing form.
	CSRF string
	// KeyPrefix is the first characters of the key ("" for the bootstrap
	// admin key), shown in the header.
	KeyPrefix string
	// Portal is a session opened with a portal link: its Principal is the
	// link's account, with the link's id as KeyID.
	Portal    bool
	tokenHash []byte
}

// Admin reports whether the session's key has the admin scope.
func (s *session) Admin() bool { return s.Principal.Scope == store.ScopeAdmin }

// Label names who is signed in, for the header.
func (s *session) Label() string {
	switch {
	case s.Portal:
		return "Account " + s.Principal.AccountID + " · portal link"
	case s.Admin() && s.KeyPrefix == "":
		return "Admin (bootstrap key)"
	case s.Admin():
		return "Admin · " + s.KeyPrefix + "…"
	}
	return "Account " + s.Principal.AccountID + " · " + s.KeyPrefix + "…"
}

// errNoSession means the request has no live session: no cookie, an
// unknown token, an expired session, or a revoked key.
var errNoSession = errors.New("no session")

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// startSession stores a new session for principal p, who signed in with
// API key raw, and returns its token. Expired sessions are removed on the
// way (sign-ins are rare, so this costs nothing that matters).
func (d *Dashboard) startSession(ctx context.Context, p *admin.Principal, raw string) (string, error) {
	now := d.now().UTC()
	token := randomToken()
	var keyID *string
	if !p.Bootstrap() {
		keyID = &p.KeyID
	}
	row := &store.DashboardSession{TokenHash: hashToken(token), KeyID: keyID, KeyHash: apikey.Hash(raw), CSRFToken: randomToken(), CreatedAt: now, ExpiresAt: now.Add(d.ttl)}
	if err := store.InsertDashboardSession(ctx, d.pool, row); err != nil {
		return "", err
	}
	if _, err := store.DeleteExpiredSessions(ctx, d.pool, now); err != nil {
		d.logger.Warn("error removing expired dashboard sessions", zap.Error(err))
	}
	return token, nil
}

// loadSession returns the live session of r's cookie, or errNoSession. A
// session that has ended (expired, or its key revoked or no longer the
// bootstrap key) is deleted.
func (d *Dashboard) loadSession(ctx context.Context, r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, errNoSession
	}
	tokenHash := hashToken(c.Value)
	row, err := store.GetDashboardSession(ctx, d.pool, tokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	now := d.now()
	s := &session{CSRF: row.CSRFToken, tokenHash: tokenHash}
	live := now.Before(row.ExpiresAt)
	switch k := row.Key; {
	case row.PortalLinkID != nil:
		live = live && row.LinkAccountID != nil && row.LinkRevokedAt == nil
		s.Principal = &admin.Principal{KeyID: *row.PortalLinkID, Scope: store.ScopeAccount}
		if row.LinkAccountID != nil {
			s.Principal.AccountID = *row.LinkAccountID
		}
		s.Portal = true
	case row.KeyID == nil:
		live = live && d.api.IsBootstrapKeyHash(row.KeyHash)
		s.Principal = &admin.Principal{Scope: store.ScopeAdmin}
	case k == nil:
		live = false // the key row is gone
	default:
		live = live && k.Live(now) && (k.Scope == store.ScopeAdmin || k.Scope == store.ScopeAccount)
		s.Principal = &admin.Principal{KeyID: k.ID, Scope: k.Scope}
		if k.AccountID != nil {
			s.Principal.AccountID = *k.AccountID
		}
		s.KeyPrefix = k.Prefix
	}
	if !live {
		if err := store.DeleteDashboardSession(ctx, d.pool, tokenHash); err != nil {
			d.logger.Warn("error deleting ended dashboard session", zap.Error(err))
		}
		return nil, errNoSession
	}
	return s, nil
}

// setCookie sets (or with maxAge < 0, clears) one of the dashboard's
// cookies, Secure when the user's connection is https (TLS, an https
// WEBHOOKD_PUBLIC_URL, or a trusted proxy's X-Forwarded-Proto). When the
// dashboard may be framed (WEBHOOKD_PORTAL_FRAME_ANCESTORS, which needs
// an https public URL) they are SameSite=None; Secure; Partitioned, so
// that a browser sends them inside the product's frame (in that frame's
// own partition); the CSRF token and Origin checks still guard every form.
func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     Prefix,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   d.trust.Secure(r),
		SameSite: http.SameSiteStrictMode,
	}
	if len(d.frameAncestors) > 0 {
		c.Secure, c.SameSite, c.Partitioned = true, http.SameSiteNoneMode, true
	}
	http.SetCookie(w, c)
}

// auth requires a live session and, for anything but GET, a same-origin
// request carrying the session's CSRF token. Without a session a request
// is sent to sign in (coming back here afterwards for a GET).
func (d *Dashboard) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := d.loadSession(r.Context(), r)
		if err != nil {
			if !errors.Is(err, errNoSession) {
				d.logger.Error("error loading dashboard session", zap.Error(err))
				d.serverError(w, r)
				return
			}
			target := Prefix + "/signin"
			if _, err := r.Cookie(sessionCookie); err == nil {
				// There was a session, and it has ended.
				d.setCookie(w, r, sessionCookie, "", -1)
				target += "?ended=1"
			}
			if r.Method == http.MethodGet {
				sep := "?"
				if strings.Contains(target, "?") {
					sep = "&"
				}
				target += sep + "next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		// One page, however many API calls it makes, is one request
		// against the key's management budget.
		ctx := admin.WithPage(context.WithValue(r.Context(), sessionKey{}, s))
		r = r.WithContext(ctx)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !d.sameOrigin(r) || !d.parseForm(w, r) || !tokensEqual(r.PostFormValue("csrf"), s.CSRF) {
				d.forbidden(w, r)
				return
			}
		}
		next(w, r)
	})
}

// parseForm reads a form body of at most formLimit bytes.
func (d *Dashboard) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, formLimit)
	return r.ParseForm() == nil
}

func tokensEqual(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin refuses a request a browser marks as coming from another
// site, or whose Origin is neither this host nor WEBHOOKD_PUBLIC_URL's
// origin: a second line behind the CSRF token and the SameSite=Strict
// cookie.
func (d *Dashboard) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return origin == ""
	}
	return d.trust.SameOrigin(origin, r)
}

// safeNext is where to go after signing in: a dashboard path given by the
// sign-in link, or the Webhooks page. Anything that could leave the
// dashboard is ignored.
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix+"/") && !strings.HasPrefix(next, Prefix+"/signin") &&
		!strings.ContainsAny(next, "\\\r\n") && !strings.Contains(next, "//") && !strings.Contains(next, "/.") {
		return next
	}
	return Prefix + "/settings/personal/api"
}

type signInData struct {
	Token string
	Next  string
	Error string
}

func (d *Dashboard) signInPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, err := d.loadSession(r.Context(), r); err == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	v := &view{Title: "Sign in"}
	switch {
	case r.URL.Query().Get("ended") != "":
		v.Notice = "Your session has ended (it expired, you signed out, or its API key was revoked). Sign in again."
	case r.URL.Query().Get("signedout") != "":
		v.Notice = "You have signed out."
	}
	d.renderSignIn(w, r, http.StatusOK, v, next, "")
}

// renderSignIn shows the sign-in form with a fresh double-submit token.
func (d *Dashboard) renderSignIn(w http.ResponseWriter, r *http.Request, status int, v *view, next, errMsg string) {
	token := randomToken()
	d.setCookie(w, r, signInCookie, token, 3600)
	v.Data = &signInData{Token: token, Next: next, Error: errMsg}
	d.render(w, r, status, "signin", v)
}

func (d *Dashboard) signIn(w http.ResponseWriter, r *http.Request) {
	if !d.sameOrigin(r) || !d.parseForm(w, r) {
		d.forbidden(w, r)
		return
	}
	c, err := r.Cookie(signInCookie)
	if err != nil || !tokensEqual(r.PostFormValue("csrf"), c.Value) {
		d.forbidden(w, r)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	raw := strings.TrimSpace(r.PostFormValue("key"))
	v := &view{Title: "Sign in"}
	if raw == "" {
		d.renderSignIn(w, r, http.StatusUnprocessableEntity, v, next, "Enter an API key.")
		return
	}
	p, err := d.api.Authenticate(r.Context(), raw)
	switch {
	case errors.Is(err, admin.ErrInvalidKey):
		// Counted, logged (within limits) and throttled as the API's
		// failed keys are.
		if blocked := d.api.SignInFailed(r, err); blocked > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((blocked+time.Second-1)/time.Second)))
			d.renderSignIn(w, r, http.StatusTooManyRequests, v, next, "Too many invalid keys from this address: try again in a minute. A valid key still signs in.")
			return
		}
		d.renderSignIn(w, r, http.StatusUnauthorized, v, next, "This API key is not valid (unknown or revoked).")
		return
	case err != nil:
		d.logger.Error("error authenticating dashboard sign-in", zap.Error(err))
		d.serverError(w, r)
		return
	case p.Scope != store.ScopeAdmin && p.Scope != store.ScopeAccount:
		d.renderSignIn(w, r, http.StatusForbidden, v, next, "This key's scope ("+p.Scope+") can't sign in: use an account or admin key.")
		return
	}
	token, err := d.startSession(r.Context(), p, raw)
	if err != nil {
		d.logger.Error("error starting dashboard session", zap.Error(err))
		d.serverError(w, r)
		return
	}
	d.logger.Info("dashboard sign-in", zap.String("key_id", keyName(p)), zap.String("scope", p.Scope), zap.String("account_id", p.AccountID),
		zap.Stringer("client_ip", d.trust.ClientIP(r)))
	d.setCookie(w, r, signInCookie, "", -1)
	d.setCookie(w, r, sessionCookie, token, int(d.ttl/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) signOut(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	if err := store.DeleteDashboardSession(r.Context(), d.pool, s.tokenHash); err != nil {
		d.logger.Error("error deleting dashboard session", zap.Error(err))
		d.serverError(w, r)
		return
	}
	d.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, Prefix+"/signin?signedout=1", http.StatusSeeOther)
}

// keyName names a key in logs: its id, or "bootstrap".
func keyName(p *admin.Principal) string {
	if p.Bootstrap() {
		return "bootstrap"
	}
	return p.KeyID
}
