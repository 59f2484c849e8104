package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/server"
)

// workerProcessEnv, set to "1" in a process's environment, makes it the
// bench's worker process (Config.WorkerProcess) instead of whatever it would
// have been: startWorkerProcess re-executes the running binary (webhookd, or
// this package's test binary) with it, and ServeChildIfAsked serves.
const workerProcessEnv = "WEBHOOKD_BENCH_WORKER_PROCESS"

// workerProcessStart bounds how long the worker process may take to say it
// is ready (its server made), and then that its workers have started.
const workerProcessStart = 30 * time.Second

// workerProcessStop bounds how long the worker process may take to stop
// after its standard input closes (its server's ShutdownTimeout is
// stopTimeout, and Stop gives 5 s more) before it is killed.
const workerProcessStop = stopTimeout + 10*time.Second

// workerSpec is what the bench sends the worker process, one JSON line on
// its standard input: the settings of the drain's in-process server. On
// standard input, not in its environment or arguments, because it holds the
// encryption key.
type workerSpec struct {
	DatabaseURL          string        `json:"database_url"`
	DirectDatabaseURL    string        `json:"direct_database_url,omitempty"`
	DBPooler             string        `json:"db_pooler,omitempty"`
	EncryptionKey        string        `json:"encryption_key"`
	AllowPrivateNetworks bool          `json:"allow_private_networks"`
	RetryScale           float64       `json:"retry_scale"`
	MaxWorkers           int           `json:"max_workers"`
	WebhookConcurrency   int           `json:"webhook_concurrency"`
	BulkWhileLive        int           `json:"bulk_while_live"`
	DBMaxConns           int32         `json:"db_max_conns"`
	HTTPTimeout          time.Duration `json:"http_timeout"`
	FetchCooldown        time.Duration `json:"fetch_cooldown"`
	FetchPollInterval    time.Duration `json:"fetch_poll_interval"`
	ShutdownTimeout      time.Duration `json:"shutdown_timeout"`
	KeepFinishedJobs     bool          `json:"keep_finished_jobs"`
	Version              string        `json:"version"`
	// AdaptiveProcs runs the process's server with
	// WEBHOOKD_ADAPTIVE_PROCS (Config.AdaptiveProcs): a worker process
	// is webhookd alone in its process, as `webhookd serve` is.
	AdaptiveProcs bool `json:"adaptive_procs,omitempty"`
	// CPUProfile is the file the process writes a CPU profile of its
	// server's run to, from "start" to its stop (Config.WorkerCPUProfile;
	// empty: none).
	CPUProfile string `json:"cpu_profile,omitempty"`
	// GCPercent is the bench process's, so that the worker process
	// collects as webhookd does in the bench process (webhookd's main sets
	// it before the bench starts; this process's hook runs before that).
	GCPercent int `json:"gc_percent"`
	// LogLevel is the bench's logger's level ("" logs nothing), written to
	// standard error.
	LogLevel string `json:"log_level,omitempty"`
	// Serve makes the process webhookd whole (the API and the workers, as
	// scenario 9 measures it with -worker process) instead of its workers
	// alone; BootstrapAdminKey and the rate limits are then its API's.
	Serve                  bool          `json:"serve,omitempty"`
	BootstrapAdminKey      string        `json:"bootstrap_admin_key,omitempty"`
	RateLimitManagement    admin.Rate    `json:"rate_limit_management"`
	RateLimitIntakeAccount admin.Rate    `json:"rate_limit_intake_account"`
	IntakeTransactions     int           `json:"intake_transactions,omitempty"`
	Handoffs               int           `json:"handoffs,omitempty"`
	RecordLinger           time.Duration `json:"record_linger,omitempty"`
	IntakeLinger           time.Duration `json:"intake_linger,omitempty"`
}

func (w *workerSpec) gcPercent() int { return w.GCPercent }

