// Package server runs webhookd: the HTTP API and the River workers that
// deliver webhooks, on one PostgreSQL database.
package server

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/dashboard"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/forwarded"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/retention"
	"github.com/mono/webhookd/schedule"
)

// Defaults.
const (
	// AddrDefault is where the HTTP API listens.
	AddrDefault = ":8080"
	// MaxWorkersDefault is how many deliveries one process works at once.
	// The work is I/O (waiting on receivers), so it is high.
	MaxWorkersDefault = engine.MaxWorkersDefault
	// FetchCooldownDefault is the shortest time between two fetches of the
	// deliveries queue. River's 100 ms default caps a process near
	// MaxWorkers ÷ 100 ms.
	FetchCooldownDefault = 10 * time.Millisecond
	// FetchPollIntervalDefault is the deliveries queue's poll, the safety
	// net under its alarms (engine.Wakes: each process rings River's fetch
	// when a retry, a snooze or a slot comes due): an alarm missed (its
	// process gone, a notification lost) goes at most this late. Polling
	// every 50 ms was nearly all of an idle process's cost (issue 30). A
	// second against 200 ms costs the saturated single-event intake
	// nothing measurable, and an idle process half as much (BENCHMARKS.md,
	// "The poll back to a second": eight runs against seven, on three
	// builds; a loss of a fifth measured once before did not reproduce).
	FetchPollIntervalDefault = time.Second
	// FetchPollIntervalPoolerDefault is the poll through a transaction
	// pooler (WEBHOOKD_DB_POOLER=transaction): River can't LISTEN there, so
	// no alarm reaches it and the poll alone bounds how late a due retry
	// (or a new job) is fetched.
	FetchPollIntervalPoolerDefault = 50 * time.Millisecond
	// DefaultQueuePollInterval is how often, at least, River's default
	// queue (the reconciler, retention, bulk replays, operator
	// notifications) polls: FetchPollInterval when longer. Its new jobs
	// are announced by LISTEN/NOTIFY and its snoozes ring alarms, so only a
	// scheduled one (or any, through a transaction pooler) waits for the
	// poll; polling it every 50 ms was half of an idle process's queries
	// (issue 30).
	DefaultQueuePollInterval = 250 * time.Millisecond
	// DBMaxConnsDefault is the pgx pool size of one process. A worker holds
	// a connection only for its two short queries, never across the POST.
	DBMaxConnsDefault = 40
	// ShutdownTimeoutDefault is how long running attempts may take to finish
	// on SIGTERM before they are cancelled.
	ShutdownTimeoutDefault = 30 * time.Second
	// CompletedJobRetentionDefault is how long River keeps completed jobs;
	// our own tables hold the history.
	CompletedJobRetentionDefault = 10 * time.Minute
	// DBWaitDefault is how long start-up waits for the database to answer.
	DBWaitDefault = 30 * time.Second
	// MetricsAddrDefault is where `webhookd serve` serves GET /metrics
	// unless WEBHOOKD_METRICS_ADDR says otherwise: loopback only, port
	// 9464 (OpenTelemetry's Prometheus exporter port). A container sets
	// ":9464" for its scraper to reach it.
	MetricsAddrDefault = "127.0.0.1:9464"
	// RescueMargin is added to the job timeout to make RescueStuckJobsAfter.
	RescueMargin = 10 * time.Second
)

