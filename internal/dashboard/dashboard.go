// Package dashboard is webhookd's web dashboard at /dashboard: the Webhooks
// section of Settings › Personal › API (list, create, detail with the
// secret behind an eye, custom headers, send a test event, rotate the
// secret, the event-type filter, pause and resume, the endpoint's health,
// delete), each webhook's recent deliveries and their attempts with replay,
// the event catalogue, and for admin keys the dead deliveries of every
// account with bulk replay and Settings › API keys.
//
// It is served by the API process from embedded templates (html/template,
// so everything shown is escaped) and embedded CSS and JavaScript; there is
// no front-end build and nothing is loaded from another origin.
//
// The dashboard calls only the API's typed operations (package admin); it
// holds no database pool and reads no table itself. A user signs in with
// an API key of account or admin scope (admin.API.SignIn, which
// authenticates and throttles failed keys as the API does) or a portal
// link (OpenPortalSession); the session lives in PostgreSQL, so any
// replica serves it, and each request finds who it acts as through
// Session, which ends it once its key is revoked or past a rotation's
// grace period (the API's rule). Every page then calls the operations as
// that principal (d.api.X, its calls on one page counted once:
// admin.WithPage), the attempts of a listed page included
// (ListDeliveryAttempts), so the dashboard validates, stores and words
// errors exactly as the JSON API does. What is its own: the pages, the
// cookies, the CSRF token checks (the sign-in form's double-submit token,
// then the session's) and the same-origin checks.
package dashboard

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/forwarded"
)

// Prefix is where the dashboard is mounted.
const Prefix = "/dashboard"

// Defaults.
const (
	// SessionTTLDefault is how long a session lasts after signing in.
	SessionTTLDefault = 12 * time.Hour
	// DeliveriesPageDefault is how many deliveries a page lists.
	DeliveriesPageDefault = 25
	// WebhooksPageDefault is how many webhooks the Webhooks page lists.
	WebhooksPageDefault = 50
	// ExcerptShown is how much of a response excerpt (stored up to 4 KiB)
	// the deliveries list shows.
	ExcerptShown = 1024
	// formLimit is the largest form body accepted.
	formLimit = 64 << 10
)

// Config configures the dashboard.
type Config struct {
	// SessionTTL is how long a session lasts after signing in. Defaults to
	// 12h.
	SessionTTL time.Duration
	// Now is the clock of what pages show (whether a listed key has
	// expired). Defaults to time.Now. Sessions are timed by the API's
	// clock (admin.Config.Now), whose operations keep them.
	Now func() time.Time
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Trust is what WEBHOOKD_PUBLIC_URL and WEBHOOKD_TRUSTED_PROXIES say
	// about the front door: when cookies are Secure, which Origin is
	// ours, the client's address in logs. Nil believes no forwarded
	// header.
	Trust *forwarded.Trust
	// FrameAncestors are the origins whose pages may show the dashboard in
	// a frame (WEBHOOKD_PORTAL_FRAME_ANCESTORS, see ParseFrameAncestors).
	// With any, the CSP's frame-ancestors lists them and the cookies are
	// SameSite=None; Secure, so Trust's public URL must be https. Empty
	// by default: no framing.
	FrameAncestors []string
}

// Dashboard serves /dashboard.
type Dashboard struct {
	api    *admin.API
	ttl    time.Duration
	now    func() time.Time
	logger *zap.Logger
	pages  *pages
	trust  *forwarded.Trust
	// frameAncestors is Config.FrameAncestors.
	frameAncestors []string
}

