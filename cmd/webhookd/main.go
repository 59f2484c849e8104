// Command webhookd is the Mono webhook delivery engine.
//
//	webhookd dev        run everything with a demo (throwaway PostgreSQL unless DATABASE_URL is set)
//	webhookd migrate    apply River's and webhookd's migrations
//	webhookd serve      run the API and the delivery workers
//	webhookd receiver   run the demo receiver alone (prints and verifies deliveries)
//	webhookd bench      run the benchmark scenarios and print a table
//	webhookd deliveries list, show and replay deliveries through the API
//	webhookd events     show an event through the API
//	webhookd portal-link mint a dashboard sign-in link for an account
//	webhookd version    print the version
//
// Every setting is an environment variable with a flag of the same meaning;
// `webhookd <command> -h` lists them.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	adminapi "github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/bench"
	"github.com/mono/webhookd/internal/dashboard"
	"github.com/mono/webhookd/internal/demo"
	"github.com/mono/webhookd/internal/durations"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/forwarded"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/migrations"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `webhookd: the Mono webhook delivery engine

Usage:
  webhookd dev        run the engine with a demo (starts a throwaway PostgreSQL when DATABASE_URL is unset)
  webhookd migrate    apply River's and webhookd's migrations to DATABASE_URL, or WEBHOOKD_DIRECT_DATABASE_URL when set (a no-op when current)
  webhookd serve      run the HTTP API and the delivery workers
  webhookd receiver   run the demo receiver alone: verifies and prints each delivery
  webhookd bench      run the benchmark scenarios (own receiver on 127.0.0.2; fresh database)
  webhookd keys       create, list and revoke API keys on DATABASE_URL ('webhookd keys help')
  webhookd deliveries list, show and replay deliveries through the API ('webhookd deliveries help')
  webhookd events     show an event and its deliveries through the API ('webhookd events help')
  webhookd portal-link mint a single-use dashboard sign-in link for an account ('webhookd portal-link -h')
  webhookd version    print the version

Run 'webhookd <command> -h' for its settings.
`

// GCPercentDefault is the garbage collector's GOGC unless the environment
// sets GOGC. The live heap is small (tens of MB) and short-lived garbage per
// delivery is most of what is allocated, so collecting at 4× the live heap
// instead of 2× saves CPU for a few tens of MB more memory. 400 measured
// no faster than 300 and 20 – 25 MB larger: peak RSS 138 – 142 MB against
// 116 – 119, near the 150 MB target (BENCHMARKS.md).
const GCPercentDefault = 300

func setGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercentDefault)
	}
}

func main() {
	bench.ServeChildIfAsked() // `webhookd bench` started this process as its external receiver, worker process or River's process
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	setGC()

	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "dev":
		err = runDev(ctx, args)
	case "migrate":
		err = runMigrate(ctx, args)
	case "serve":
		err = runServe(ctx, args)
	case "receiver":
		err = runReceiver(ctx, args)
	case "bench":
		err = runBench(ctx, args)
	case "keys":
		err = runKeys(ctx, args, os.Stdout)
	case "deliveries":
		err = runDeliveries(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	case "events":
		err = runEvents(ctx, args, os.Stdout)
	case "portal-link":
		err = runPortalLink(ctx, args, os.Stdout)
	case "version", "--version", "-version":
		fmt.Println("webhookd", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "webhookd: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhookd:", err)
		os.Exit(1)
	}
}

// settings binds environment variables to flags: each flag's default is its
// variable's value, and a bad value names both.
type settings struct {
	fs      *flag.FlagSet
	strs    map[string]*string
	envs    map[string]string
	parsers []func() error
}

func newSettings(name string) *settings {
	fs := flag.NewFlagSet("webhookd "+name, flag.ContinueOnError)
	return &settings{fs: fs, strs: map[string]*string{}, envs: map[string]string{}}
}

func (s *settings) str(flagName, env, def, help string) *string {
	value := def
	if v, ok := os.LookupEnv(env); ok {
		value = v
	}
	p := s.fs.String(flagName, value, help+" ("+env+")")
	s.strs[flagName], s.envs[flagName] = p, env
	return p
}

func (s *settings) where(flagName string) string {
	return fmt.Sprintf("%s (-%s)", s.envs[flagName], flagName)
}

func (s *settings) duration(flagName, env, def, help string, dst *time.Duration) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() error {
		d, err := durations.Parse(*raw)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: %q is not a positive duration such as 10s, 1m30s or 30d", s.where(flagName), *raw)
		}
		*dst = d
		return nil
	})
}

// linger is a wait for company (batch.Linger): a duration from 0 to 1s;
// 0 sets off, the config's value for never.
func (s *settings) linger(flagName, env, def, help string, dst *time.Duration, off time.Duration) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() error {
		d, err := durations.Parse(*raw)
		if err != nil || d < 0 || d > time.Second {
			return fmt.Errorf("%s: %q is not a duration from 0 (never) to 1s, such as 20ms", s.where(flagName), *raw)
		}
		*dst = d
		if d == 0 {
			*dst = off
		}
		return nil
	})
}

func (s *settings) float(flagName, env, def, help string, dst *float64) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() error {
		f, err := strconv.ParseFloat(strings.TrimSpace(*raw), 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("%s: %q is not a number greater than 0", s.where(flagName), *raw)
		}
		*dst = f
		return nil
	})
}

func (s *settings) boolean(flagName, env, def, help string, dst *bool) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() error {
		b, err := strconv.ParseBool(strings.TrimSpace(*raw))
		if err != nil {
			return fmt.Errorf("%s: %q is not true or false", s.where(flagName), *raw)
		}
		*dst = b
		return nil
	})
}