// workerSpecOf is the worker process's share of cfg: what it needs to
// work the deliveries queue as cfg's server would.
func workerSpecOf(cfg *server.Config, logger *zap.Logger) *workerSpec {
	gc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	spec := &workerSpec{
		DatabaseURL: cfg.DatabaseURL, DirectDatabaseURL: cfg.DirectDatabaseURL, DBPooler: cfg.DBPooler,
		EncryptionKey: cfg.EncryptionKey, AllowPrivateNetworks: cfg.AllowPrivateNetworks, RetryScale: cfg.RetryScale,
		MaxWorkers: cfg.MaxWorkers, WebhookConcurrency: cfg.WebhookConcurrency, BulkWhileLive: cfg.BulkWhileLive,
		DBMaxConns: cfg.DBMaxConns, HTTPTimeout: cfg.HTTPTimeout, FetchCooldown: cfg.FetchCooldown,
		FetchPollInterval: cfg.FetchPollInterval, ShutdownTimeout: cfg.ShutdownTimeout, Version: cfg.Version,
		KeepFinishedJobs: cfg.KeepFinishedJobs, GCPercent: gc,
		BootstrapAdminKey: cfg.BootstrapAdminKey, RateLimitManagement: cfg.RateLimitManagement,
		RateLimitIntakeAccount: cfg.RateLimitIntakeAccount, IntakeTransactions: cfg.IntakeTransactions,
		Handoffs: cfg.Handoffs, RecordLinger: cfg.RecordLinger, IntakeLinger: cfg.IntakeLinger,
	}
	if logger != nil {
		if lvl := logger.Level(); lvl != zapcore.InvalidLevel {
			spec.LogLevel = lvl.String()
		}
	}
	return spec
}

// serverConfig is the worker process's server: spec's settings, the worker
// role only (no API; its listener serves /healthz and /readyz on a port of
// its own) or with Serve both roles, no metrics listener.
func (w *workerSpec) serverConfig() *server.Config {
	cfg := &server.Config{
		DatabaseURL: w.DatabaseURL, DirectDatabaseURL: w.DirectDatabaseURL, DBPooler: w.DBPooler,
		Addr: "127.0.0.1:0", EncryptionKey: w.EncryptionKey, AllowPrivateNetworks: w.AllowPrivateNetworks,
		RetryScale: w.RetryScale, MaxWorkers: w.MaxWorkers, WebhookConcurrency: w.WebhookConcurrency,
		BulkWhileLive: w.BulkWhileLive, DBMaxConns: w.DBMaxConns, HTTPTimeout: w.HTTPTimeout,
		FetchCooldown: w.FetchCooldown, FetchPollInterval: w.FetchPollInterval, ShutdownTimeout: w.ShutdownTimeout,
		KeepFinishedJobs: w.KeepFinishedJobs, Version: w.Version, Worker: true, AdaptiveProcs: w.AdaptiveProcs,
		RecordLinger: w.RecordLinger,
	}
	if w.Serve {
		cfg.API = true
		cfg.BootstrapAdminKey = w.BootstrapAdminKey
		cfg.RateLimitManagement, cfg.RateLimitIntakeAccount = w.RateLimitManagement, w.RateLimitIntakeAccount
		cfg.IntakeTransactions = w.IntakeTransactions
		cfg.Handoffs = w.Handoffs
		cfg.IntakeLinger = w.IntakeLinger
	}
	return cfg
}