// New returns the dashboard, acting through api's operations.
func New(api *admin.API, cfg *Config) (*Dashboard, error) {
	if api == nil {
		return nil, errors.New("dashboard.New: api is required")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.SessionTTL < 0 {
		return nil, errors.New("dashboard.New: SessionTTL must not be negative")
	}
	for _, o := range cfg.FrameAncestors {
		if checked, err := frameAncestor(o); err != nil || checked != o {
			return nil, fmt.Errorf("dashboard.New: FrameAncestors: %q is not an origin as ParseFrameAncestors returns it", o)
		}
	}
	if len(cfg.FrameAncestors) > 0 && (cfg.Trust == nil || cfg.Trust.PublicURL == nil || cfg.Trust.PublicURL.Scheme != "https") {
		return nil, errors.New("dashboard.New: FrameAncestors needs Trust.PublicURL to be https (the framed session cookie is SameSite=None; Secure)")
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	d := &Dashboard{
		api:    api,
		ttl:    cmp.Or(cfg.SessionTTL, SessionTTLDefault),
		now:    cfg.Now,
		logger: cfg.Logger,
		pages:  pg,
		trust:  cfg.Trust,
		// A copy: the caller's slice is not ours.
		frameAncestors: append([]string(nil), cfg.FrameAncestors...),
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.logger == nil {
		d.logger = zap.NewNop()
	}
	return d, nil
}

// Handler returns every dashboard route; mount it at Prefix + "/".
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	// Every route, in one list: the public ones, then those behind a session
	// (d.auth), which for POST also check the CSRF token.
	mux.Handle("GET /dashboard/static/", staticHandler())
	mux.HandleFunc("GET /dashboard/signin", d.signInPage)
	mux.HandleFunc("POST /dashboard/signin", d.signIn)
	mux.HandleFunc("GET /dashboard/portal/{token}", d.openPortalLink)
	mux.Handle("POST /dashboard/signout", d.auth(d.signOut))

	mux.Handle("GET /dashboard/{$}", d.auth(d.home))
	mux.Handle("GET /dashboard/settings", d.auth(d.settings))
	mux.Handle("GET /dashboard/settings/personal", d.auth(d.personal))
	mux.Handle("GET /dashboard/settings/personal/api", d.auth(d.webhooks))
	mux.Handle("GET /dashboard/settings/personal/api/new", d.auth(d.newWebhook))
	mux.Handle("POST /dashboard/settings/personal/api/new", d.auth(d.createWebhook))
	mux.Handle("GET /dashboard/webhooks/{id}", d.auth(d.webhook))
	mux.Handle("POST /dashboard/webhooks/{id}/secret", d.auth(d.revealSecret))
	mux.Handle("GET /dashboard/webhooks/{id}/delete", d.auth(d.confirmDelete))
	mux.Handle("POST /dashboard/webhooks/{id}/delete", d.auth(d.deleteWebhook))
	mux.Handle("POST /dashboard/webhooks/{id}/test", d.auth(d.sendTest))
	mux.Handle("POST /dashboard/webhooks/{id}/headers", d.auth(d.setHeaders))
	mux.Handle("POST /dashboard/webhooks/{id}/tls", d.auth(d.setTLS))
	mux.Handle("POST /dashboard/webhooks/{id}/oauth", d.auth(d.setOAuth))
	mux.Handle("POST /dashboard/webhooks/{id}/delivery", d.auth(d.setDelivery))
	mux.Handle("POST /dashboard/webhooks/{id}/rotate-secret", d.auth(d.rotateSecret))
	mux.Handle("POST /dashboard/webhooks/{id}/event-types", d.auth(d.setEventTypes))
	mux.Handle("GET /dashboard/webhooks/{id}/pause", d.auth(d.confirmPause))
	mux.Handle("POST /dashboard/webhooks/{id}/pause", d.auth(d.pauseWebhook))
	mux.Handle("POST /dashboard/webhooks/{id}/resume", d.auth(d.resumeWebhook))
	mux.Handle("GET /dashboard/webhooks/{id}/fifo/skip", d.auth(d.confirmFIFOSkip))
	mux.Handle("POST /dashboard/webhooks/{id}/fifo/skip", d.auth(d.skipFIFOHead))
	mux.Handle("POST /dashboard/deliveries/{id}/replay", d.auth(d.replayDelivery))
	mux.Handle("GET /dashboard/dead", d.auth(d.dead))
	mux.Handle("GET /dashboard/dead/replay", d.auth(d.confirmBulkReplay))
	mux.Handle("POST /dashboard/dead/replay", d.auth(d.bulkReplay))
	mux.Handle("GET /dashboard/replays/{id}", d.auth(d.replayBatch))
	mux.Handle("GET /dashboard/event-types", d.auth(d.eventTypesPage))
	mux.Handle("GET /dashboard/settings/keys", d.auth(d.keysPage))
	mux.Handle("POST /dashboard/settings/keys", d.auth(d.createKey))
	mux.Handle("POST /dashboard/settings/keys/{id}/revoke", d.auth(d.revokeKey))
	mux.Handle("POST /dashboard/settings/keys/{id}/rotate", d.auth(d.rotateKey))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w, d.frameAncestors)
		if _, pattern := mux.Handler(r); pattern == "" {
			d.auth(d.notFound).ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// securityHeaders: nothing from another origin, no framing (but by the
// frameAncestors origins when there are any), no sniffing, and pages are
// never cached (they show account data).
func securityHeaders(w http.ResponseWriter, frameAncestors []string) {
	h := w.Header()
	ancestors := "'none'"
	if len(frameAncestors) > 0 {
		ancestors = strings.Join(frameAncestors, " ")
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors "+ancestors+"; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	if len(frameAncestors) == 0 {
		// X-Frame-Options can't name an origin; CSP's frame-ancestors
		// decides when framing is allowed.
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("Referrer-Policy", "same-origin")
}
