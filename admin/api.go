// Package admin is webhookd's HTTP API: JSON under /v1 behind
// `Authorization: Bearer <key>`, plus unauthenticated health checks. Every
// error has one shape, {"error":{"code","message","field"}}.
package admin

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/mono/webhookd/catalogue"
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/batch"
	"github.com/mono/webhookd/keyring"
	"github.com/mono/webhookd/metrics"
	"github.com/mono/webhookd/outbound"
)

// Body size limits.
const (
	// EventBodyLimit is the largest POST /v1/events body: 256 KiB.
	EventBodyLimit = 256 << 10
	// SmallBodyLimit is the largest body of the other routes: 64 KiB.
	SmallBodyLimit = 64 << 10
)

// Config configures the API.
type Config struct {
	// BootstrapAdminKey is an admin API key accepted as is
	// (WEBHOOKD_BOOTSTRAP_ADMIN_KEY). Empty accepts none.
	BootstrapAdminKey string
	// Policy decides which webhook URLs are accepted. Defaults to the strict
	// policy (no private networks).
	Policy *outbound.Policy
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// BodyBudget bounds the bytes of request bodies read at once
	// (BodyBudgetDefault when 0); a request that finds no room within
	// BodyBudgetWait is answered 503.
	BodyBudget int64
	// Sender makes test sends (POST /v1/webhooks/{id}/test); the server
	// passes its delivery worker. Without one, test sends answer 503.
	Sender Sender
	// Metrics counts deliveries cancelled by deleting their webhook.
	// Optional: nil records nothing.
	Metrics *metrics.Metrics
	// MaxWebhooksPerAccount is the most live webhooks an account may have
	// (WEBHOOKD_MAX_WEBHOOKS_PER_ACCOUNT): one more is 422
	// webhook_limit_reached. Defaults to MaxWebhooksPerAccountDefault (20).
	MaxWebhooksPerAccount int
}

// API serves the HTTP routes.
type API struct {
	pool     *pgxpool.Pool
	enqueuer *dispatcher.Enqueuer
	keys     *keyring.Keyring
	policy   *outbound.Policy
	now      func() time.Time
	logger   *zap.Logger
	metrics  *metrics.Metrics
	sender   Sender
	// maxWebhooks is Config.MaxWebhooksPerAccount, defaulted.
	maxWebhooks int
	bodies   *semaphore.Weighted
	// catalogue validates event data for the types that ask for it.
	catalogue *catalogue.Catalogue
	adminKey  [32]byte
	hasAdmin  bool
	// enqueues batches the events of concurrent POST /v1/events.
	enqueues *batch.Batcher[*dispatcher.Event, enqueued]
}