func (w *workerSpec) logger() (*zap.Logger, error) {
	if w.LogLevel == "" {
		return zap.NewNop(), nil
	}
	lvl, err := zapcore.ParseLevel(w.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	zc := zap.NewDevelopmentConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	l, err := zc.Build()
	if err != nil {
		return nil, err
	}
	return l.With(zap.String("process", "bench worker")), nil
}

// serveWorker is the worker process (`webhookd bench -worker process`): it
// reads its settings (one JSON line) from standard input, makes a
// webhookd server with the worker role only (with Serve, both roles) on the
// bench's database (the same internal/server code as the bench's own) and
// prints "ready"; on a "start" line it starts the server and prints
// "started <address>" (its listener's: the API's with Serve); when its
// standard input closes it stops the server gracefully and returns.
func serveWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	var spec workerSpec
	sc, err := readSpec(in, &spec, "worker spec")
	if err != nil {
		return err
	}
	var profile *os.File
	if spec.CPUProfile != "" {
		var err error
		if profile, err = os.Create(spec.CPUProfile); err != nil {
			return fmt.Errorf("the CPU profile: %w", err)
		}
		defer profile.Close()
	}
	logger, err := spec.logger()
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // stderr
	srv, err := server.New(ctx, spec.serverConfig(), logger)
	if err != nil {
		return err
	}
	started := false
	defer func() {
		// Stop works on a server that never started too (it closes the pool).
		if err := srv.Stop(context.WithoutCancel(ctx)); err != nil && started {
			fmt.Fprintln(os.Stderr, "bench worker process: stopping:", err)
		}
	}()
	w := bufio.NewWriter(out)
	say := func(line string) error {
		fmt.Fprintln(w, line)
		return w.Flush()
	}
	if err := say("ready"); err != nil {
		return err
	}
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			if started {
				return errors.New(`"start" twice`)
			}
			if profile != nil {
				// Stopped (written out) before the server, on return.
				if err := pprof.StartCPUProfile(profile); err != nil {
					return fmt.Errorf("the CPU profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			if err := srv.Start(ctx); err != nil {
				return err
			}
			started = true
			if err := say("started " + srv.Addr()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown command %q", sc.Text())
		}
	}
	return sc.Err()
}

// workerProcess is webhookd's workers running in a process of their own.
type workerProcess struct{ *child }

// startWorkerProcess starts webhookd's workers (with serve, webhookd whole:
// its API too) in a process of their own (the running binary started
// again) with cfg's settings, not yet working: it returns once the process
// has made its server and is ready. It stops when the stage closes.
func (s *stage) startWorkerProcess(ctx context.Context, cfg *server.Config, serve bool) (*workerProcess, error) {
	ws := workerSpecOf(cfg, s.e.cfg.Logger)
	ws.Serve = serve
	ws.AdaptiveProcs = s.e.cfg.AdaptiveProcs
	if f := s.e.cfg.WorkerCPUProfile; f != "" {
		if n := s.e.workerProfiles.Add(1); n > 1 {
			f = fmt.Sprintf("%s.%d", f, n)
		}
		ws.CPUProfile = f
	}
	spec, err := json.Marshal(ws)
	if err != nil {
		return nil, err
	}
	c, err := startChild("worker process", workerProcessEnv)
	if err != nil {
		return nil, err
	}
	p := &workerProcess{c}
	s.onClose(p.stop)
	if err := c.send(string(spec)); err != nil {
		p.stop()
		return nil, fmt.Errorf("error sending the worker process its settings: %w", err)
	}
	if err := p.expect(ctx, "ready"); err != nil {
		p.stop()
		return nil, err
	}
	role := "worker role only"
	if serve {
		role = "API and workers"
	}
	if ws.CPUProfile != "" {
		role += "; its CPU profile to " + ws.CPUProfile
	}
	s.progress("worker process: process %d ready (%s)", c.pid(), role)
	return p, nil
}

// startWorkers tells the process to start its server (its workers, and
// its API if it serves one) and waits until it says it has; addr is the
// server's listener's address.
func (p *workerProcess) startWorkers(ctx context.Context) (addr string, err error) {
	if err := p.send("start"); err != nil {
		return "", err
	}
	line, err := p.expectLine(ctx, "started")
	if err != nil {
		return "", err
	}
	addr, ok := strings.CutPrefix(line, "started ")
	if !ok || addr == "" {
		return "", fmt.Errorf(`the worker process said %q, not "started <address>"`, line)
	}
	return addr, nil
}

// expect waits, for at most workerProcessStart, for the process's next line
// to be want.
func (p *workerProcess) expect(ctx context.Context, want string) error {
	line, err := p.expectLine(ctx, want)
	if err == nil && line != want {
		return fmt.Errorf("the worker process said %q, not %q", line, want)
	}
	return err
}

// expectLine waits, for at most workerProcessStart, for the process's next
// line, which must begin with want.
func (p *workerProcess) expectLine(ctx context.Context, want string) (string, error) {
	line, err := p.next(ctx, workerProcessStart)
	switch {
	case err != nil && isClosed(p.exited):
		return "", fmt.Errorf("the worker process exited before it said %q: %w", want, p.exit())
	case err != nil:
		return "", fmt.Errorf("waiting for the worker process to say %q: %w", want, err)
	case !strings.HasPrefix(line, want):
		return "", fmt.Errorf("the worker process said %q, not %q", line, want)
	}
	return line, nil
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// watch returns a context cancelled, with the process's exit as its
// cause, if the process exits before stop: a drain then fails at once
// instead of waiting for its bound.
func (p *workerProcess) watch(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-p.exited:
			cancel(fmt.Errorf("the worker process exited during the drain: %w", p.exit()))
		case <-wctx.Done():
		}
	}()
	return wctx, func() { cancel(nil) }
}