// Config is everything webhookd serve needs.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string (DATABASE_URL). Required.
	DatabaseURL string
	// DirectDatabaseURL reaches PostgreSQL itself, or a session-mode pool,
	// when DatabaseURL goes through a transaction pooler
	// (WEBHOOKD_DIRECT_DATABASE_URL): the workers' by-key pool uses it.
	// Optional unless DBPooler is transaction on a worker; empty: the
	// by-key pool uses DatabaseURL.
	DirectDatabaseURL string
	// DBPooler says what DatabaseURL goes through (WEBHOOKD_DB_POOLER):
	// PoolerNone (PostgreSQL itself or a session-mode pool, the default)
	// or PoolerTransaction (see there).
	DBPooler string
	// Addr is the HTTP listen address (WEBHOOKD_ADDR). Defaults to ":8080".
	Addr string
	// EncryptionKey is one or more base64 32-byte keys, comma-separated, the
	// newest first (WEBHOOKD_ENCRYPTION_KEY). Required.
	EncryptionKey string
	// BootstrapAdminKey is an admin API key that is always accepted
	// (WEBHOOKD_BOOTSTRAP_ADMIN_KEY). Optional.
	BootstrapAdminKey string
	// RetryScale multiplies the retry schedule (WEBHOOKD_RETRY_SCALE).
	// Defaults to 1; 0.001 runs the 8.44 h schedule in about 30 s.
	RetryScale float64
	// AllowPrivateNetworks lets webhooks target private, loopback and
	// link-local addresses (WEBHOOKD_ALLOW_PRIVATE_NETWORKS). Development and
	// tests only. Defaults to false.
	AllowPrivateNetworks bool
	// AllowedCIDRs are operator-approved private ranges.
	AllowedCIDRs []netip.Prefix
	// EgressProxy is an HTTP CONNECT proxy all webhook traffic leaves
	// through (WEBHOOKD_EGRESS_PROXY): attempts and test sends, each
	// tunnelled to an address checked against the policy first. Defaults
	// to none.
	EgressProxy *url.URL
	// HTTPTimeout bounds one delivery attempt (WEBHOOKD_HTTP_TIMEOUT).
	// Defaults to 10s.
	HTTPTimeout time.Duration
	// UserAgent is sent on every attempt. Defaults to Mono-Webhooks/<version>.
	UserAgent string
	// MaxWorkers, FetchCooldown and FetchPollInterval tune the deliveries
	// queue; see the defaults above.
	MaxWorkers        int
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// WebhookConcurrency caps concurrent attempts to one webhook per process
	// (WEBHOOKD_WEBHOOK_CONCURRENCY). Defaults to 100. Each webhook's cap
	// starts lower (engine.WebhookConcurrencyStart) and grows as its
	// endpoint answers.
	WebhookConcurrency int
	// MaxIdleConnsPerHost is how many idle keep-alive connections to one
	// receiver host the outbound client keeps, in its shared transport
	// and in each webhook's own TLS transport
	// (WEBHOOKD_MAX_IDLE_CONNS_PER_HOST). Fewer than the attempts under
	// way at once to a host makes every attempt beyond it open a new
	// connection (and TLS handshake). Defaults to MaxWorkers.
	MaxIdleConnsPerHost int
	// BulkWhileLive is how many backlogged bulk deliveries may be under way
	// per process while other accounts' live ones are being answered
	// (WEBHOOKD_BULK_WHILE_LIVE, off for -1; see engine.WorkerConfig).
	// 0: a sixteenth of MaxWorkers; -1: no limit.
	BulkWhileLive int
	// IntakeWebhookCache is the bytes of accounts' live webhooks the API
	// keeps in memory for the intake (WEBHOOKD_INTAKE_WEBHOOK_CACHE, off for
	// -1; see engine.EnqueuerConfig.WebhookCache). 0:
	// engine.WebhookCacheDefault (16 MiB).
	IntakeWebhookCache int64
	// DBMaxConns is the pgx pool size. Defaults to 40.
	DBMaxConns int32
	// ReconcileInterval is how often orphaned pending deliveries are looked
	// for. Defaults to 1 minute.
	ReconcileInterval time.Duration
	// DeadNoticeWindow is the least time between two delivery.dead
	// notifications of one webhook: tests shorten it (no environment
	// variable: the minute is the notification's contract). Defaults to
	// engine.DeadNoticeWindowDefault.
	DeadNoticeWindow time.Duration
	// HealthFlushInterval is how often a worker process writes the endpoint
	// health it folded (and the endpoint.failing notifications it makes):
	// tests shorten it (no environment variable). Defaults to
	// engine.HealthFlushIntervalDefault.
	HealthFlushInterval time.Duration
	// ShutdownTimeout is how long running attempts may finish on shutdown.
	// Defaults to 30s.
	ShutdownTimeout time.Duration
	// Version is reported in the User-Agent and logs.
	Version string
	// API serves the HTTP API (WEBHOOKD_ROLES, -api). A process without it
	// serves only /healthz and /readyz, and enqueues nothing itself.
	// If neither API nor Worker is set, both are.
	API bool
	// Worker runs the River workers that deliver webhooks (WEBHOOKD_ROLES,
	// -worker). A process without it still inserts jobs (events, replays)
	// but works none. If neither API nor Worker is set, both are.
	Worker bool
	// Retention keeps succeeded and cancelled deliveries (with their events
	// and attempts) this long (WEBHOOKD_RETENTION). Defaults to 30 days.
	Retention time.Duration
	// DeadRetention keeps dead deliveries this long (WEBHOOKD_DEAD_RETENTION).
	// Defaults to 90 days.
	DeadRetention time.Duration
	// ReplaySpacing is the gap a bulk replay leaves between two deliveries
	// of one webhook (WEBHOOKD_REPLAY_SPACING), scaled like the retry
	// schedule. Defaults to engine.ReplaySpacingDefault (10 ms: 100 a
	// second per webhook); at most an hour.
	ReplaySpacing time.Duration
	// AutoPauseAfter pauses a webhook with no successful attempt for this
	// long (WEBHOOKD_AUTO_PAUSE_AFTER); 0, the default, never does.
	AutoPauseAfter time.Duration
	// NotifyURL (WEBHOOKD_NOTIFY_URL) receives webhookd's notifications
	// (webhook.paused, webhook.resumed) for the operator, signed with
	// NotifySecret (WEBHOOKD_NOTIFY_SECRET, at least 16 characters) like
	// any delivery: the one URL exempt from the private-network rule.
	// Optional: empty (both) sends the operator none.
	NotifyURL    string
	NotifySecret string
	// EndpointFailingAfter is how many consecutive failed attempts make a
	// webhook's endpoint.failing notification (not again until one of its
	// attempts has succeeded) (WEBHOOKD_ENDPOINT_FAILING_AFTER). Defaults
	// to engine.FailingThresholdDefault (10).
	EndpointFailingAfter int
	// Now is the clock of the API (key expiry), the retention job and the
	// reconciler's auto-pause. Defaults to time.Now; tests move it.
	Now func() time.Time
	// DBWait is how long start-up retries an unreachable database before it
	// fails (WEBHOOKD_DB_WAIT). Defaults to 30s.
	DBWait time.Duration
	// PublicURL is the absolute http(s) URL users reach webhookd at
	// (WEBHOOKD_PUBLIC_URL), such as https://webhooks.example.com. When it
	// is https the dashboard's cookies are Secure; the dashboard and River
	// UI accept its origin. Empty by default: cookies are Secure only over
	// TLS, and only the request's own Host is same-origin.
	PublicURL string
	// MetricsAddr is where GET /metrics is served, on a listener of its
	// own (WEBHOOKD_METRICS_ADDR; `webhookd serve` defaults it to
	// MetricsAddrDefault). Empty: no metrics listener.
	MetricsAddr string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (WEBHOOKD_TRUSTED_PROXIES). None by
	// default.
	TrustedProxies []netip.Prefix
	// PortalFrameAncestors are the origins whose pages may show the
	// dashboard in a frame (WEBHOOKD_PORTAL_FRAME_ANCESTORS, read with
	// dashboard.ParseFrameAncestors): the products that embed it after
	// sending their users through a portal link. With any, PublicURL must
	// be https (the framed session cookie is SameSite=None; Secure). None
	// by default: the dashboard can't be framed.
	PortalFrameAncestors []string
	// RateLimitManagement is each account (and events:write) key's budget
	// on the management routes, per process
	// (WEBHOOKD_RATE_LIMIT_MANAGEMENT). Defaults to
	// admin.ManagementRateDefault (50/s, burst 100); admin.RateOff: none.
	RateLimitManagement admin.Rate
	// RateLimitManagementAdmin is each admin key's management budget
	// (WEBHOOKD_RATE_LIMIT_MANAGEMENT_ADMIN). Defaults to none.
	RateLimitManagementAdmin admin.Rate
	// RateLimitIntakeAccount, RateLimitIntakeAdmin and
	// RateLimitIntakeEventsWrite are each key's event-intake budget by
	// scope, counted in events, per process
	// (WEBHOOKD_RATE_LIMIT_INTAKE_ACCOUNT, _ADMIN, _EVENTS_WRITE).
	// Default to none.
	RateLimitIntakeAccount     admin.Rate
	RateLimitIntakeAdmin       admin.Rate
	RateLimitIntakeEventsWrite admin.Rate
	// AuthFailureLimit is how many failed keys a client address may present
	// in a minute before its failing requests get 429 for a minute
	// (WEBHOOKD_AUTH_FAILURE_LIMIT). Defaults to
	// admin.AuthFailureLimitDefault (20); negative: no throttling.
	AuthFailureLimit int
	// BodyBudget bounds the bytes of request bodies read at once by the
	// API (WEBHOOKD_BODY_BUDGET). Defaults to admin.BodyBudgetDefault
	// (32 MiB); at least admin.BatchBodyLimit.
	BodyBudget int64
	// BodyBudgetPerKey is the most of it one key may hold
	// (WEBHOOKD_BODY_BUDGET_PER_KEY). Defaults to a quarter of BodyBudget.
	BodyBudgetPerKey int64
	// BodyMinRate is the slowest a request body may arrive after its first
	// second, in bytes a second (WEBHOOKD_BODY_MIN_RATE). Defaults to
	// admin.BodyMinRateDefault (64 KiB/s); negative: no minimum.
	BodyMinRate int64
	// MaxWebhooksPerAccount is the most live webhooks one account may have
	// (WEBHOOKD_MAX_WEBHOOKS_PER_ACCOUNT). Defaults to
	// admin.MaxWebhooksPerAccountDefault (20).
	MaxWebhooksPerAccount int
	// MaxFanoutPerRequest is the most deliveries one POST /v1/events or
	// /v1/events/batch may create, events × matching webhooks
	// (WEBHOOKD_MAX_FANOUT_PER_REQUEST); more is 422 fanout_too_large.
	// Defaults to engine.MaxBatchSize × MaxWebhooksPerAccount (20,000),
	// so every batch within the webhook quota passes.
	MaxFanoutPerRequest int
	// TestSendRate is the test sends each webhook may have, per process
	// (WEBHOOKD_TEST_SEND_RATE). Defaults to admin.TestSendRateDefault (1/s,
	// burst 5); admin.RateOff: none.
	TestSendRate admin.Rate
	// TestSendsInFlight caps one webhook's test sends in flight on a
	// process without workers (WEBHOOKD_TEST_SENDS_IN_FLIGHT); with
	// workers, test sends share the worker's cap per webhook
	// (WebhookConcurrency). Defaults to admin.TestSendsInFlightDefault (2).
	TestSendsInFlight int
	// IntakeTransactions is how many transactions storing POST /v1/events
	// requests run at once per process (WEBHOOKD_INTAKE_TRANSACTIONS), 1 to
	// admin.IntakeTransactionsMax. Defaults to
	// admin.IntakeTransactionsDefault (1).
	IntakeTransactions int
	// IntakeLinger is how long a POST /v1/events request that finds the
	// intake idle, but comes soon after the one before it, waits for others
	// to share its transaction (WEBHOOKD_INTAKE_LINGER;
	// admin.Config.IntakeLinger). Zero, the default: never (each waits
	// for nothing before its 202).
	IntakeLinger time.Duration
	// APIKeyCacheTTL is how long a verified API key is used without a
	// query (WEBHOOKD_API_KEY_CACHE_TTL): a key revoked elsewhere (another
	// process, the CLI) works on this process for at most this long more.
	// Defaults to admin.APIKeyCacheTTLDefault (1s); at most
	// admin.APIKeyCacheTTLMax (2s); negative: no cache.
	APIKeyCacheTTL time.Duration
	// KeepFinishedJobs keeps a finished delivery's River job, marked
	// completed, for River's completed-job retention (10 minutes), as River
	// UI shows them (WEBHOOKD_KEEP_FINISHED_JOBS). Defaults to false: the
	// statement that records a delivery's last attempt (success or death)
	// deletes its job, a fifth less WAL per delivery; the delivery and its
	// attempts are the record either way (engine.WorkerConfig).
	KeepFinishedJobs bool
	// AdaptiveProcs runs the process on one Go processor (GOMAXPROCS) while
	// it uses little CPU, and on the runtime's full count (the CPUs, or the
	// cgroup's limit) from the moment it uses more than half a core over
	// 100 ms (WEBHOOKD_ADAPTIVE_PROCS; package procs): at quiet rates a
	// second processor cost 13 – 20 % of the process's CPU in wake-ups. Off when the GOMAXPROCS environment variable is set (the
	// operator's count is kept) or when another server in the process runs
	// a governor. `webhookd serve` turns it on by default; the zero value
	// is off, so servers embedded in tests and the bench keep the runtime's
	// count.
	AdaptiveProcs bool
	// Handoffs is the most first attempts a process that is both API and
	// worker makes at once of deliveries it accepted through POST
	// /v1/events and /v1/events/batch, straight after the commit instead
	// of through River's queue (WEBHOOKD_HANDOFFS; engine.Handoffs): two
	// round trips and the job's fetch fewer per delivery. Defaults to
	// engine.HandoffsMaxDefault (100); HandoffsOff: none. Off as well with
	// KeepFinishedJobs (a handed-off job is deleted with its last attempt,
	// never completed).
	Handoffs int
	// RecordLinger is how long a worker's recording of an attempt that
	// comes alone, but soon after the one before it, waits for others to
	// share its statement and commit (WEBHOOKD_RECORD_LINGER;
	// engine.WorkerConfig.RecordLinger). Defaults to
	// engine.RecordLingerDefault (20 ms); RecordLingerOff: never.
	RecordLinger time.Duration
	// TracerProvider receives webhookd's spans: one per POST /v1/events
	// and /v1/events/batch request, one per attempt, in the producer's
	// trace (cmd/webhookd builds it from the standard OTEL_* variables).
	// Optional: nil or a no-op provider traces nothing, and receivers get
	// the producer's traceparent as without tracing.
	TracerProvider trace.TracerProvider
	// TestSignals, for tests only, lets a test wait for the background
	// workers instead of sleeping (internal/testsignal). Nil: off.
	TestSignals *TestSignals
}