// New returns the API on pool, accepting events with enqueuer and
// encrypting webhook secrets with keys.
func New(pool *pgxpool.Pool, enqueuer *dispatcher.Enqueuer, keys *keyring.Keyring, cfg *Config) (*API, error) {
	if pool == nil || enqueuer == nil || keys == nil {
		return nil, errors.New("admin.New: pool, enqueuer and keys are required")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	a := &API{pool: pool, enqueuer: enqueuer, keys: keys, policy: cfg.Policy, now: cfg.Now, logger: cfg.Logger, metrics: cfg.Metrics, sender: cfg.Sender, bodies: newBodyBudget(cfg.BodyBudget)}
	a.enqueues = a.newEnqueueBatcher()
	a.maxWebhooks = cmp.Or(max(cfg.MaxWebhooksPerAccount, 0), MaxWebhooksPerAccountDefault)
	if a.policy == nil {
		a.policy = &outbound.Policy{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.logger == nil {
		a.logger = zap.NewNop()
	}
	a.catalogue = catalogue.New(pool, &catalogue.Config{Now: a.now, Logger: a.logger})
	if cfg.BootstrapAdminKey != "" {
		a.adminKey = sha256.Sum256([]byte(cfg.BootstrapAdminKey))
		a.hasAdmin = true
	}
	return a, nil
}

// route is one entry of the API's route list: a method and a path pattern
// of http.ServeMux, the scopes whose keys may call it (nil: no key needed)
// and its handler.
type route struct {
	method  string
	pattern string
	scopes  []string
	handler http.HandlerFunc
}

// routes is every route the API serves, in one list that Handler registers
// and the tests read (the OpenAPI document and the auth matrix must cover
// each).
func (a *API) routes() []route {
	return []route{
		{"GET", "/healthz", nil, a.healthz},
		{"GET", "/readyz", nil, a.readyz},
		{"GET", "/v1/openapi.json", nil, serveOpenAPI},
		{"GET", "/docs", nil, serveDocs},
		{"POST", "/v1/webhooks", scopesAccount, a.createWebhook},
		{"GET", "/v1/webhooks", scopesAccount, a.listWebhooks},
		{"GET", "/v1/webhooks/{id}", scopesAccount, a.getWebhook},
		{"GET", "/v1/webhooks/{id}/secret", scopesAccount, a.revealSecret},
		{"GET", "/v1/webhooks/{id}/health", scopesAccount, a.getWebhookHealth},
		{"PATCH", "/v1/webhooks/{id}", scopesAccount, a.updateWebhook},
		{"DELETE", "/v1/webhooks/{id}", scopesAccount, a.deleteWebhook},
		{"POST", "/v1/webhooks/{id}/test", scopesAccount, a.sendTest},
		{"POST", "/v1/webhooks/{id}/rotate-secret", scopesAccount, a.rotateSecret},
		{"POST", "/v1/events", scopesEvents, a.createEvent},
		{"POST", "/v1/events/batch", scopesEvents, a.createEventBatch},
		{"GET", "/v1/events", scopesAccount, a.findEvent},
		{"GET", "/v1/events/{id}", scopesAccount, a.getEvent},
		{"POST", "/v1/keys", scopesAdmin, a.createKey},
		{"GET", "/v1/keys", scopesAdmin, a.listKeys},
		{"DELETE", "/v1/keys/{id}", scopesAdmin, a.revokeKey},
		{"POST", "/v1/keys/{id}/rotate", scopesAdmin, a.rotateKey},
		{"GET", "/v1/deliveries", scopesAccount, a.listDeliveries},
		{"GET", "/v1/deliveries/{id}", scopesAccount, a.getDelivery},
		{"POST", "/v1/deliveries/{id}/replay", scopesAccount, a.replayDelivery},
		{"POST", "/v1/deliveries/replay", scopesAccount, a.replayDeliveries},
		{"GET", "/v1/replays/{id}", scopesAccount, a.getReplayBatch},
		{"GET", "/v1/event-types", scopesEvents, a.listEventTypes},
		{"GET", "/v1/event-types/{type}", scopesEvents, a.getEventType},
		{"POST", "/v1/event-types", scopesAdmin, a.createEventType},
		{"PATCH", "/v1/event-types/{type}", scopesAdmin, a.updateEventType},
	}
}

// Handler returns every route of routes, each behind auth unless it needs
// no key, and a JSON 404 for anything else.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		var h http.Handler = rt.handler
		if rt.method == http.MethodPost || rt.method == http.MethodPatch {
			h = a.withBodyBudget(bodyLimit(rt), h)
		}
		if rt.scopes != nil {
			h = a.auth(rt.scopes, h.ServeHTTP)
		}
		mux.Handle(rt.method+" "+rt.pattern, h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// No route: let the mux say whether the path exists under another
		// method (405 with Allow) or not at all (404), and answer in JSON.
		probe := &statusProbe{header: http.Header{}}
		mux.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + probe.header.Get("Allow")})
			return
		}
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "route_not_found", Message: "no route " + r.Method + " " + r.URL.Path})
	})
}

// statusProbe records the status the mux would answer, discarding the body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
