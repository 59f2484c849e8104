package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"riverqueue.com/riverui"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/dashboard"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/forwarded"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/procs"
	"github.com/mono/webhookd/internal/retention"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/schedule"
)

// RiverUIPrefix is where River UI is mounted on the API address.
const RiverUIPrefix = "/riverui"

// Server is a running webhookd: HTTP API and delivery workers.
type Server struct {
	cfg      *Config
	logger   *zap.Logger
	pool     *pgxpool.Pool
	byKey    *store.ByKeyPool // the worker's batched statements (worker role only; nil otherwise)
	worker   *engine.Worker
	enqueuer *engine.Enqueuer // the API's
	handoffs *engine.Handoffs // nil: none (Config.Handoffs)
	procs    *procs.Governor  // nil: none (Config.AdaptiveProcs)
	// wakes are the queues' alarms (without a transaction pooler; nil
	// otherwise), rung from Start until Stop.
	wakes      map[string]*engine.Wakes
	stopWakes  context.CancelFunc
	wakesDone  chan struct{}
	river      *river.Client[pgx.Tx]
	reconciler *engine.Reconciler
	http       *http.Server
	listener   net.Listener
	httpDone   chan error
	// metrics serves GET /metrics on WEBHOOKD_METRICS_ADDR (nil when off).
	metrics     *http.Server
	m           *metrics.Metrics
	metricsLn   net.Listener
	metricsDone chan error
	// riverUI is River UI's handler (API role only; nil otherwise), whose
	// background services run from Start until Stop.
	riverUI     *riverui.Handler
	stopRiverUI context.CancelFunc
	// stopping is closed when Stop begins: River UI's queries cut short
	// then log no error.
	stopping chan struct{}
	// health folds the workers' attempts into endpoint health (worker role
	// only; nil otherwise), written by its Run from Start until Stop.
	health     *engine.HealthTracker
	stopHealth context.CancelFunc
	healthDone chan struct{}
}

// BootstrapAdminKeyMinLen is the shortest bootstrap admin key New accepts
// without a warning; a later release will refuse shorter ones.
const BootstrapAdminKeyMinLen = 32

// prewarmShare is the share of the pool New opens ahead: a quarter, 10 of
// the default 40, about what the API and River hold at a few thousand
// events a second.
const prewarmShare = 4

// prewarmTimeout bounds the opening of those connections at start.
const prewarmTimeout = 10 * time.Second