// TestSignals are the signals of a server's background workers; a test
// makes one, Inits the signals it waits on, and sets Config.TestSignals.
type TestSignals struct {
	Reconciler  engine.ReconcilerTestSignals
	ReplayBatch engine.ReplayBatchTestSignals
	Worker      engine.WorkerTestSignals
}

func (s *TestSignals) worker() *engine.WorkerTestSignals {
	if s == nil {
		return nil
	}
	return &s.Worker
}

func (s *TestSignals) reconciler() *engine.ReconcilerTestSignals {
	if s == nil {
		return nil
	}
	return &s.Reconciler
}

func (s *TestSignals) replayBatch() *engine.ReplayBatchTestSignals {
	if s == nil {
		return nil
	}
	return &s.ReplayBatch
}

// RecordLingerOff is Config.RecordLinger for none
// (WEBHOOKD_RECORD_LINGER=0).
const RecordLingerOff = -1

// HandoffsOff is Config.Handoffs for none (WEBHOOKD_HANDOFFS=0).
const HandoffsOff = -1

// HandoffsAtOnce is how many hand-offs the process makes at once: none (0)
// unless it is both API and worker and deletes finished jobs.
func (c *Config) HandoffsAtOnce() int {
	if !c.API || !c.Worker || c.KeepFinishedJobs || c.Handoffs <= 0 {
		return 0
	}
	return c.Handoffs
}

