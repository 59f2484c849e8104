// Package admin is webhookd's HTTP API: JSON under /v1 behind
// `Authorization: Bearer <key>`, plus unauthenticated health checks. Every
// error has one shape, {"error":{"code","message","field"}}: an *Error.
//
// # Typed operations
//
// The API is being moved (issue 22) onto typed operations: methods of
// *API of the shape
//
//	func (a *API) CreateKey(ctx context.Context, p *Principal, req *apitype.KeyCreate) (*apitype.Key, error)
//
// that the JSON API, the dashboard and the CLI all call, so that every
// caller gets the same rules and messages. They are methods on *API
// rather than on a separate Service type because the rules they need
// (the key cache, the rate limiter, the catalogue, the clock, the logger)
// already live on it, and a second type would split or copy them; the
// HTTP plumbing around them (auth, body budget, spans) stays in
// middleware. The CLI, which has no enqueuer or keyring, gets an *API
// from NewOperator and calls as OperatorPrincipal.
//
// An operation decides everything about its caller itself:
//   - admit first: the principal's scope against the operation's opSpec
//     (403 insufficient_scope) and the per-key management rate limit (429
//     rate_limited; a dashboard page's calls, WithPage, count once);
//   - account binding on what it loads: another account's object is 404,
//     as if it did not exist (Principal.CanAccess, errNotFound);
//   - every refusal is an *Error; an unexpected error is logged once,
//     by the operation, and returned as errInternal (500, or 503 with
//     Retry-After when the database is away) through a.internal, its
//     cause kept for errors.Is/As by callers in process.
//
// Authentication (the Bearer key → Principal) stays HTTP middleware
// (auth). The dashboard's sessions are operations that take no principal
// but return one (op_session.go: SignIn, Session, SignOut,
// OpenPortalSession), judging a key by auth's own rule (keyPrincipal). On the HTTP path, admitting runs the operation's admit before
// the body is read, so refusals come in the order they always have (401,
// 403, 429, then the body's 4xx), and marks the request so that the
// operation does not charge twice.
//
// # Adding an operation (the recipe; keys.go is the worked example)
//
//  1. Types: the request and answer in apitype (stdlib only, json tags as
//     on the wire). A path parameter is a field tagged `json:"-"` when
//     the body has a type already (apitype.KeyRotate.ID), or the type's
//     own field when there is no body (apitype.KeyRevoke). Reuse existing
//     types; answer NoContent for a 204.
//  2. Spec: var opX = &opSpec{route: "METHOD /v1/pattern", scopes: …,
//     budget: budgetManagement} beside the operation.
//  3. Operation: func (a *API) X(ctx, p *Principal, req *apitype.XRequest)
//     (*apitype.XAnswer, error): `if e := a.admit(ctx, p, opX); e != nil
//     { return nil, e }`, then validate req (ids with checkID, pages with
//     pageOf — a direct caller skips the HTTP decoder), act, and return
//     *Error for every refusal and a.internal(msg, err, fields…) for the
//     unexpected. Log as the handler did, naming keyName(p).
//  4. Decoder: func decodeX(w, r, req *apitype.XRequest) *Error reading
//     path (pathID), query (queryParams/listQuery) and body (decodeJSON,
//     or decodeBody[T] for a plain body) in the order the old handler
//     did, so that the same input gets the same first error.
//  5. Route: replace the route's entry in routes with
//     opRoute(opX, handle(a, status, decodeX, a.X)). Handler then
//     authenticates only and lets admitting/admit check scope and rate.
//  6. Callers: the dashboard calls d.api.X(r.Context(), s.Principal, req)
//     and shows opError(err); the CLI calls it with OperatorPrincipal.
//     Delete the old handler.
//  7. Tests: the route's HTTP tests and authmatrix_test.go must pass
//     unchanged; add a direct call test (ops_test.go) for the rules.
package admin

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/sync/semaphore"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/batch"
	"github.com/mono/webhookd/internal/catalogue"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/forwarded"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/outbound"
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
	// ManagementRate is the budget of each account and events:write key on
	// the management routes (every route but event intake, health and
	// docs), per process (WEBHOOKD_RATE_LIMIT_MANAGEMENT). Over it: 429
	// rate_limited with Retry-After. Defaults to ManagementRateDefault (50
	// requests a second, burst 100); RateOff is no limit.
	ManagementRate Rate
	// ManagementRateAdmin is the same budget of each admin key
	// (WEBHOOKD_RATE_LIMIT_MANAGEMENT_ADMIN). Defaults to
	// ManagementRateAdminDefault: no limit.
	ManagementRateAdmin Rate
	// IntakeRateAccount, IntakeRateAdmin and IntakeRateEventsWrite are the
	// event-intake budgets (POST /v1/events and /v1/events/batch) of each
	// key of that scope, per process, counted in events: a batch of 1,000
	// takes 1,000 (WEBHOOKD_RATE_LIMIT_INTAKE_ACCOUNT, _ADMIN,
	// _EVENTS_WRITE). Default to IntakeRateDefault: no limit.
	IntakeRateAccount     Rate
	IntakeRateAdmin       Rate
	IntakeRateEventsWrite Rate
	// AuthFailureLimit is how many failed API keys one client address (an
	// IPv6 address by its /64) may present within AuthFailureWindow; its
	// further requests with a failing key are answered 429 auth_throttled
	// for AuthFailureBlock, while a valid key still works
	// (WEBHOOKD_AUTH_FAILURE_LIMIT). Defaults to AuthFailureLimitDefault
	// (20); negative: no throttling (failures are still counted and logged).
	AuthFailureLimit int
	// Trust says which proxies' X-Forwarded-For gives the client address
	// (WEBHOOKD_TRUSTED_PROXIES). Defaults to none: the peer's address.
	Trust *forwarded.Trust
	// BodyBudgetPerKey is the most of BodyBudget one key's bodies may hold
	// at once (WEBHOOKD_BODY_BUDGET_PER_KEY); past it the key's request
	// waits BodyBudgetWait, then gets 429 rate_limited. Defaults to a
	// BodyBudgetKeyShare-th (a quarter) of BodyBudget; never less than
	// BatchBodyLimit.
	BodyBudgetPerKey int64
	// BodyMinRate is the slowest a request body may arrive, in bytes a
	// second, after BodyMinRateGrace (WEBHOOKD_BODY_MIN_RATE); slower is
	// cut with 408 body_too_slow. Defaults to BodyMinRateDefault (64 KiB/s);
	// negative: no minimum.
	BodyMinRate int64
	// MaxWebhooksPerAccount is the most live webhooks an account may have
	// (WEBHOOKD_MAX_WEBHOOKS_PER_ACCOUNT): one more is 422
	// webhook_limit_reached. Defaults to MaxWebhooksPerAccountDefault (20).
	MaxWebhooksPerAccount int
	// TestSendRate is the test sends one webhook may have in this process
	// (WEBHOOKD_TEST_SEND_RATE): more are 429 rate_limited. Defaults to
	// TestSendRateDefault (1/s, burst 5); RateOff is no limit.
	TestSendRate Rate
	// TestSendSlots, when set, are the per-webhook slots that test sends
	// share with deliveries: the server passes its worker on a process
	// that runs workers, so test sends count against the worker's cap per
	// webhook. A test send finding none free is 429 test_sends_busy.
	// Optional: nil gives test sends a cap of their own, TestSendsInFlight.
	TestSendSlots Slots
	// TestSendsInFlight caps the test sends in flight per webhook in this
	// process when TestSendSlots is nil, as on an API-only process
	// (WEBHOOKD_TEST_SENDS_IN_FLIGHT). Defaults to TestSendsInFlightDefault (2).
	TestSendsInFlight int
	// IntakeTransactions is how many transactions storing POST /v1/events
	// requests run at once in this process (WEBHOOKD_INTAKE_TRANSACTIONS);
	// requests arriving meanwhile wait for the next one, up to 100 a
	// transaction. Defaults to IntakeTransactionsDefault (1).
	IntakeTransactions int
	// IntakeLinger is how long a POST /v1/events request that finds no
	// transaction running waits for others to share its transaction, when
	// it comes less than IntakeLinger after the one before it
	// (WEBHOOKD_INTAKE_LINGER; batch.Linger): fewer commits at quiet
	// rates, for up to IntakeLinger more before each 202. Zero: never.
	IntakeLinger time.Duration
	// TracerProvider receives a span per POST /v1/events and
	// /v1/events/batch request (internal/admin/trace.go), and the events it
	// accepts are stored with the span's traceparent. Optional: nil or a
	// no-op provider traces nothing.
	TracerProvider trace.TracerProvider
	// APIKeyCacheTTL is how long a verified API key is taken as read
	// without a query (WEBHOOKD_API_KEY_CACHE_TTL): a key revoked or
	// rotated on another process or on the database works here for at
	// most this long more (through this process: not at all). Defaults to
	// APIKeyCacheTTLDefault (1s), at most APIKeyCacheTTLMax (2s);
	// negative: no cache.
	APIKeyCacheTTL time.Duration
}