// New connects to the database, checks that its schema is current and builds
// the server. Nothing runs until Start.
func New(ctx context.Context, cfg *Config, logger *zap.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	keys, err := keyring.Parse(cfg.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_ENCRYPTION_KEY: %w", err)
	}
	sched, err := schedule.New(cfg.RetryScale)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_RETRY_SCALE: %w", err)
	}
	if sched.Scaled() {
		logger.Warn("retry schedule is scaled: not for production", zap.Float64("retry_scale", cfg.RetryScale),
			zap.Duration("total_schedule", time.Duration(float64(schedule.Total())*cfg.RetryScale)))
	}
	publicURL, err := forwarded.ParsePublicURL(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_PUBLIC_URL: %w", err)
	}
	trust := &forwarded.Trust{PublicURL: publicURL, Proxies: cfg.TrustedProxies}
	if n := len(cfg.BootstrapAdminKey); n > 0 && n < BootstrapAdminKeyMinLen {
		// Accepted for now; a later release refuses it.
		logger.Warn("WEBHOOKD_BOOTSTRAP_ADMIN_KEY is shorter than 32 characters: a later release will refuse it; generate one with `openssl rand -base64 32`",
			zap.Int("length", n))
	}
	if cfg.AllowPrivateNetworks {
		logger.Warn("private networks are allowed as webhook targets: development and tests only")
	}

	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	poolCfg.MaxConns = cfg.DBMaxConns
	cfg.configurePooler(poolCfg) // WEBHOOKD_DB_POOLER (pooler.go)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("error creating database pool: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			pool.Close()
		}
	}()
	if err := waitForDatabase(ctx, pool, poolCfg, cfg.DBWait, logger); err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, pool); err != nil {
		return nil, err
	}
	// Best effort, and bounded: a server that can't open them ahead
	// (max_connections nearly reached, a pooler's limit) opens them on
	// demand, as before.
	prewarmCtx, cancelPrewarm := context.WithTimeout(ctx, prewarmTimeout)
	defer cancelPrewarm()
	if err := store.Prewarm(prewarmCtx, pool, max(int(cfg.DBMaxConns)/prewarmShare, 1)); err != nil {
		logger.Warn("could not open database connections ahead of traffic; they open on demand", zap.Error(err))
	}

	policy := &outbound.Policy{AllowPrivate: cfg.AllowPrivateNetworks, AllowedCIDRs: cfg.AllowedCIDRs}
	client, err := outbound.NewClient(policy, &outbound.ClientConfig{
		Timeout: cfg.HTTPTimeout, UserAgent: cfg.UserAgent, EgressProxy: cfg.EgressProxy, MaxIdleConnsPerHost: cfg.MaxIdleConnsPerHost,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating outbound client: %w", err)
	}
	notifyClient, err := setupNotify(ctx, pool, keys, cfg, logger)
	if err != nil {
		return nil, err
	}
	m := metrics.New(pool, &metrics.Config{RetryScale: cfg.RetryScale, Logger: logger.Named("metrics")})
	var health *engine.HealthTracker
	if cfg.Worker {
		health = engine.NewHealthTracker(pool, &engine.HealthConfig{Logger: logger.Named("health"), FailingThreshold: cfg.EndpointFailingAfter,
			FlushInterval: cfg.HealthFlushInterval})
	}
	var byKey *store.ByKeyPool
	if cfg.Worker {
		// WEBHOOKD_DIRECT_DATABASE_URL when set: its sessions can't go
		// through a transaction pooler.
		byKeyCfg, err := cfg.byKeyPoolConfig(poolCfg)
		if err != nil {
			return nil, err
		}
		if byKey, err = store.NewByKeyPool(ctx, byKeyCfg, 2*engine.BatchConcurrency); err != nil {
			return nil, err
		}
		defer func() {
			if !ok {
				byKey.Close()
			}
		}()
		if err := store.Prewarm(prewarmCtx, byKey.Pool, 2*engine.BatchConcurrency); err != nil {
			logger.Warn("could not open the workers' database connections ahead of traffic; they open on demand", zap.Error(err))
		}
	}
	worker, err := engine.NewWorker(pool, keys, client, &engine.WorkerConfig{
		Schedule: sched, HTTPTimeout: cfg.HTTPTimeout, Logger: logger.Named("worker"), NotifyClient: notifyClient,
		WebhookConcurrency: cfg.WebhookConcurrency, MaxWorkers: cfg.MaxWorkers, Metrics: m, Health: health,
		BulkWhileLive: cfg.BulkWhileLive, ByKey: byKey, TracerProvider: cfg.TracerProvider,
		DeadNoticeWindow: cfg.DeadNoticeWindow, TestSignals: cfg.TestSignals.worker(), RecordLinger: max(cfg.RecordLinger, 0),
		KeepFinishedJobs: cfg.KeepFinishedJobs,
	})
	if err != nil {
		return nil, err
	}
	inFlightPools := map[string]*pgxpool.Pool{"main": pool}
	if byKey != nil {
		inFlightPools["bykey"] = byKey.Pool
	}
	m.RegisterInFlight(worker.InFlight, inFlightPools)
	reconciler := engine.NewReconcilerWithConfig(pool, &engine.ReconcilerConfig{
		Logger: logger.Named("reconciler"), Metrics: m, AutoPauseAfter: cfg.AutoPauseAfter, Now: cfg.Now,
		TestSignals: cfg.TestSignals.reconciler(),
	})

	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	river.AddWorker(workers, reconciler)
	// Bulk replays pace each webhook ReplaySpacing apart, scaled like the
	// retry schedule (WEBHOOKD_RETRY_SCALE) so that tests and `dev` run
	// them fast.
	river.AddWorker(workers, engine.NewReplayBatchWorker(pool, &engine.ReplayBatchConfig{
		Spacing:     max(time.Duration(float64(cfg.ReplaySpacing)*cfg.RetryScale), time.Microsecond),
		Logger:      logger.Named("replay"),
		TestSignals: cfg.TestSignals.replayBatch(),
	}))

	retainer, err := retention.New(pool, &retention.Config{
		Retention: cfg.Retention, DeadRetention: cfg.DeadRetention, Now: cfg.Now, Logger: logger.Named("retention"),
	})
	if err != nil {
		return nil, err
	}
	river.AddWorker(workers, retainer)

	jobTimeout := cfg.HTTPTimeout + engine.JobTimeoutMargin
	riverCfg := &river.Config{
		Logger: slog.New(zapslog.NewHandler(logger.Core(), zapslog.WithName("river"))),
		Queues: map[string]river.QueueConfig{
			engine.QueueDeliveries: {
				MaxWorkers:        cfg.MaxWorkers,
				FetchCooldown:     cfg.FetchCooldown,
				FetchPollInterval: cfg.FetchPollInterval,
			},
			river.QueueDefault: {MaxWorkers: 2, FetchCooldown: cfg.FetchCooldown, FetchPollInterval: max(cfg.FetchPollInterval, DefaultQueuePollInterval)},
		},
		Workers:                     workers,
		FetchCooldown:               engine.InsertNotifyInterval,
		FetchPollInterval:           cfg.FetchPollInterval,
		JobTimeout:                  jobTimeout,
		RescueStuckJobsAfter:        jobTimeout + RescueMargin,
		CompletedJobRetentionPeriod: CompletedJobRetentionDefault,
		PollOnly:                    cfg.transactionPooler(), // no LISTEN through a transaction pooler: the queues poll
		ReindexerIndexNames:         RiverReindexIndexes(),
		SoftStopTimeout:             cfg.ShutdownTimeout,
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.ReconcileInterval), func() (river.JobArgs, *river.InsertOpts) {
				return engine.ReconcileArgs{}, nil
			}, &river.PeriodicJobOpts{ID: "webhookd.reconcile", RunOnStart: true}),
			// Creates day partitions ahead and drops those past retention.
			river.NewPeriodicJob(river.PeriodicInterval(retention.IntervalDefault), func() (river.JobArgs, *river.InsertOpts) {
				return retention.Args{}, nil
			}, &river.PeriodicJobOpts{ID: "webhookd.retention", RunOnStart: true}),
		},
	}
	if !cfg.Worker {
		// API only: an insert-only client (no queues, no workers, never
		// started) for enqueueing events and replays.
		riverCfg = &river.Config{Logger: riverCfg.Logger, SkipUnknownJobCheck: true, FetchCooldown: engine.InsertNotifyInterval}
	}
	riverClient, err := river.NewClient(riverpgxv5.New(pool), riverCfg)
	if err != nil {
		return nil, fmt.Errorf("error creating River client: %w", err)
	}
	// The API's requests are bounded in deliveries (events × webhooks);
	// the outbox's Enqueue in a producer's own code is not, by default.
	enqueuer, err := engine.NewEnqueuerWithConfig(riverClient, &engine.EnqueuerConfig{MaxFanout: cfg.MaxFanoutPerRequest, WebhookCache: max(cfg.IntakeWebhookCache, 0)})
	if err != nil {
		return nil, err
	}
	m.RegisterWebhookCache(func() (int64, int64, int64) {
		s := enqueuer.WebhookCacheStats()
		return s.Hits, s.Misses, s.Changed
	})
	health.SetNotifier(enqueuer) // endpoint.failing
	worker.SetNotifier(enqueuer) // delivery.dead, with the deaths
	// Alarms that ring River's fetch when a waiting job comes due, under
	// the queues' polls, and after an intake's commit (engine.Wakes); none
	// without LISTEN. An API-only process reads nothing coming due: its
	// alarms are its commits'.
	var wakes map[string]*engine.Wakes
	if !cfg.transactionPooler() {
		wakesCfg := &engine.WakesConfig{Granularity: cfg.FetchCooldown, Logger: logger.Named("wakes")}
		if !cfg.Worker {
			wakesCfg.Scan = -1
		}
		wakes = map[string]*engine.Wakes{engine.QueueDeliveries: engine.NewWakes(pool, engine.QueueDeliveries, wakesCfg)}
		if cfg.Worker {
			// The default queue's jobs snooze only in process (bulk
			// replays going on), so no read of what comes due.
			wakes[river.QueueDefault] = engine.NewWakes(pool, river.QueueDefault, &engine.WakesConfig{
				Granularity: cfg.FetchCooldown, Scan: -1, Logger: wakesCfg.Logger})
			worker.SetWakes(wakes[engine.QueueDeliveries])
		}
		enqueuer.SetWakes(wakes[engine.QueueDeliveries])
	}
	var handoffs *engine.Handoffs
	if n := cfg.HandoffsAtOnce(); n > 0 {
		// First attempts of the events this process accepts, made here
		// after the commit; a job left behind is River's once the lease
		// is as long as River waits for a job stuck running.
		if handoffs, err = engine.NewHandoffs(worker, pool, &engine.HandoffsConfig{
			Max: n, Lease: jobTimeout + RescueMargin, Client: riverClient, Logger: logger.Named("handoff"),
		}); err != nil {
			return nil, err
		}
		enqueuer.SetHandoffs(handoffs)
	}
	// Test sends take the worker's slots per webhook, shared with
	// deliveries, where it works any; elsewhere a small cap of their own.
	var testSlots admin.Slots
	if cfg.Worker {
		testSlots = worker
	}
	api, err := admin.New(pool, enqueuer, keys, &admin.Config{
		BootstrapAdminKey: cfg.BootstrapAdminKey, Policy: policy, Logger: logger.Named("api"),
		Metrics: m, Sender: worker, Now: cfg.Now, TracerProvider: cfg.TracerProvider,
		ManagementRate: cfg.RateLimitManagement, ManagementRateAdmin: cfg.RateLimitManagementAdmin,
		IntakeRateAccount: cfg.RateLimitIntakeAccount, IntakeRateAdmin: cfg.RateLimitIntakeAdmin,
		IntakeRateEventsWrite: cfg.RateLimitIntakeEventsWrite, AuthFailureLimit: cfg.AuthFailureLimit, Trust: trust,
		BodyBudget: cfg.BodyBudget, BodyBudgetPerKey: cfg.BodyBudgetPerKey, BodyMinRate: cfg.BodyMinRate,
		MaxWebhooksPerAccount: cfg.MaxWebhooksPerAccount, TestSendRate: cfg.TestSendRate,
		TestSendSlots: testSlots, TestSendsInFlight: cfg.TestSendsInFlight, APIKeyCacheTTL: cfg.APIKeyCacheTTL,
		IntakeTransactions: cfg.IntakeTransactions, IntakeLinger: cfg.IntakeLinger,
	})
	if err != nil {
		return nil, err
	}
	handler := api.Handler()
	var riverUI *riverui.Handler
	stopping := make(chan struct{})
	if cfg.API {
		// River UI at /riverui, for looking at the queue itself, behind the
		// admin key (Bearer or Basic). Its retry and cancel buttons are
		// harmless to delivery state: the worker sends only for the job a
		// pending delivery names, and the reconciler re-queues a delivery
		// whose job was cancelled. Replays go through our own API.
		riverUI, err = riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(riverClient, nil),
			Logger: slog.New(&stoppingHandler{
				Handler:  zapslog.NewHandler(logger.Core(), zapslog.WithName("riverui")),
				stopping: stopping,
			}),
			Prefix: RiverUIPrefix,
		})
		if err != nil {
			return nil, fmt.Errorf("error creating River UI handler: %w", err)
		}
		// The dashboard at /dashboard (sessions signed in with an API key),
		// and / sends a browser there.
		dash, err := dashboard.New(api, &dashboard.Config{Logger: logger.Named("dashboard"), Trust: trust, Now: cfg.Now,
			FrameAncestors: cfg.PortalFrameAncestors})
		if err != nil {
			return nil, err
		}
		guardedRiverUI, err := guardRiverUI(api.RequireAdmin(riverUI), trust)
		if err != nil {
			return nil, fmt.Errorf("WEBHOOKD_PUBLIC_URL: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle(RiverUIPrefix+"/", guardedRiverUI)
		mux.Handle(dashboard.Prefix+"/", dash.Handler())
		mux.Handle("GET /{$}", http.RedirectHandler(dashboard.Prefix+"/", http.StatusSeeOther))
		mux.Handle("/", handler)
		handler = mux
	}
	if !cfg.API {
		// Worker only: health checks for the orchestrator, nothing else.
		mux := http.NewServeMux()
		mux.Handle("GET /healthz", handler)
		mux.Handle("GET /readyz", handler)
		handler = mux
	}
	// GET /metrics has a listener of its own (WEBHOOKD_METRICS_ADDR), so
	// that a flood on the API can't starve the scraper, and account data
	// (event types, volumes) isn't served to the world.
	var metricsHTTP *http.Server
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		metricsHTTP = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
		}
	}
	ok = true
	return &Server{
		enqueuer:   enqueuer,
		cfg:        cfg,
		logger:     logger,
		byKey:      byKey,
		worker:     worker,
		handoffs:   handoffs,
		wakes:      wakes,
		pool:       pool,
		river:      riverClient,
		reconciler: reconciler,
		riverUI:    riverUI,
		stopping:   stopping,
		health:     health,
		metrics:    metricsHTTP,
		m:          m,
		http: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
	}, nil
}