func (s *settings) integer(flagName, env, def, help string, dst *int) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() error {
		n, err := strconv.Atoi(strings.TrimSpace(*raw))
		if err != nil || n < 0 {
			return fmt.Errorf("%s: %q is not a whole number >= 0", s.where(flagName), *raw)
		}
		*dst = n
		return nil
	})
}

// offOrCount reads a setting that is off or a count, such as
// WEBHOOKD_BULK_WHILE_LIVE (named where): off is -1, otherwise a whole
// number (0: the default).
func offOrCount(where, raw string) (int, error) {
	n, err := parseOffOrCount(raw)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	return n, nil
}

func (s *settings) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", s.fs.Arg(0))
	}
	for _, p := range s.parsers {
		if err := p(); err != nil {
			return err
		}
	}
	return nil
}

type logSettings struct {
	level, format *string
}

func (s *settings) logging(defLevel, defFormat string) *logSettings {
	return &logSettings{
		level:  s.str("log-level", "WEBHOOKD_LOG_LEVEL", defLevel, "log level: debug, info, warn or error"),
		format: s.str("log-format", "WEBHOOKD_LOG_FORMAT", defFormat, "log format: json or console"),
	}
}

func (l *logSettings) build() (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(*l.level)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_LOG_LEVEL (-log-level): %q is not one of debug, info, warn, error", *l.level)
	}
	var cfg zap.Config
	switch *l.format {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("WEBHOOKD_LOG_FORMAT (-log-format): %q is not json or console", *l.format)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	// zap's production sampling would drop most of the one-line-per-attempt
	// debug logs under load; every attempt gets its line.
	cfg.Sampling = nil
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

func serverSettings(s *settings, cfg *server.Config) {
	s.fs.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (DATABASE_URL)")
	directURL := s.str("direct-database-url", "WEBHOOKD_DIRECT_DATABASE_URL", "", "PostgreSQL itself or a session-mode pool, for the workers' by-key pool, when DATABASE_URL goes through a transaction pooler (empty: DATABASE_URL)")
	pooler := s.str("db-pooler", "WEBHOOKD_DB_POOLER", server.PoolerNone, "what DATABASE_URL goes through: none (PostgreSQL or a session-mode pool) or transaction (PgBouncer's pool_mode = transaction: River polls, no named prepared statements; needs WEBHOOKD_DIRECT_DATABASE_URL)")
	s.parsers = append(s.parsers, func() (err error) {
		if cfg.DBPooler, err = server.ParsePooler(*pooler); err != nil {
			return fmt.Errorf("%s: %w", s.where("db-pooler"), err)
		}
		cfg.DirectDatabaseURL = strings.TrimSpace(*directURL)
		return nil
	})
	addr := s.str("addr", "WEBHOOKD_ADDR", server.AddrDefault, "HTTP listen address")
	key := s.str("encryption-key", "WEBHOOKD_ENCRYPTION_KEY", "", "base64 32-byte key(s) encrypting webhook secrets, comma-separated, newest first; required")
	admin := s.str("bootstrap-admin-key", "WEBHOOKD_BOOTSTRAP_ADMIN_KEY", "", "an admin API key that is always accepted")
	s.float("retry-scale", "WEBHOOKD_RETRY_SCALE", "1", "retry schedule scale factor (> 0; 0.001 runs 8.44 h in ~30 s)", &cfg.RetryScale)
	cidrs := s.str("allowed-cidrs", "WEBHOOKD_ALLOWED_CIDRS", "", "comma-separated private CIDRs webhooks may target (never 127.0.0.1, 0.0.0.0/8 or ::)")
	s.parsers = append(s.parsers, func() error {
		for _, part := range strings.Split(*cidrs, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			prefix, err := netip.ParsePrefix(part)
			if err != nil {
				return fmt.Errorf("%s: %q is not a CIDR such as 10.20.0.0/16", s.where("allowed-cidrs"), part)
			}
			cfg.AllowedCIDRs = append(cfg.AllowedCIDRs, prefix.Masked())
		}
		return nil
	})
	egress := s.str("egress-proxy", "WEBHOOKD_EGRESS_PROXY", "", "HTTP CONNECT proxy (http://host:port) all webhook traffic leaves through, so it comes from addresses receivers can allow-list (empty: none)")
	s.parsers = append(s.parsers, func() (err error) {
		if *egress = strings.TrimSpace(*egress); *egress != "" {
			if cfg.EgressProxy, err = outbound.ParseEgressProxy(*egress); err != nil {
				return fmt.Errorf("%s: %w", s.where("egress-proxy"), err)
			}
		}
		return nil
	})
	s.boolean("allow-private-networks", "WEBHOOKD_ALLOW_PRIVATE_NETWORKS", "false", "allow private/loopback webhook targets (development and tests only)", &cfg.AllowPrivateNetworks)
	handoffs := s.str("handoffs", "WEBHOOKD_HANDOFFS", strconv.Itoa(engine.HandoffsMaxDefault), "first attempts of deliveries of POST /v1/events(/batch) that a process that is API and worker makes at once itself, straight after the commit, instead of through River's queue (0: none)")
	s.parsers = append(s.parsers, func() error {
		n, err := strconv.Atoi(strings.TrimSpace(*handoffs))
		if err != nil || n < 0 {
			return fmt.Errorf("%s: %q is not a whole number >= 0", s.where("handoffs"), *handoffs)
		}
		cfg.Handoffs = n
		if n == 0 {
			cfg.Handoffs = server.HandoffsOff
		}
		return nil
	})
	s.linger("record-linger", "WEBHOOKD_RECORD_LINGER", engine.RecordLingerDefault.String(), "how long the recording of an attempt that comes alone, soon after the one before it, waits for others to share its statement and commit (0: never; at most 1s)", &cfg.RecordLinger, server.RecordLingerOff)
	s.linger("intake-linger", "WEBHOOKD_INTAKE_LINGER", "0", "how long a POST /v1/events request that finds the intake idle, soon after the one before it, waits for others to share its transaction, before its 202 (0: never; at most 1s)", &cfg.IntakeLinger, 0)
	s.boolean("adaptive-procs", "WEBHOOKD_ADAPTIVE_PROCS", "true", "run on one Go processor while the process uses little CPU and on all of them (GOMAXPROCS's default) once it uses over half a core; ignored when GOMAXPROCS is set", &cfg.AdaptiveProcs)
	s.boolean("keep-finished-jobs", "WEBHOOKD_KEEP_FINISHED_JOBS", "false", "keep a finished delivery's River job (completed, for River UI) for 10 minutes instead of deleting it when its last attempt is recorded", &cfg.KeepFinishedJobs)
	s.duration("http-timeout", "WEBHOOKD_HTTP_TIMEOUT", "10s", "timeout of one delivery attempt", &cfg.HTTPTimeout)
	s.integer("max-workers", "WEBHOOKD_MAX_WORKERS", strconv.Itoa(server.MaxWorkersDefault), "deliveries worked at once per process", &cfg.MaxWorkers)
	s.integer("webhook-concurrency", "WEBHOOKD_WEBHOOK_CONCURRENCY", strconv.Itoa(engine.WebhookConcurrencyDefault), "concurrent attempts to one webhook per process", &cfg.WebhookConcurrency)
	s.integer("max-idle-conns-per-host", "WEBHOOKD_MAX_IDLE_CONNS_PER_HOST", "0", "idle keep-alive connections kept per receiver host (0: as many as max-workers)", &cfg.MaxIdleConnsPerHost)
	bulk := s.str("bulk-while-live", "WEBHOOKD_BULK_WHILE_LIVE", "0", "backlogged bulk deliveries under way per process while other accounts' live ones are answered (0: max-workers/16; off: no limit)")
	s.parsers = append(s.parsers, func() (err error) {
		cfg.BulkWhileLive, err = offOrCount(s.where("bulk-while-live"), *bulk)
		return err
	})
	s.offOrSize("intake-webhook-cache", "WEBHOOKD_INTAKE_WEBHOOK_CACHE", "16MiB", "memory for accounts' live webhooks kept by the API to fan events out without reading them; a change to them anywhere is seen at the next event's insert, which is retried (off: read them for every event)", &cfg.IntakeWebhookCache)
	var maxConns int
	s.integer("db-max-conns", "WEBHOOKD_DB_MAX_CONNS", strconv.Itoa(server.DBMaxConnsDefault), "database pool size per process", &maxConns)
	s.duration("reconcile-interval", "WEBHOOKD_RECONCILE_INTERVAL", dur(time.Minute), "how often orphaned pending deliveries are re-queued", &cfg.ReconcileInterval)
	s.duration("shutdown-timeout", "WEBHOOKD_SHUTDOWN_TIMEOUT", dur(server.ShutdownTimeoutDefault), "how long running attempts may finish on shutdown", &cfg.ShutdownTimeout)
	s.duration("retention", "WEBHOOKD_RETENTION", "30d", "how long succeeded and cancelled deliveries are kept (at least 1d)", &cfg.Retention)
	s.duration("dead-retention", "WEBHOOKD_DEAD_RETENTION", "90d", "how long dead deliveries are kept, to be replayed (at least 1d)", &cfg.DeadRetention)
	s.duration("replay-spacing", "WEBHOOKD_REPLAY_SPACING", dur(engine.ReplaySpacingDefault), "gap between two deliveries of one webhook in a bulk replay (at most 1h)", &cfg.ReplaySpacing)
	autoPause := s.str("auto-pause-after", "WEBHOOKD_AUTO_PAUSE_AFTER", "0", "pause a webhook with no successful attempt for this long, such as 3d (0: never)")
	s.parsers = append(s.parsers, func() error {
		d, err := durations.Parse(*autoPause)
		if err != nil || d < 0 {
			return fmt.Errorf("%s: %q is not 0 or a duration such as 3d or 72h", s.where("auto-pause-after"), *autoPause)
		}
		cfg.AutoPauseAfter = d
		return nil
	})
	notifyURL := s.str("notify-url", "WEBHOOKD_NOTIFY_URL", "", "where webhookd's notifications for the operator go (webhook.paused, webhook.resumed); may be on a private network (empty: none)")
	notifySecret := s.str("notify-secret", "WEBHOOKD_NOTIFY_SECRET", "", "the secret the operator's notifications are signed with (at least 16 characters; set it in the environment)")
	s.parsers = append(s.parsers, func() error {
		cfg.NotifyURL, cfg.NotifySecret = strings.TrimSpace(*notifyURL), *notifySecret
		return nil
	})
	s.integer("endpoint-failing-after", "WEBHOOKD_ENDPOINT_FAILING_AFTER", strconv.Itoa(engine.FailingThresholdDefault), "consecutive failed attempts that make a webhook's endpoint.failing notification", &cfg.EndpointFailingAfter)
	s.duration("db-wait", "WEBHOOKD_DB_WAIT", dur(server.DBWaitDefault), "how long start-up waits for the database", &cfg.DBWait)
	metricsAddr := s.str("metrics-addr", "WEBHOOKD_METRICS_ADDR", server.MetricsAddrDefault, "address of the listener serving GET /metrics (empty: none)")
	publicURL := s.str("public-url", "WEBHOOKD_PUBLIC_URL", "", "the absolute http(s) URL users reach webhookd at, such as https://webhooks.example.com (https: Secure dashboard cookies)")
	proxies := s.str("trusted-proxies", "WEBHOOKD_TRUSTED_PROXIES", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed")
	s.parsers = append(s.parsers, func() (err error) {
		if _, err := forwarded.ParsePublicURL(*publicURL); err != nil {
			return fmt.Errorf("%s: %w", s.where("public-url"), err)
		}
		cfg.PublicURL = strings.TrimSpace(*publicURL)
		cfg.MetricsAddr = strings.TrimSpace(*metricsAddr)
		if cfg.TrustedProxies, err = forwarded.ParseProxies(*proxies); err != nil {
			return fmt.Errorf("%s: %w", s.where("trusted-proxies"), err)
		}
		return nil
	})
	frameAncestors := s.str("portal-frame-ancestors", "WEBHOOKD_PORTAL_FRAME_ANCESTORS", "", "comma-separated origins whose pages may frame the dashboard, such as https://app.example.com (needs an https public URL; empty: no framing)")
	s.parsers = append(s.parsers, func() (err error) {
		if cfg.PortalFrameAncestors, err = dashboard.ParseFrameAncestors(*frameAncestors); err != nil {
			return fmt.Errorf("%s: %w", s.where("portal-frame-ancestors"), err)
		}
		return nil
	})
	s.integer("max-webhooks-per-account", "WEBHOOKD_MAX_WEBHOOKS_PER_ACCOUNT", strconv.Itoa(adminapi.MaxWebhooksPerAccountDefault), "live webhooks one account may have", &cfg.MaxWebhooksPerAccount)
	s.integer("max-fanout-per-request", "WEBHOOKD_MAX_FANOUT_PER_REQUEST", "0", "deliveries (events × webhooks) one POST /v1/events or /v1/events/batch may create (0: 1000 × max-webhooks-per-account)", &cfg.MaxFanoutPerRequest)
	s.rate("test-send-rate", "WEBHOOKD_TEST_SEND_RATE", adminapi.TestSendRateDefault.String(), "test sends each webhook may have per process, such as 1/s,burst=5 (off: none)", &cfg.TestSendRate)
	s.integer("test-sends-in-flight", "WEBHOOKD_TEST_SENDS_IN_FLIGHT", strconv.Itoa(adminapi.TestSendsInFlightDefault), "test sends in flight per webhook on a process without workers (with workers: the worker's cap per webhook)", &cfg.TestSendsInFlight)
	s.integer("intake-transactions", "WEBHOOKD_INTAKE_TRANSACTIONS", strconv.Itoa(adminapi.IntakeTransactionsDefault), fmt.Sprintf("transactions storing POST /v1/events requests at once per process, 1 to %d (requests arriving meanwhile join the next, up to 100 each)", adminapi.IntakeTransactionsMax), &cfg.IntakeTransactions)
	keyCache := s.str("api-key-cache-ttl", "WEBHOOKD_API_KEY_CACHE_TTL", adminapi.APIKeyCacheTTLDefault.String(), "how long a verified API key is used without a query, at most 2s: a key revoked on another process works here that much longer (0: no cache)")
	s.parsers = append(s.parsers, func() error {
		d, err := time.ParseDuration(strings.TrimSpace(*keyCache))
		if *keyCache == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 || d > adminapi.APIKeyCacheTTLMax {
			return fmt.Errorf("%s: %q is not 0 or a duration of at most %s, such as 1s", s.where("api-key-cache-ttl"), *keyCache, adminapi.APIKeyCacheTTLMax)
		}
		cfg.APIKeyCacheTTL = d
		if d == 0 {
			cfg.APIKeyCacheTTL = -1 // none
		}
		return nil
	})
	s.rate("rate-limit-management", "WEBHOOKD_RATE_LIMIT_MANAGEMENT", adminapi.ManagementRateDefault.String(), "each account key's management requests per process, such as 50/s,burst=100 (off: none)", &cfg.RateLimitManagement)
	s.rate("rate-limit-management-admin", "WEBHOOKD_RATE_LIMIT_MANAGEMENT_ADMIN", "off", "each admin key's management requests per process (off: none)", &cfg.RateLimitManagementAdmin)
	s.rate("rate-limit-intake-account", "WEBHOOKD_RATE_LIMIT_INTAKE_ACCOUNT", "off", "events each account key may post per process, such as 1000/s,burst=2000 (off: none)", &cfg.RateLimitIntakeAccount)
	s.rate("rate-limit-intake-admin", "WEBHOOKD_RATE_LIMIT_INTAKE_ADMIN", "off", "events each admin key may post per process (off: none)", &cfg.RateLimitIntakeAdmin)
	s.rate("rate-limit-intake-events-write", "WEBHOOKD_RATE_LIMIT_INTAKE_EVENTS_WRITE", "off", "events each events:write key may post per process (off: none)", &cfg.RateLimitIntakeEventsWrite)
	authFailures := s.str("auth-failure-limit", "WEBHOOKD_AUTH_FAILURE_LIMIT", strconv.Itoa(adminapi.AuthFailureLimitDefault), "failed API keys a client address may present in a minute before its failing requests get 429 for a minute (off: no throttling)")
	s.parsers = append(s.parsers, func() error {
		n, err := parseOffOrCount(*authFailures)
		if err != nil || n == 0 {
			return fmt.Errorf("%s: %q is neither off nor a whole number >= 1", s.where("auth-failure-limit"), *authFailures)
		}
		cfg.AuthFailureLimit = n
		return nil
	})
	s.size("body-budget", "WEBHOOKD_BODY_BUDGET", "32MiB", "bytes of request bodies read at once per process", &cfg.BodyBudget)
	s.size("body-budget-per-key", "WEBHOOKD_BODY_BUDGET_PER_KEY", "0", "most of the body budget one API key may hold (0: a quarter of it)", &cfg.BodyBudgetPerKey)
	s.offOrSize("body-min-rate", "WEBHOOKD_BODY_MIN_RATE", "64KiB", "slowest a request body may arrive after its first second, per second (off: no minimum)", &cfg.BodyMinRate)
	s.roles(cfg)
	s.parsers = append(s.parsers, func() error {
		cfg.Addr, cfg.EncryptionKey, cfg.BootstrapAdminKey = *addr, *key, *admin
		cfg.DBMaxConns = int32(maxConns)
		cfg.Version = version
		return nil
	})
}

func dur(d time.Duration) string { return d.String() }

// rate binds a rate setting (adminapi.ParseRate: off, or such as
// 50/s,burst=100) to dst.
func (s *settings) rate(flagName, env, def, help string, dst *adminapi.Rate) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() (err error) {
		if *dst, err = adminapi.ParseRate(*raw); err != nil {
			return fmt.Errorf("%s: %w", s.where(flagName), err)
		}
		return nil
	})
}