// cpu is the process's user and system CPU so far, from /proc/<pid>/stat
// (Linux).
func (p *workerProcess) cpu() (time.Duration, error) { return pidCPU(p.pid(), "the worker process") }

// pidCPU is process pid's user and system CPU so far, from
// /proc/<pid>/stat (Linux); what names it in an error.
func pidCPU(pid int, what string) (time.Duration, error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, fmt.Errorf("%s's CPU: %w", what, err)
	}
	return time.Duration(st.cpu) * time.Second / userHZ, nil
}

// stop closes the process's standard input, which stops its server and
// ends it, and waits for it (killing it after workerProcessStop).
func (p *workerProcess) stop() { p.child.stop(workerProcessStop) }

// WorkerProcess is what scenario 1 measured of webhookd's workers in a
// process of their own (Config.WorkerProcess).
type WorkerProcess struct {
	// PID was the process's id (it has exited since).
	PID int
	// CPU is its user and system CPU from the start of its workers to the
	// end of the drain (/proc/<pid>/stat, in ticks of 10 ms); CPUNote says
	// why when it could not be read (CPUKnown false).
	CPU      time.Duration
	CPUKnown bool
	CPUNote  string
	// Requests is how many requests the receiver saw; Succeeded and
	// Attempts how many deliveries the database recorded succeeded, and
	// attempts, at the end.
	Requests  int64
	Succeeded int
	Attempts  int
}

// CPUPerDelivery is CPU ÷ deliveries.
func (w *WorkerProcess) CPUPerDelivery(deliveries int) time.Duration {
	return w.CPU / time.Duration(max(deliveries, 1))
}

// drainOutcome counts account's succeeded deliveries and its attempts.
func (s *stage) drainOutcome(ctx context.Context, account string) (succeeded, attempts int, err error) {
	err = s.pool().QueryRow(ctx, `
SELECT (SELECT count(*) FROM deliveries WHERE account_id = $1 AND state = 'succeeded'),
       (SELECT count(*) FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id WHERE d.account_id = $1)`, account).Scan(&succeeded, &attempts)
	if err != nil {
		return 0, 0, fmt.Errorf("error counting the drain's outcome: %w", err)
	}
	return succeeded, attempts, nil
}

// workerProcessNote is the table's line on Config.WorkerProcess.
const workerProcessNote = "**Worker process**: in scenario 1 (drain) the backlog is inserted as in the others (the bench's webhookd, its workers not started), then drained by webhookd's workers in a process of their own (the running binary started again: the same internal/server code and settings, the worker role only, no API); the drain is timed from telling that ready process to start its workers to the last delivery recorded succeeded, and its CPU per delivery is that process's alone (/proc/<pid>/stat, over the same span)."

// workerProcessResult is scenario 1's result line's note on the worker
// process.
func workerProcessResult(t *Throughput) string {
	w := t.Worker
	if w == nil {
		return ""
	}
	if !w.CPUKnown {
		return fmt.Sprintf("; worker process CPU per delivery n/a (%s)", strings.ReplaceAll(w.CPUNote, "|", "/"))
	}
	return fmt.Sprintf("; worker process CPU per delivery **%s ms**, its database's backends %s ms", msf(w.CPUPerDelivery(t.Deliveries)), t.perJob(t.Backends))
}