// checkSchema fails unless our migrations are all applied.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var behind *store.SchemaBehindError
	err := store.CheckSchema(ctx, pool)
	switch {
	case errors.As(err, &behind):
		return fmt.Errorf("database schema is at version %d, this webhookd needs %d: run `webhookd migrate`", behind.Have, behind.Want)
	case err != nil:
		return fmt.Errorf("error reading the schema version (has `webhookd migrate` been run on this database?): %w", err)
	}
	return nil
}

// waitForDatabase pings the database until it answers, backing off
// exponentially for at most wait and logging each failure at warn.
func waitForDatabase(ctx context.Context, pool *pgxpool.Pool, poolCfg *pgxpool.Config, wait time.Duration, logger *zap.Logger) error {
	conn := poolCfg.ConnConfig
	where := fmt.Sprintf("postgres://%s@%s/%s", conn.User, net.JoinHostPort(conn.Host, strconv.Itoa(int(conn.Port))), conn.Database)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 2 * time.Second
	bo.MaxElapsedTime = wait
	ping := func() error {
		pingCtx, cancel := context.WithTimeout(ctx, min(wait, 5*time.Second))
		defer cancel()
		return pool.Ping(pingCtx)
	}
	notify := func(err error, next time.Duration) {
		logger.Warn("database not reachable yet; retrying", zap.String("database", where),
			zap.Duration("retry_in", next), zap.Error(err))
	}
	if err := backoff.RetryNotify(ping, backoff.WithContext(bo, ctx), notify); err != nil {
		return fmt.Errorf("DATABASE_URL: database %s not reachable after %s (WEBHOOKD_DB_WAIT): %w", where, wait, err)
	}
	return nil
}