// offOrSize binds a setting that is off (-1) or a size in bytes of at
// least 1 (a whole number, or with a KiB, MiB or GiB suffix) to dst.
func (s *settings) offOrSize(flagName, env, def, help string, dst *int64) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() error {
		if strings.TrimSpace(*raw) == "off" {
			*dst = -1
			return nil
		}
		n, err := parseSize(*raw)
		if err != nil || n < 1 {
			return fmt.Errorf("%s: %q is neither off nor a size such as %s", s.where(flagName), *raw, def)
		}
		*dst = n
		return nil
	})
}

// size binds a size setting in bytes (a whole number, or with a KiB, MiB
// or GiB suffix) to dst.
func (s *settings) size(flagName, env, def, help string, dst *int64) {
	raw := s.str(flagName, env, def, help)
	s.parsers = append(s.parsers, func() (err error) {
		if *dst, err = parseSize(*raw); err != nil {
			return fmt.Errorf("%s: %q is not a size in bytes such as 65536, 64KiB or 32MiB", s.where(flagName), *raw)
		}
		return nil
	})
}

// parseSize reads a whole number of bytes, optionally with a KiB, MiB or
// GiB suffix.
func parseSize(raw string) (int64, error) {
	raw = strings.TrimSpace(raw)
	unit := int64(1)
	for suffix, u := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(raw, suffix) {
			raw, unit = strings.TrimSpace(strings.TrimSuffix(raw, suffix)), u
			break
		}
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/unit {
		return 0, fmt.Errorf("%q is not a size", raw)
	}
	return n * unit, nil
}