// WithDefaults returns a copy of c with every zero field defaulted.
func (c *Config) WithDefaults() *Config {
	out := *c
	out.Addr = cmp.Or(out.Addr, AddrDefault)
	out.RetryScale = cmp.Or(out.RetryScale, schedule.ScaleDefault)
	out.HTTPTimeout = cmp.Or(out.HTTPTimeout, outbound.TimeoutDefault)
	out.Version = cmp.Or(out.Version, "dev")
	out.UserAgent = cmp.Or(out.UserAgent, "Mono-Webhooks/"+out.Version)
	out.MaxWorkers = cmp.Or(out.MaxWorkers, MaxWorkersDefault)
	out.MaxIdleConnsPerHost = cmp.Or(out.MaxIdleConnsPerHost, out.MaxWorkers)
	out.FetchCooldown = cmp.Or(out.FetchCooldown, FetchCooldownDefault)
	if out.FetchPollInterval == 0 {
		out.FetchPollInterval = FetchPollIntervalDefault
		if out.transactionPooler() {
			out.FetchPollInterval = FetchPollIntervalPoolerDefault
		}
	}
	out.WebhookConcurrency = cmp.Or(out.WebhookConcurrency, engine.WebhookConcurrencyDefault)
	out.DBMaxConns = cmp.Or(out.DBMaxConns, DBMaxConnsDefault)
	out.ReconcileInterval = cmp.Or(out.ReconcileInterval, engine.ReconcileIntervalDefault)
	out.ReplaySpacing = cmp.Or(out.ReplaySpacing, engine.ReplaySpacingDefault)
	out.ShutdownTimeout = cmp.Or(out.ShutdownTimeout, ShutdownTimeoutDefault)
	out.DBWait = cmp.Or(out.DBWait, DBWaitDefault)
	out.Retention = cmp.Or(out.Retention, retention.RetentionDefault)
	out.DeadRetention = cmp.Or(out.DeadRetention, retention.DeadRetentionDefault)
	out.MaxWebhooksPerAccount = cmp.Or(out.MaxWebhooksPerAccount, admin.MaxWebhooksPerAccountDefault)
	out.EndpointFailingAfter = cmp.Or(out.EndpointFailingAfter, engine.FailingThresholdDefault)
	out.IntakeWebhookCache = cmp.Or(out.IntakeWebhookCache, engine.WebhookCacheDefault)
	out.MaxFanoutPerRequest = cmp.Or(out.MaxFanoutPerRequest, engine.MaxBatchSize*out.MaxWebhooksPerAccount)
	out.TestSendsInFlight = cmp.Or(out.TestSendsInFlight, admin.TestSendsInFlightDefault)
	out.IntakeTransactions = cmp.Or(out.IntakeTransactions, admin.IntakeTransactionsDefault)
	out.Handoffs = cmp.Or(out.Handoffs, engine.HandoffsMaxDefault)
	out.RecordLinger = cmp.Or(out.RecordLinger, engine.RecordLingerDefault)
	if !out.API && !out.Worker {
		out.API, out.Worker = true, true
	}
	return &out
}