// Start listens on the configured address and starts the workers.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("WEBHOOKD_ADDR: error listening on %s: %w", s.cfg.Addr, err)
	}
	s.listener = ln
	if s.metrics != nil {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("WEBHOOKD_METRICS_ADDR: error listening on %s: %w", s.cfg.MetricsAddr, err)
		}
		s.metricsLn = mln
	}
	closeListeners := func() {
		ln.Close()
		if s.metricsLn != nil {
			s.metricsLn.Close()
		}
	}
	// River's Start context governs its lifetime; Stop ends it explicitly.
	if s.cfg.Worker {
		if err := s.river.Start(context.WithoutCancel(ctx)); err != nil {
			closeListeners()
			return fmt.Errorf("error starting River: %w", err)
		}
	}
	if s.riverUI != nil {
		uiCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if err := s.riverUI.Start(uiCtx); err != nil {
			cancel()
			if s.cfg.Worker {
				_ = s.river.Stop(ctx)
			}
			closeListeners()
			return fmt.Errorf("error starting River UI: %w", err)
		}
		s.stopRiverUI = cancel
	}
	if s.wakes != nil {
		wakesCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		unsubscribe := func() {}
		var wg sync.WaitGroup
		if s.cfg.Worker { // an API-only process's River client works no job
			var events <-chan *river.Event
			events, unsubscribe = s.river.SubscribeConfig(&river.SubscribeConfig{Kinds: engine.RiverWakeEvents, ChanSize: wakesEventsBuffer})
			wg.Go(func() { engine.FollowRiver(wakesCtx, events, s.wakes) })
		}
		s.stopWakes, s.wakesDone = func() { cancel(); unsubscribe() }, make(chan struct{})
		for _, w := range s.wakes {
			wg.Go(func() { w.Run(wakesCtx) })
		}
		go func() {
			defer close(s.wakesDone)
			wg.Wait()
		}()
	}
	if s.health != nil {
		healthCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.stopHealth, s.healthDone = cancel, make(chan struct{})
		go func() {
			defer close(s.healthDone)
			s.health.Run(healthCtx)
		}()
	}
	s.startProcs()
	s.httpDone = make(chan error, 1)
	go func() { s.httpDone <- s.http.Serve(ln) }()
	metricsAddr := "off"
	if s.metricsLn != nil {
		s.metricsDone = make(chan error, 1)
		go func() { s.metricsDone <- s.metrics.Serve(s.metricsLn) }()
		metricsAddr = s.metricsLn.Addr().String()
	}
	s.logger.Info("webhookd serving", zap.String("addr", ln.Addr().String()), zap.String("metrics_addr", metricsAddr),
		zap.Bool("api", s.cfg.API), zap.Bool("worker", s.cfg.Worker), zap.Int("max_workers", s.cfg.MaxWorkers),
		zap.Int32("db_max_conns", s.cfg.DBMaxConns), zap.Duration("http_timeout", s.cfg.HTTPTimeout),
		zap.Bool("transaction_pooler", s.cfg.transactionPooler()))
	return nil
}