// parseOffOrCount reads "off" (-1) or a whole number >= 0.
func parseOffOrCount(raw string) (int, error) {
	raw = strings.TrimSpace(raw)
	if raw == "off" {
		return -1, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is neither off nor a whole number >= 0", raw)
	}
	return n, nil
}

// roles binds WEBHOOKD_ROLES (a comma-separated list of api and worker,
// default both) and the -api and -worker flags to cfg.API and cfg.Worker.
// A flag set to true selects that role alone, with any other flag given;
// a flag set to false removes a role from WEBHOOKD_ROLES.
func (s *settings) roles(cfg *server.Config) {
	raw := s.str("roles", "WEBHOOKD_ROLES", "api,worker", "roles of this process: api, worker or api,worker")
	api := s.fs.Bool("api", false, "serve the HTTP API (alone unless -worker too; WEBHOOKD_ROLES)")
	worker := s.fs.Bool("worker", false, "run the delivery workers (alone unless -api too; WEBHOOKD_ROLES)")
	s.parsers = append(s.parsers, func() error {
		cfg.API, cfg.Worker = false, false
		for _, part := range strings.Split(*raw, ",") {
			switch part = strings.TrimSpace(part); part {
			case "api":
				cfg.API = true
			case "worker":
				cfg.Worker = true
			case "":
			default:
				return fmt.Errorf("%s: %q is not a role; use api, worker or api,worker", s.where("roles"), part)
			}
		}
		set := map[string]bool{}
		s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if (set["api"] && *api) || (set["worker"] && *worker) {
			cfg.API, cfg.Worker = false, false
		}
		if set["api"] {
			cfg.API = *api
		}
		if set["worker"] {
			cfg.Worker = *worker
		}
		if !cfg.API && !cfg.Worker {
			return fmt.Errorf("%s, -api, -worker: no role selected; a process needs api, worker or both", s.envs["roles"])
		}
		return nil
	})
}

