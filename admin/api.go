// Package admin is webhookd's HTTP API: JSON under /v1 behind
// `Authorization: Bearer <key>`, plus unauthenticated health checks. Every
// error has one shape, {"error":{"code","message","field"}}.
package admin

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/keyring"
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
}

// API serves the HTTP routes.
type API struct {
	pool     *pgxpool.Pool
	enqueuer *dispatcher.Enqueuer
	keys     *keyring.Keyring
	policy   *outbound.Policy
	now      func() time.Time
	logger   *zap.Logger
	adminKey [32]byte
	hasAdmin bool
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
	a := &API{pool: pool, enqueuer: enqueuer, keys: keys, policy: cfg.Policy, now: cfg.Now, logger: cfg.Logger}
	if a.policy == nil {
		a.policy = &outbound.Policy{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.logger == nil {
		a.logger = zap.NewNop()
	}
	if cfg.BootstrapAdminKey != "" {
		a.adminKey = sha256.Sum256([]byte(cfg.BootstrapAdminKey))
		a.hasAdmin = true
	}
	return a, nil
}

// Handler returns every route, registered in one list.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("POST /v1/webhooks", a.auth(scopesAccount, a.createWebhook))
	mux.Handle("GET /v1/webhooks", a.auth(scopesAccount, a.listWebhooks))
	mux.Handle("GET /v1/webhooks/{id}", a.auth(scopesAccount, a.getWebhook))
	mux.Handle("GET /v1/webhooks/{id}/secret", a.auth(scopesAccount, a.revealSecret))
	mux.Handle("PATCH /v1/webhooks/{id}", a.auth(scopesAccount, a.updateWebhook))
	mux.Handle("DELETE /v1/webhooks/{id}", a.auth(scopesAccount, a.deleteWebhook))
	mux.Handle("POST /v1/events", a.auth(scopesEvents, a.createEvent))
	mux.Handle("POST /v1/events/batch", a.auth(scopesEvents, a.createEventBatch))
	mux.Handle("GET /v1/events", a.auth(scopesAccount, a.findEvent))
	mux.Handle("GET /v1/events/{id}", a.auth(scopesAccount, a.getEvent))
	mux.Handle("POST /v1/keys", a.auth(scopesAdmin, a.createKey))
	mux.Handle("GET /v1/keys", a.auth(scopesAdmin, a.listKeys))
	mux.Handle("DELETE /v1/keys/{id}", a.auth(scopesAdmin, a.revokeKey))
	mux.Handle("GET /v1/deliveries", a.auth(scopesAccount, a.listDeliveries))
	mux.Handle("GET /v1/deliveries/{id}", a.auth(scopesAccount, a.getDelivery))
	mux.Handle("POST /v1/deliveries/{id}/replay", a.auth(scopesAccount, a.replayDelivery))
	mux.Handle("POST /v1/deliveries/replay", a.auth(scopesAccount, a.replayDeliveries))
	mux.Handle("GET /v1/replays/{id}", a.auth(scopesAccount, a.getReplayBatch))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "route_not_found", Message: "no route " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