// API serves the HTTP routes.
type API struct {
	pool     *pgxpool.Pool
	enqueuer *engine.Enqueuer
	keys     *keyring.Keyring
	policy   *outbound.Policy
	now      func() time.Time
	logger   *zap.Logger
	metrics  *metrics.Metrics
	sender   Sender
	// maxWebhooks is Config.MaxWebhooksPerAccount, defaulted.
	maxWebhooks int
	// testSends bounds test sends per webhook: a rate and slots in flight.
	testSends *testSendLimits
	bodies    *semaphore.Weighted
	// bodyShares bounds each key's share of bodies; bodyMinRate is
	// Config.BodyMinRate, defaulted (0: none).
	bodyShares  *bodyShares
	bodyMinRate int64
	// limiter holds the token buckets of rates; authFailures throttles
	// failing keys per client address, found through trust.
	limiter      *limiter
	rates        rates
	authFailures *authFailures
	trust        *forwarded.Trust
	// catalogue validates event data for the types that ask for it.
	catalogue *catalogue.Catalogue
	adminKey  [32]byte
	hasAdmin  bool
	// keyCache remembers verified API keys (nil: off).
	keyCache *keyCache
	// enqueues batches the events of concurrent POST /v1/events.
	enqueues *batch.Batcher[*engine.Event, enqueued]
	// tracer makes the intake routes' accept spans; nil: tracing off.
	tracer trace.Tracer
}