func runServe(ctx context.Context, args []string) error {
	s := newSettings("serve")
	cfg := &server.Config{}
	serverSettings(s, cfg)
	logs := s.logging("info", "json")
	if err := s.parse(args); err != nil {
		return err
	}
	logger, err := logs.build()
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // best effort
	// Traces, when the OTEL_* variables ask for them (otel.go).
	traces, err := setupTracing(ctx, os.LookupEnv, version, logger)
	if err != nil {
		return err
	}
	defer traces.Shutdown(logger)
	cfg.TracerProvider = traces.Provider
	return server.Run(ctx, cfg, logger)
}

func runMigrate(ctx context.Context, args []string) error {
	s := newSettings("migrate")
	databaseURL := s.fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (DATABASE_URL)")
	directURL := s.str("direct-database-url", "WEBHOOKD_DIRECT_DATABASE_URL", "", "PostgreSQL itself or a session-mode pool; migrate uses it instead of DATABASE_URL when set (a transaction pooler can't run migrations)")
	if err := s.parse(args); err != nil {
		return err
	}
	where := "DATABASE_URL"
	if *directURL != "" {
		where, *databaseURL = s.where("direct-database-url"), *directURL
	}
	if *databaseURL == "" {
		return errors.New("DATABASE_URL (-database-url) is required")
	}
	pool, err := pgxpool.New(ctx, *databaseURL)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	defer pool.Close()
	res, err := migrations.MigrateWithResult(ctx, pool)
	if err != nil {
		return err
	}
	if len(res.RiverVersions) == 0 && res.FromVersion == res.ToVersion {
		fmt.Printf("migrate: already current (webhookd schema %d)\n", res.ToVersion)
		return nil
	}
	fmt.Printf("migrate: River versions applied: %v; webhookd schema %d -> %d\n", res.RiverVersions, res.FromVersion, res.ToVersion)
	return nil
}