// Validate checks c (after WithDefaults), naming the setting at fault.
func (c *Config) Validate() error {
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL is required")
	}
	if c.EncryptionKey == "" {
		return errors.New("WEBHOOKD_ENCRYPTION_KEY is required (32 random bytes in base64: `openssl rand -base64 32`)")
	}
	if _, err := keyring.Parse(c.EncryptionKey); err != nil {
		return fmt.Errorf("WEBHOOKD_ENCRYPTION_KEY: %w", err)
	}
	if _, err := schedule.New(c.RetryScale); err != nil {
		return fmt.Errorf("WEBHOOKD_RETRY_SCALE: %w", err)
	}
	if c.HTTPTimeout < 100*time.Millisecond || c.HTTPTimeout > 5*time.Minute {
		return fmt.Errorf("WEBHOOKD_HTTP_TIMEOUT must be between 100ms and 5m (got %s)", c.HTTPTimeout)
	}
	if c.BootstrapAdminKey != "" && len(c.BootstrapAdminKey) < 16 {
		return errors.New("WEBHOOKD_BOOTSTRAP_ADMIN_KEY must be at least 16 characters")
	}
	if c.MaxWorkers < 1 {
		return fmt.Errorf("WEBHOOKD_MAX_WORKERS must be at least 1 (got %d)", c.MaxWorkers)
	}
	if c.MaxIdleConnsPerHost < 1 {
		return fmt.Errorf("WEBHOOKD_MAX_IDLE_CONNS_PER_HOST must be at least 1 (got %d)", c.MaxIdleConnsPerHost)
	}
	if c.WebhookConcurrency < 1 {
		return fmt.Errorf("WEBHOOKD_WEBHOOK_CONCURRENCY must be at least 1 (got %d)", c.WebhookConcurrency)
	}
	if c.BulkWhileLive < -1 {
		return fmt.Errorf("WEBHOOKD_BULK_WHILE_LIVE must be -1 (no limit), 0 (a sixteenth of the workers) or more (got %d)", c.BulkWhileLive)
	}
	if c.DBMaxConns < 4 {
		return fmt.Errorf("WEBHOOKD_DB_MAX_CONNS must be at least 4 (got %d)", c.DBMaxConns)
	}
	if c.ReplaySpacing < 0 || c.ReplaySpacing > time.Hour {
		return fmt.Errorf("WEBHOOKD_REPLAY_SPACING must be more than 0 and at most 1h (got %s)", c.ReplaySpacing)
	}
	if c.RecordLinger != RecordLingerOff && (c.RecordLinger < 0 || c.RecordLinger > time.Second) {
		return fmt.Errorf("WEBHOOKD_RECORD_LINGER must be 0 (never) or at most 1s (got %s)", c.RecordLinger)
	}
	if c.IntakeLinger < 0 || c.IntakeLinger > time.Second {
		return fmt.Errorf("WEBHOOKD_INTAKE_LINGER must be from 0 (never) to 1s (got %s)", c.IntakeLinger)
	}
	if c.AutoPauseAfter < 0 || (c.AutoPauseAfter > 0 && c.AutoPauseAfter < time.Hour) {
		return fmt.Errorf("WEBHOOKD_AUTO_PAUSE_AFTER must be 0 (off) or at least 1h (got %s)", c.AutoPauseAfter)
	}
	if err := validateNotify(c.NotifyURL, c.NotifySecret); err != nil {
		return err
	}
	if c.EndpointFailingAfter < 1 {
		return fmt.Errorf("WEBHOOKD_ENDPOINT_FAILING_AFTER must be at least 1 (got %d)", c.EndpointFailingAfter)
	}
	publicURL, err := forwarded.ParsePublicURL(c.PublicURL)
	if err != nil {
		return fmt.Errorf("WEBHOOKD_PUBLIC_URL: %w", err)
	}
	if err := validateFrameAncestors(c.PortalFrameAncestors, publicURL); err != nil {
		return err
	}
	if c.MaxWebhooksPerAccount < 1 {
		return fmt.Errorf("WEBHOOKD_MAX_WEBHOOKS_PER_ACCOUNT must be at least 1 (got %d)", c.MaxWebhooksPerAccount)
	}
	if c.IntakeWebhookCache < -1 {
		return fmt.Errorf("WEBHOOKD_INTAKE_WEBHOOK_CACHE must be -1 (off), 0 (the default, 16 MiB) or a number of bytes (got %d)", c.IntakeWebhookCache)
	}
	if c.MaxFanoutPerRequest < 1 {
		return fmt.Errorf("WEBHOOKD_MAX_FANOUT_PER_REQUEST must be at least 1, or 0 for the default (got %d)", c.MaxFanoutPerRequest)
	}
	if c.TestSendRate.PerSecond > 0 && c.TestSendRate.Burst < 1 {
		return fmt.Errorf("WEBHOOKD_TEST_SEND_RATE: the burst must be at least 1 (got %s)", c.TestSendRate)
	}
	if c.TestSendsInFlight < 1 {
		return fmt.Errorf("WEBHOOKD_TEST_SENDS_IN_FLIGHT must be at least 1 (got %d)", c.TestSendsInFlight)
	}
	if c.IntakeTransactions < 1 || c.IntakeTransactions > admin.IntakeTransactionsMax {
		return fmt.Errorf("WEBHOOKD_INTAKE_TRANSACTIONS must be from 1 to %d (got %d)", admin.IntakeTransactionsMax, c.IntakeTransactions)
	}
	if c.Handoffs < HandoffsOff {
		return fmt.Errorf("WEBHOOKD_HANDOFFS must be 0 (none) or more (got %d)", c.Handoffs)
	}
	if c.APIKeyCacheTTL > admin.APIKeyCacheTTLMax {
		return fmt.Errorf("WEBHOOKD_API_KEY_CACHE_TTL must be at most %s, or 0 for none (got %s)", admin.APIKeyCacheTTLMax, c.APIKeyCacheTTL)
	}
	for _, r := range []struct {
		env  string
		rate admin.Rate
	}{
		{"WEBHOOKD_RATE_LIMIT_MANAGEMENT", c.RateLimitManagement},
		{"WEBHOOKD_RATE_LIMIT_MANAGEMENT_ADMIN", c.RateLimitManagementAdmin},
		{"WEBHOOKD_RATE_LIMIT_INTAKE_ACCOUNT", c.RateLimitIntakeAccount},
		{"WEBHOOKD_RATE_LIMIT_INTAKE_ADMIN", c.RateLimitIntakeAdmin},
		{"WEBHOOKD_RATE_LIMIT_INTAKE_EVENTS_WRITE", c.RateLimitIntakeEventsWrite},
	} {
		if r.rate.PerSecond > 0 && r.rate.Burst < 1 {
			return fmt.Errorf("%s: the burst must be at least 1 (got %s)", r.env, r.rate)
		}
	}
	if c.BodyBudget != 0 && c.BodyBudget < admin.BatchBodyLimit {
		return fmt.Errorf("WEBHOOKD_BODY_BUDGET must be at least %d bytes, one largest batch (got %d)", admin.BatchBodyLimit, c.BodyBudget)
	}
	if c.BodyBudgetPerKey < 0 || c.BodyBudgetPerKey > max(c.BodyBudget, admin.BodyBudgetDefault) {
		return fmt.Errorf("WEBHOOKD_BODY_BUDGET_PER_KEY must be from 0 (a quarter of WEBHOOKD_BODY_BUDGET) to WEBHOOKD_BODY_BUDGET (got %d)", c.BodyBudgetPerKey)
	}
	if err := c.validatePooler(); err != nil {
		return err
	}
	return (&retention.Config{Retention: c.Retention, DeadRetention: c.DeadRetention}).Validate()
}

// validateFrameAncestors checks WEBHOOKD_PORTAL_FRAME_ANCESTORS: origins as
// dashboard.ParseFrameAncestors reads them, and an https public URL when
// there are any.
func validateFrameAncestors(origins []string, publicURL *url.URL) error {
	if len(origins) == 0 {
		return nil
	}
	parsed, err := dashboard.ParseFrameAncestors(strings.Join(origins, ","))
	if err != nil {
		return fmt.Errorf("WEBHOOKD_PORTAL_FRAME_ANCESTORS: %w", err)
	}
	if !slices.Equal(parsed, origins) {
		return fmt.Errorf("WEBHOOKD_PORTAL_FRAME_ANCESTORS: write each origin as %s (lower case, no trailing slash)", strings.Join(parsed, ", "))
	}
	if publicURL == nil || publicURL.Scheme != "https" {
		return errors.New("WEBHOOKD_PORTAL_FRAME_ANCESTORS needs an https WEBHOOKD_PUBLIC_URL: a framed dashboard's session cookie is SameSite=None; Secure, which browsers keep only over https")
	}
	return nil
}