// Addr is the address the API listens on (after Start).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// MetricsAddr is the address GET /metrics is served on (after Start), or
// "" when WEBHOOKD_METRICS_ADDR is off.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Metrics is the server's metrics (what GET /metrics serves).
func (s *Server) Metrics() *metrics.Metrics { return s.m }

// Enqueuer is the API's enqueuer (its webhook cache's counts).
func (s *Server) Enqueuer() *engine.Enqueuer { return s.enqueuer }

// Pool is the server's database pool.
func (s *Server) Pool() *pgxpool.Pool { return s.pool }

// River is the server's River client.
func (s *Server) River() *river.Client[pgx.Tx] { return s.river }

// Stop shuts down gracefully: the API stops taking requests, the workers
// stop fetching and running attempts get ShutdownTimeout to finish before
// they are cancelled (and recorded as interrupted).
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	shutdownCtx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout+5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("error shutting down HTTP server: %w", err))
	}
	if s.httpDone != nil {
		if err := <-s.httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if s.metricsDone != nil {
		// Scrapes are answered until the API has drained.
		if err := s.metrics.Shutdown(shutdownCtx); err != nil {
			errs = append(errs, fmt.Errorf("error shutting down the metrics listener: %w", err))
		}
		if err := <-s.metricsDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	select {
	case <-s.stopping:
	default:
		close(s.stopping)
	}
	if s.stopRiverUI != nil {
		s.stopRiverUI()
	}
	if s.cfg.Worker {
		// Hand-offs under way finish (or are cut short) beside River's
		// jobs, in the same time.
		handoffsDone := make(chan struct{})
		go func() {
			defer close(handoffsDone)
			softCtx, cancelSoft := context.WithTimeout(shutdownCtx, s.cfg.ShutdownTimeout)
			defer cancelSoft()
			s.handoffs.Stop(softCtx) // nil: none
		}()
		if err := s.river.Stop(shutdownCtx); err != nil {
			errs = append(errs, fmt.Errorf("error stopping River: %w", err))
		}
		<-handoffsDone
		s.worker.Close()
	}
	if s.stopWakes != nil {
		// After the hand-offs' last moves; what is still to ring is the
		// other processes' (their reads of what comes due, their polls).
		s.stopWakes()
		<-s.wakesDone
	}
	if s.stopHealth != nil {
		// The workers have stopped: write what they observed last.
		s.stopHealth()
		<-s.healthDone
		if err := s.health.Flush(shutdownCtx); err != nil {
			errs = append(errs, fmt.Errorf("error writing endpoint health: %w", err))
		}
	}
	s.closePools()
	s.procs.Stop() // nil: none
	s.logger.Info("webhookd stopped")
	return errors.Join(errs...)
}

// startProcs starts the processor governor when Config.AdaptiveProcs asks
// for it and the GOMAXPROCS environment variable doesn't fix the count.
func (s *Server) startProcs() {
	if !s.cfg.AdaptiveProcs {
		return
	}
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		s.logger.Info("GOMAXPROCS is set: the Go processor count stays as it says (WEBHOOKD_ADAPTIVE_PROCS does nothing)", zap.String("gomaxprocs", v))
		return
	}
	g, err := procs.Start(procs.Config{})
	if err != nil {
		s.logger.Warn("the Go processor count stays the runtime's (WEBHOOKD_ADAPTIVE_PROCS)", zap.Error(err))
		return
	}
	s.procs = g
	s.logger.Info("Go processors follow the load (WEBHOOKD_ADAPTIVE_PROCS): one while quiet, the runtime's count while busy",
		zap.Int("busy_procs", runtime.GOMAXPROCS(0)), zap.Float64("up_cores", procs.UpDefault),
		zap.Float64("down_cores", procs.DownDefault), zap.Duration("down_after", procs.DownAfterDefault))
}

func (s *Server) closePools() {
	if s.byKey != nil {
		s.byKey.Close()
	}
	s.pool.Close()
}

// wakesEventsBuffer is the buffer of River's events for the alarms: River
// drops an event that finds it full (and logs it), and completes jobs in
// batches of up to 5,000.
const wakesEventsBuffer = 10_000

// Run starts the server and serves until ctx is cancelled, then stops it.
func Run(ctx context.Context, cfg *Config, logger *zap.Logger) error {
	srv, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		srv.closePools()
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-srv.httpDone:
		srv.httpDone = nil
		srv.logger.Error("HTTP server stopped", zap.Error(err))
	}
	return srv.Stop(context.WithoutCancel(ctx))
}
