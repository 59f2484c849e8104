package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
)

// Cookies. Both are HttpOnly, SameSite=Strict, limited to Prefix, and
// Secure when the user's connection is https (see Dashboard.setCookie).
const (
	// sessionCookie holds the session's token (admin.SessionStarted.Token).
	sessionCookie = "webhookd_session"
	// signInCookie holds the sign-in form's CSRF token (double submit),
	// before there is a session.
	signInCookie = "webhookd_signin"
)

// session is a signed-in browser (admin.API.Session): the key it acts as
// and its CSRF token.
type session struct {
	*admin.Session
	// token is the cookie's value, which names the session.
	token string
}

// Admin reports whether the session's key has the admin scope.
func (s *session) Admin() bool { return s.Principal.Scope == apitype.ScopeAdmin }

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

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// loadSession returns the live session of r's cookie: an *apiError of
// status 401 when there is none (no cookie, or admin.ErrNoSession: the
// session has ended, and is deleted).
func (d *Dashboard) loadSession(r *http.Request) (*session, *apiError) {
	var token string
	if c, err := r.Cookie(sessionCookie); err == nil {
		token = c.Value
	}
	s, err := d.api.Session(r.Context(), &admin.SessionRequest{Token: token})
	if err != nil {
		return nil, opError(err)
	}
	return &session{Session: s, token: token}, nil
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
		s, e := d.loadSession(r)
		if e != nil {
			if e.Status != http.StatusUnauthorized {
				d.serverError(w, r) // logged by the operation
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
	if _, e := d.loadSession(r); e == nil {
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

// renderSignIn shows the sign-in form with a fresh double-submit token
// (rand.Text: 128 random bits).
func (d *Dashboard) renderSignIn(w http.ResponseWriter, r *http.Request, status int, v *view, next, errMsg string) {
	token := rand.Text()
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
	started, err := d.api.SignIn(r.Context(), &admin.SignInRequest{Key: strings.TrimSpace(r.PostFormValue("key")), ClientAddr: d.trust.ClientIP(r), TTL: d.ttl})
	if err != nil {
		// Refused keys are counted, logged (within limits) and throttled
		// as the API's failed keys are, by the operation.
		e := opError(err)
		if e.Status >= 500 {
			d.serverError(w, r)
			return
		}
		if e.RetryAfter != "" {
			w.Header().Set("Retry-After", e.RetryAfter)
		}
		d.renderSignIn(w, r, e.Status, &view{Title: "Sign in"}, next, e.Message)
		return
	}
	d.setCookie(w, r, signInCookie, "", -1)
	d.setCookie(w, r, sessionCookie, started.Token, int(d.ttl/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) signOut(w http.ResponseWriter, r *http.Request) {
	if _, err := d.api.SignOut(r.Context(), &admin.SessionRequest{Token: sessionFrom(r.Context()).token}); err != nil {
		d.serverError(w, r) // logged by the operation
		return
	}
	d.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, Prefix+"/signin?signedout=1", http.StatusSeeOther)
}