// New returns the API on pool, accepting events with enqueuer and
// encrypting webhook secrets with keys.
func New(pool *pgxpool.Pool, enqueuer *engine.Enqueuer, keys *keyring.Keyring, cfg *Config) (*API, error) {
	if pool == nil || enqueuer == nil || keys == nil {
		return nil, errors.New("admin.New: pool, enqueuer and keys are required")
	}
	return newAPI(pool, enqueuer, keys, cfg), nil
}

// NewOperator returns the API on pool for webhookd's operator commands
// (`webhookd keys`), which call its typed operations in process as
// OperatorPrincipal and serve no routes. It has no enqueuer and no
// keyring: only the operations that need neither may be called on it
// (the keys family so far).
func NewOperator(pool *pgxpool.Pool, cfg *Config) (*API, error) {
	if pool == nil {
		return nil, errors.New("admin.NewOperator: pool is required")
	}
	return newAPI(pool, nil, nil, cfg), nil
}

// newAPI is New without its checks: NewOperator's API has no enqueuer
// and no keyring.
func newAPI(pool *pgxpool.Pool, enqueuer *engine.Enqueuer, keys *keyring.Keyring, cfg *Config) *API {
	if cfg == nil {
		cfg = &Config{}
	}
	a := &API{pool: pool, enqueuer: enqueuer, keys: keys, policy: cfg.Policy, now: cfg.Now, logger: cfg.Logger, metrics: cfg.Metrics, sender: cfg.Sender, bodies: newBodyBudget(cfg.BodyBudget)}
	a.enqueues = a.newEnqueueBatcher(cfg.IntakeTransactions).Linger(cfg.IntakeLinger, 1)
	a.tracer = engine.Tracer(cfg.TracerProvider)
	a.bodyShares = newBodyShares(cfg.BodyBudget, cfg.BodyBudgetPerKey)
	a.bodyMinRate = cmp.Or(cfg.BodyMinRate, BodyMinRateDefault)
	a.rates, a.trust = newRates(cfg), cfg.Trust
	a.maxWebhooks = cmp.Or(max(cfg.MaxWebhooksPerAccount, 0), MaxWebhooksPerAccountDefault)
	a.testSends = newTestSendLimits(cfg)
	if a.policy == nil {
		a.policy = &outbound.Policy{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.logger == nil {
		a.logger = zap.NewNop()
	}
	a.keyCache = newKeyCache(cmp.Or(cfg.APIKeyCacheTTL, APIKeyCacheTTLDefault))
	a.limiter = newLimiter(a.now)
	a.authFailures = newAuthFailures(cmp.Or(cfg.AuthFailureLimit, AuthFailureLimitDefault), a.now, a.logger.Named("auth"))
	a.catalogue = catalogue.New(pool, &catalogue.Config{Now: a.now, Logger: a.logger})
	if cfg.BootstrapAdminKey != "" {
		a.adminKey = sha256.Sum256([]byte(cfg.BootstrapAdminKey))
		a.hasAdmin = true
	}
	return a
}

// route is one entry of the API's route list: a method and a path pattern
// of http.ServeMux, the scopes whose keys may call it (nil: no key needed)
// and its handler.
type route struct {
	method  string
	pattern string
	scopes  []string
	handler http.HandlerFunc
	// op is the typed operation behind handler (opRoute), nil for a route
	// not yet converted: its scope and rate limit are then checked here
	// (auth, withRateLimit) rather than by the operation (admit).
	op *opSpec
}

// opRoute is the route of a typed operation op: its method, pattern and
// scopes are op's, and handler is its JSON adapter (handle).
func opRoute(op *opSpec, handler http.HandlerFunc) route {
	method, pattern, _ := strings.Cut(op.route, " ")
	return route{method: method, pattern: pattern, scopes: op.scopes, handler: handler, op: op}
}

// routes is every route the API serves, in one list that Handler registers
// and the tests read (the OpenAPI document and the auth matrix must cover
// each).
func (a *API) routes() []route {
	return []route{
		{"GET", "/healthz", nil, a.healthz, nil},
		{"GET", "/readyz", nil, a.readyz, nil},
		{"GET", "/v1/openapi.json", nil, serveOpenAPI, nil},
		{"GET", "/docs", nil, serveDocs, nil},
		opRoute(opCreateWebhook, handle(a, http.StatusCreated, decodeWebhookCreate, a.CreateWebhook)),
		opRoute(opListWebhooks, handle(a, http.StatusOK, decodeWebhookList, a.ListWebhooks)),
		opRoute(opGetWebhook, handle(a, http.StatusOK, decodeWebhookGet, a.GetWebhook)),
		opRoute(opRevealWebhookSecret, handle(a, http.StatusOK, decodeWebhookGet, a.RevealWebhookSecret)),
		opRoute(opGetWebhookHealth, handle(a, http.StatusOK, decodeWebhookGet, a.GetWebhookHealth)),
		opRoute(opUpdateWebhook, handle(a, http.StatusOK, decodeWebhookPatch, a.UpdateWebhook)),
		opRoute(opDeleteWebhook, handle(a, http.StatusNoContent, decodeWebhookGet, a.DeleteWebhook)),
		opRoute(opSendTest, handle(a, http.StatusOK, decodeSendTest, a.SendTest)),
		opRoute(opRotateWebhookSecret, handle(a, http.StatusOK, decodeWebhookRotateSecret, a.RotateWebhookSecret)),
		opRoute(opSkipFIFOHead, handle(a, http.StatusOK, decodeFIFOSkip, a.SkipFIFOHead)),
		{"POST", "/v1/events", scopesEvents, a.createEvent, nil},
		{"POST", "/v1/events/batch", scopesEvents, a.createEventBatch, nil},
		opRoute(opFindEvent, handle(a, http.StatusOK, decodeEventFind, a.FindEvent)),
		opRoute(opGetEvent, handle(a, http.StatusOK, decodeEventGet, a.GetEvent)),
		opRoute(opCreateKey, handle(a, http.StatusCreated, decodeBody[apitype.KeyCreate], a.CreateKey)),
		opRoute(opListKeys, handle(a, http.StatusOK, decodeKeyList, a.ListKeys)),
		opRoute(opRevokeKey, handle(a, http.StatusNoContent, decodeKeyRevoke, a.RevokeKey)),
		opRoute(opRotateKey, handle(a, http.StatusCreated, decodeKeyRotate, a.RotateKey)),
		opRoute(opCreatePortalLink, handle(a, http.StatusCreated, a.decodePortalLinkCreate, a.CreatePortalLink)),
		opRoute(opRevokePortalLinks, handle(a, http.StatusOK, decodePortalLinksRevoke, a.RevokePortalLinks)),
		opRoute(opListDeliveries, handle(a, http.StatusOK, decodeDeliveryList, a.ListDeliveries)),
		opRoute(opGetDelivery, handle(a, http.StatusOK, decodeDeliveryGet, a.GetDelivery)),
		opRoute(opReplayDelivery, handle(a, http.StatusAccepted, decodeDeliveryReplay, a.ReplayDelivery)),
		opRoute(opReplayDeliveries, handle(a, http.StatusAccepted, decodeBody[apitype.BulkReplay], a.ReplayDeliveries)),
		opRoute(opGetReplayBatch, handle(a, http.StatusOK, decodeReplayBatchGet, a.GetReplayBatch)),
		opRoute(opGetLimits, handle(a, http.StatusOK, decodeLimits, a.GetLimits)),
		opRoute(opListEventTypes, handle(a, http.StatusOK, decodeEventTypeList, a.ListEventTypes)),
		opRoute(opGetEventType, handle(a, http.StatusOK, decodeEventTypeGet, a.GetEventType)),
		opRoute(opCreateEventType, handle(a, http.StatusCreated, decodeBody[apitype.EventTypeCreate], a.CreateEventType)),
		opRoute(opUpdateEventType, handle(a, http.StatusOK, decodeEventTypePatch, a.UpdateEventType)),
	}
}

// Handler returns every route of routes, each behind auth unless it needs
// no key, and a JSON 404 for anything else.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		var h http.Handler = a.withBatchIntake(rt, rt.handler) //nolint:staticcheck // h is reassigned to other http.Handler types below
		if rt.method == http.MethodPost || rt.method == http.MethodPatch {
			h = a.withBodyBudget(bodyLimit(rt), h)
		}
		switch {
		case rt.op != nil:
			// Authentication here; scope and rate limit are the
			// operation's (admitting runs its admit before the body).
			h = a.auth(nil, a.admitting(rt.op, h).ServeHTTP)
		case rt.scopes != nil:
			h = a.auth(rt.scopes, a.withRateLimit(rt, h).ServeHTTP)
		}
		mux.Handle(rt.method+" "+rt.pattern, a.withAcceptSpan(rt, h))
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
			writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + probe.header.Get("Allow")})
			return
		}
		writeError(w, &Error{Status: http.StatusNotFound, Code: "route_not_found", Message: "no route " + r.Method + " " + r.URL.Path})
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