func runDev(ctx context.Context, args []string) error {
	s := newSettings("dev")
	cfg := &demo.DevConfig{Out: os.Stdout}
	s.fs.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string; empty starts a throwaway cluster (DATABASE_URL)")
	addr := s.str("addr", "WEBHOOKD_ADDR", "", "HTTP listen address (default 127.0.0.1:8080, or a free port)")
	s.float("retry-scale", "WEBHOOKD_RETRY_SCALE", strconv.FormatFloat(demo.DevRetryScaleDefault, 'f', -1, 64), "retry schedule scale factor", &cfg.RetryScale)
	s.duration("http-timeout", "WEBHOOKD_HTTP_TIMEOUT", "10s", "timeout of one delivery attempt", &cfg.HTTPTimeout)
	logs := s.logging("warn", "console")
	if err := s.parse(args); err != nil {
		return err
	}
	cfg.Addr = *addr
	logger, err := logs.build()
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // best effort
	return demo.RunDev(ctx, cfg, logger)
}

func runReceiver(ctx context.Context, args []string) error {
	s := newSettings("receiver")
	addr := s.str("addr", "RECEIVER_ADDR", "127.0.0.2:9000", "listen address")
	secret := s.str("secret", "WEBHOOK_SECRET", "", "webhook secret to verify signatures with (optional)")
	var failFirst int
	s.integer("fail-first", "RECEIVER_FAIL_FIRST", "0", "answer the first N requests of each event with 500", &failFirst)
	if err := s.parse(args); err != nil {
		return err
	}
	srv := &http.Server{Addr: *addr, Handler: demo.NewReceiver(os.Stdout, *secret, failFirst), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Printf("receiver: listening on http://%s\n", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("RECEIVER_ADDR (-addr): %w", err)
	}
	return nil
}

// parseRates reads flag's comma-separated events per second, such as
// "500,2000".
func parseRates(flag, list string, example int) ([]int, error) {
	var out []int
	for _, part := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a rate such as %d (events per second)", flag, strings.TrimSpace(part), example)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(ctx context.Context, args []string) error {
	s := newSettings("bench")
	cfg := &bench.Config{Out: os.Stdout}
	s.fs.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "server to create the bench databases on; empty starts a throwaway cluster (DATABASE_URL)")
	scenarios := s.fs.String("scenarios", "all", "scenarios to run, e.g. 1,2,5: 0 reference (River alone), 1 drain, 2 sustained, 3 isolation, 4 noisy neighbour, 5 precision, 6 resources, 7 cost (intake and delivery per event on the primary; runs CHECKPOINT, so not in all: give it a server of its own), 8 intake (single-event POSTs by 32 producers, delivered, beside River's figure; not in all), 9 quiet (CPU per event at low rates; not in all)")
	s.fs.IntVar(&cfg.Backlog, "backlog", bench.BacklogDefault, "scenarios 1, 3, 6: pending deliveries to drain")
	rates := s.fs.String("rates", "500,2000", "scenario 2: events per second, one run each")
	s.fs.DurationVar(&cfg.Duration, "duration", bench.DurationDefault, "scenarios 2 and 4: how long each sender runs")
	s.fs.IntVar(&cfg.BlackHole, "black-hole", bench.BlackHoleDefault, "scenario 3: pending deliveries to the black hole")
	s.fs.IntVar(&cfg.NoisyBacklog, "noisy-backlog", bench.NoisyBacklogDefault, "scenario 4: account A's backlog")
	s.fs.IntVar(&cfg.NoisyRate, "noisy-rate", bench.NoisyRateDefault, "scenario 4: account B's events per second")
	s.fs.IntVar(&cfg.Retries, "retries", bench.RetriesDefault, "scenario 5: deliveries that fail once")
	s.fs.Float64Var(&cfg.RetryScale, "retry-scale", bench.RetryScaleDefault, "scenario 5: retry schedule scale (attempt 2 is due 30 s × scale after attempt 1)")
	s.fs.IntVar(&cfg.IntakeEvents, "intake-events", bench.IntakeEventsDefault, "scenario 8: events POSTed one per request")
	quietRates := s.fs.String("quiet-rates", "100,200", "scenario 9: steady events per second, one measurement each")
	s.fs.DurationVar(&cfg.Timeout, "timeout", bench.TimeoutDefault, "bound on every wait (a drain, a sender's arrivals)")
	warmup := s.fs.Duration("warmup", bench.WarmupDefault, "scenarios 2 and 4: how long each sender runs, uncounted, before it measures (0: no warm-up)")
	s.fs.IntVar(&cfg.MaxWorkers, "max-workers", 0, "override the server's MaxWorkers")
	s.fs.IntVar(&cfg.WebhookConcurrency, "webhook-concurrency", 0, "override the server's per-webhook concurrency")
	bulk := s.fs.String("bulk-while-live", "0", "override the server's limit on backlogged bulk deliveries while another account's live ones are answered (0: the server's default; off: no limit)")
	var maxConns int
	s.fs.IntVar(&maxConns, "db-max-conns", 0, "override the server's pool size")
	s.fs.DurationVar(&cfg.HTTPTimeout, "http-timeout", 0, "override the server's HTTP timeout (black-hole attempts end at it)")
	s.fs.DurationVar(&cfg.FetchCooldown, "fetch-cooldown", 0, "override the server's River fetch cooldown of the deliveries queue (0: the default)")
	s.fs.DurationVar(&cfg.FetchPollInterval, "fetch-poll-interval", 0, "override the server's River fetch poll interval of the deliveries queue (0: the default)")
	s.fs.IntVar(&cfg.IntakeTransactions, "intake-transactions", 0, fmt.Sprintf("override the server's POST /v1/events transactions at once (WEBHOOKD_INTAKE_TRANSACTIONS; 0: the default, %d)", adminapi.IntakeTransactionsDefault))
	s.fs.IntVar(&cfg.Handoffs, "handoffs", 0, fmt.Sprintf("override the server's hand-offs at once (WEBHOOKD_HANDOFFS; 0: the default, %d; -1: none)", engine.HandoffsMaxDefault))
	s.fs.DurationVar(&cfg.RecordLinger, "record-linger", engine.RecordLingerDefault, "the servers' WEBHOOKD_RECORD_LINGER (0: never)")
	s.fs.DurationVar(&cfg.IntakeLinger, "intake-linger", 0, "the servers' WEBHOOKD_INTAKE_LINGER (0: never, the default)")
	arrivals := s.fs.String("arrivals", "even", "how events POSTed at a rate are spaced (scenarios 2, 4, 8's paced phase and 9, and the warm-ups): even, one every 1/rate, or poisson, a Poisson process of that rate (exponential gaps, a fixed seed: the same instants every run), as from many producers acting on their own")
	s.fs.BoolVar(&cfg.AdaptiveProcs, "adaptive-procs", true, "scenarios 1 and 9 with -worker process: run webhookd's process with WEBHOOKD_ADAPTIVE_PROCS, as webhookd serve does by default (one Go processor while quiet)")
	s.fs.BoolVar(&cfg.KeepFinishedJobs, "keep-finished-jobs", false, "run the servers with WEBHOOKD_KEEP_FINISHED_JOBS=true (false: finished delivery jobs deleted, as by default; a worker process's snoozes, read from its jobs, then not counted)")
	s.fs.IntVar(&cfg.DeliveriesFillfactor, "deliveries-fillfactor", 0, "set this fillfactor (10 - 100) on the bench databases' deliveries partitions, as docs/operators.md describes (0: the schema's, 90)")
	s.fs.IntVar(&cfg.HistoryDays, "history-days", 0, fmt.Sprintf("give the bench databases this many past days' partitions (0 - 400), each with %d finished deliveries, as a deployment with that retention has (0: yesterday's only, empty)", bench.HistoryRowsPerDay))
	s.fs.BoolVar(&cfg.PgBouncer, "pgbouncer", false, "run webhookd through a PgBouncer in transaction mode started for the run (WEBHOOKD_DB_POOLER=transaction; the by-key pool and the reference direct)")
	s.fs.BoolVar(&cfg.AccountKey, "account-key", false, "scenarios 2 and 4: POST with an account key of the account (looked up and rate-limited like any) instead of the bootstrap admin key")
	mgmtRate := s.fs.String("rate-limit-management", adminapi.ManagementRateDefault.String(), "account keys' management rate limit of the bench servers (off: none)")
	intakeRate := s.fs.String("rate-limit-intake-account", "off", "account keys' intake limit of the bench servers, in events, such as 100000/s,burst=100000 (off: none)")
	receiver := s.str("receiver", "WEBHOOKD_BENCH_RECEIVER", "in-process", "scenarios 0 and 1: in-process, or external: River alone and the drain post to the bench's receiver in a process of its own (started for each), so its CPU is not the bench's")
	worker := s.str("worker", "WEBHOOKD_BENCH_WORKER", "in-process", "scenarios 1 and 9: in-process, or process: the drain's backlog is worked by webhookd's workers in a process of their own (the running binary started again, worker role only, the same settings), timed from telling it to start its workers, its CPU per delivery and its database's backends' beside the rate (scenario 0 prints River's process's and backends' per job); with -receiver external, issue 30's set-up; scenario 9's webhookd (API and workers) runs in a process of its own, whose CPU alone is counted, and then River alone at the same rates in another, beside it")
	cpuProfile := s.fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	s.fs.StringVar(&cfg.WorkerCPUProfile, "worker-cpuprofile", "", "with -worker process: each worker process writes a CPU profile of its run (from the start of its workers to its stop) to this file, the run's second one to FILE.2, and so on (-cpuprofile profiles the bench process only)")
	memProfile := s.fs.String("memprofile", "", "write a profile of the run's allocations (what the garbage collector works for) to this file at its end")
	latencyLog := s.fs.String("latency-log", "", "scenarios 2 and 4: write each event's latencies to this CSV file")
	logs := s.logging("warn", "console")
	if err := s.parse(args); err != nil {
		return err
	}
	var err error
	if cfg.BulkWhileLive, err = offOrCount("-bulk-while-live", *bulk); err != nil {
		return err
	}
	if cfg.ManagementRate, err = adminapi.ParseRate(*mgmtRate); err != nil {
		return fmt.Errorf("-rate-limit-management: %w", err)
	}
	if cfg.IntakeRate, err = adminapi.ParseRate(*intakeRate); err != nil {
		return fmt.Errorf("-rate-limit-intake-account: %w", err)
	}
	switch *receiver {
	case "in-process":
	case "external":
		cfg.ExternalReceiver = true
	default:
		return fmt.Errorf("%s: %q is not in-process or external", s.where("receiver"), *receiver)
	}
	switch *arrivals {
	case "even":
	case "poisson":
		cfg.PoissonArrivals = true
	default:
		return fmt.Errorf("-arrivals: %q is not even or poisson", *arrivals)
	}
	switch *worker {
	case "in-process":
	case "process":
		cfg.WorkerProcess = true
	default:
		return fmt.Errorf("%s: %q is not in-process or process", s.where("worker"), *worker)
	}
	if cfg.WorkerCPUProfile != "" {
		if !cfg.WorkerProcess {
			return fmt.Errorf("-worker-cpuprofile profiles the worker process: set %s to process", s.where("worker"))
		}
		if cfg.WorkerCPUProfile, err = filepath.Abs(cfg.WorkerCPUProfile); err != nil {
			return fmt.Errorf("-worker-cpuprofile: %w", err)
		}
		f, err := os.Create(cfg.WorkerCPUProfile) // written by the worker process; refused here when it can't be
		if err != nil {
			return fmt.Errorf("-worker-cpuprofile: %w", err)
		}
		_ = f.Close()
	}
	if cfg.Scenarios, err = bench.ParseScenarios(*scenarios); err != nil {
		return fmt.Errorf("-scenarios: %w", err)
	}
	if cfg.Rates, err = parseRates("-rates", *rates, 500); err != nil {
		return err
	}
	if cfg.QuietRates, err = parseRates("-quiet-rates", *quietRates, 100); err != nil {
		return err
	}
	if *warmup < 0 {
		return errors.New("-warmup must not be negative")
	}
	cfg.Warmup = *warmup
	if cfg.Warmup == 0 {
		cfg.Warmup = -1 // none
	}
	if maxConns < 0 || maxConns > 10_000 {
		return errors.New("-db-max-conns must be 0 (the default) to 10000")
	}
	if cfg.FetchCooldown < 0 || cfg.FetchPollInterval < 0 {
		return errors.New("-fetch-cooldown and -fetch-poll-interval must not be negative")
	}
	if cfg.RecordLinger < 0 || cfg.RecordLinger > time.Second {
		return fmt.Errorf("-record-linger must be from 0 (never) to 1s (got %s)", cfg.RecordLinger)
	}
	if cfg.RecordLinger == 0 {
		cfg.RecordLinger = server.RecordLingerOff
	}
	if cfg.IntakeLinger < 0 || cfg.IntakeLinger > time.Second {
		return fmt.Errorf("-intake-linger must be from 0 (never) to 1s (got %s)", cfg.IntakeLinger)
	}
	if cfg.Handoffs < server.HandoffsOff {
		return fmt.Errorf("-handoffs must be -1 (none), 0 (the default, %d) or more", engine.HandoffsMaxDefault)
	}
	if cfg.IntakeTransactions < 0 || cfg.IntakeTransactions > adminapi.IntakeTransactionsMax {
		return fmt.Errorf("-intake-transactions must be 0 (the default, %d) to %d", adminapi.IntakeTransactionsDefault, adminapi.IntakeTransactionsMax)
	}
	if cfg.DeliveriesFillfactor != 0 && (cfg.DeliveriesFillfactor < 10 || cfg.DeliveriesFillfactor > 100) {
		return errors.New("-deliveries-fillfactor must be 0 (the schema's, 90) or 10 to 100")
	}
	if cfg.HistoryDays < 0 || cfg.HistoryDays > 400 {
		return errors.New("-history-days must be 0 to 400")
	}
	logger, err := logs.build()
	if err != nil {
		return err
	}
	cfg.Logger = logger
	cfg.DBMaxConns = int32(maxConns)
	traces, err := setupTracing(ctx, os.LookupEnv, "bench", logger) // OTEL_*: the bench servers' spans (otel.go)
	if err != nil {
		return err
	}
	defer traces.Shutdown(logger)
	cfg.TracerProvider = traces.Provider
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return fmt.Errorf("-memprofile: %w", err)
		}
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				logger.Error("could not write the allocation profile", zap.Error(err))
			}
			_ = f.Close()
		}()
	}
	if *latencyLog != "" {
		f, err := os.Create(*latencyLog)
		if err != nil {
			return fmt.Errorf("-latency-log: %w", err)
		}
		defer f.Close()
		w := bufio.NewWriter(f)
		defer w.Flush()
		cfg.LatencyLog = w
	}
	_, err = bench.Run(ctx, cfg)
	return err
}
