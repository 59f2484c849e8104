// Package bench is `webhookd bench`: it starts what it needs (receivers on
// 127.0.0.2, webhookd in process, a fresh database per scenario on
// DATABASE_URL's server or on a throwaway cluster), runs the six scenarios of
// issue 4 and prints one markdown table:
//
//  0. reference: River alone, with no webhookd, on this machine (the figure
//     issue 4 quotes for its own);
//  1. drain: a backlog of pending deliveries to one healthy receiver;
//  2. sustained: events POSTed to the API at fixed rates;
//  3. isolation: scenario 1 beside a black-hole endpoint of another account;
//  4. noisy neighbour: account B's latency while account A has a backlog;
//  5. precision: how late retries start after they come due;
//  6. resources: peak RSS and CPU per delivery of webhookd and PostgreSQL;
//  7. cost (only when asked for: it runs CHECKPOINT): CPU, commits, WAL and
//     write I/Os per event on the primary, intake and delivery apart, and
//     the statements that wrote the WAL (when pg_stat_statements is loaded);
//  8. intake (only when asked for): single-event POSTs by 32 producers with
//     an events:write key, delivered end to end, beside River's figure;
//  9. quiet (only when asked for): CPU per event at steady low rates, and
//     idle.
//
// With Config.PgBouncer every webhookd goes through a PgBouncer in
// transaction mode started for the run. With Config.ExternalReceiver
// (`-receiver external`) scenarios 0 and 1 post to a receiver in a process
// of its own; with Config.WorkerProcess (`-worker process`) scenario 1's
// backlog is drained by webhookd's workers in a process of their own (the
// running binary started again, worker role only, the same settings),
// timed from telling it to start its workers, with that process's CPU per
// delivery beside the rate. Both together are issue 30's set-up: the
// workers, the receiver and the bench three processes, River alone
// (scenario 0) still in the bench process.
//
// Every request goes to a receiver on 127.0.0.2 (or to webhookd's own API);
// every loop is bounded in count and in time, and a bound that is hit is an
// error naming it. Each scenario gets a fresh database and a fresh server, so
// they don't disturb each other.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/pgbouncer"
	"github.com/mono/webhookd/internal/pgcluster"
)

// The scenarios, by the number issue 4 gives them; 0 is the reference
// (River alone) that issue 4 quotes for its machine, measured on this one.
const (
	ScenarioReference = 0
	ScenarioDrain     = 1
	ScenarioSustained = 2
	ScenarioIsolation = 3
	ScenarioNoisy     = 4
	ScenarioPrecision = 5
	ScenarioResources = 6
	// ScenarioCost (7) is not among AllScenarios: it runs CHECKPOINT, so
	// it runs only when asked for, on a server of its own.
	ScenarioCost = 7
	// ScenarioIntake (8) and ScenarioQuiet (9) run only when asked for
	// (issue 30): single-event intake beside River's figure, and CPU per
	// event at low rates.
	ScenarioIntake = 8
	ScenarioQuiet  = 9
	scenarioMax    = ScenarioQuiet
)

// AllScenarios lists every scenario in the order they run.
var AllScenarios = []int{ScenarioReference, ScenarioDrain, ScenarioSustained, ScenarioIsolation, ScenarioNoisy, ScenarioPrecision, ScenarioResources}

// Defaults of Config.
const (
	// BacklogDefault is the size of the drain (and isolation and resources)
	// backlog.
	BacklogDefault = 50_000
	// DurationDefault is how long each sustained rate and the noisy
	// neighbour's sender run.
	DurationDefault = 10 * time.Second
	// BlackHoleDefault is how many deliveries wait for the black hole in the
	// isolation scenario.
	BlackHoleDefault = 1_000
	// NoisyBacklogDefault is account A's backlog in the noisy-neighbour
	// scenario.
	NoisyBacklogDefault = 100_000
	// NoisyRateDefault is account B's events per second.
	NoisyRateDefault = 100
	// RetriesDefault is how many deliveries fail once in the precision
	// scenario.
	RetriesDefault = 500
	// RetryScaleDefault scales the retry schedule in the precision scenario:
	// attempt 2 is due 0.3 s after attempt 1.
	RetryScaleDefault = 0.01
	// WarmupDefault is how long scenarios 2 and 4 send before they measure.
	WarmupDefault = 2 * time.Second
	// TimeoutDefault bounds every wait of a scenario (a drain, the arrivals
	// of a sender's events).
	TimeoutDefault = 5 * time.Minute
)

// RatesDefault are the sustained scenario's rates, events per second.
var RatesDefault = []int{500, 2000}

// Config sizes the scenarios. The zero value of a field means its default.
type Config struct {
	// DatabaseURL names the server to create the bench databases on; empty
	// starts a throwaway cluster.
	DatabaseURL string
	// Scenarios to run, by number. Defaults to AllScenarios.
	Scenarios []int
	// Backlog is the drain scenario's pending deliveries, also used by the
	// isolation and resources scenarios. Defaults to 50,000.
	Backlog int
	// Rates are the sustained scenario's events per second, one run each.
	// Defaults to 500 and 2,000.
	Rates []int
	// Duration is how long each sustained rate and the noisy neighbour's
	// sender run. Defaults to 10s.
	Duration time.Duration
	// BlackHole is the isolation scenario's deliveries to the black hole.
	// Defaults to 1,000.
	BlackHole int
	// NoisyBacklog is account A's backlog in the noisy-neighbour scenario.
	// Defaults to 100,000.
	NoisyBacklog int
	// NoisyRate is account B's events per second. Defaults to 100.
	NoisyRate int
	// Retries is how many deliveries fail once in the precision scenario.
	// Defaults to 500.
	Retries int
	// RetryScale scales the retry schedule in the precision scenario.
	// Defaults to 0.01.
	RetryScale float64
	// Warmup is how long scenarios 2 and 4 send, uncounted, before they
	// measure (see stage.warmUp). Zero means WarmupDefault; negative, none.
	Warmup time.Duration
	// Timeout bounds every wait. Defaults to 5 minutes.
	Timeout time.Duration
	// MaxWorkers, WebhookConcurrency, BulkWhileLive, DBMaxConns and
	// HTTPTimeout override the server's defaults when set.
	MaxWorkers         int
	WebhookConcurrency int
	BulkWhileLive      int
	DBMaxConns         int32
	HTTPTimeout        time.Duration
	// FetchCooldown and FetchPollInterval override the server's River
	// fetch cooldown and poll interval of the deliveries queue when set
	// (scenario 9 measures what each wake-up costs with them).
	FetchCooldown, FetchPollInterval time.Duration
	// IntakeTransactions overrides the server's WEBHOOKD_INTAKE_TRANSACTIONS
	// when set (0: the default).
	IntakeTransactions int
	// Handoffs overrides the server's WEBHOOKD_HANDOFFS when set (0: the
	// default; server.HandoffsOff: none).
	Handoffs int
	// RecordLinger overrides the server's WEBHOOKD_RECORD_LINGER when set
	// (0: the default; server.RecordLingerOff: never).
	RecordLinger time.Duration
	// IntakeLinger is the servers' WEBHOOKD_INTAKE_LINGER (0: never).
	IntakeLinger time.Duration
	// PoissonArrivals spaces the events that are POSTed at a rate
	// (scenarios 2, 4, 8's paced phase and 9, and the warm-ups) as a
	// Poisson process of that rate, from a fixed seed, instead of one every
	// 1/rate: the arrivals of many producers that act on their own.
	PoissonArrivals bool
	// KeepFinishedJobs runs the servers with WEBHOOKD_KEEP_FINISHED_JOBS:
	// finished delivery jobs are completed by River and kept. Defaults to
	// false, as webhookd's default: the jobs are deleted when their last
	// attempt is recorded. The scenarios' snoozes come from the server's
	// webhookd_job_snoozes_total, or, for a worker process, from its jobs
	// (so only with this set: see stage.snoozes). The rate-limit
	// measurement (throttled, run by its test) always keeps them: its
	// fetch counts per delivery are read from them.
	KeepFinishedJobs bool
	// AdaptiveProcs runs webhookd's processes of their own (-worker
	// process) with WEBHOOKD_ADAPTIVE_PROCS, as `webhookd serve` runs by
	// default (`webhookd bench` sets it unless -adaptive-procs=false); the
	// servers in the bench process never, as they share it with the load
	// generator and the receivers.
	AdaptiveProcs bool
	// DeliveriesFillfactor, when not 0, is set on the bench databases'
	// deliveries partitions after the migrations (10 – 100; the schema's
	// is 90): docs/operators.md's trade of heap for WAL.
	DeliveriesFillfactor int
	// HistoryDays, when not 0, gives the bench databases that many past
	// days' partitions of deliveries, each with HistoryRowsPerDay finished
	// ones, as a deployment with that retention has (30 by default, plus
	// the days ahead): a statement that touches every partition costs
	// more with them. 0: yesterday's only, empty.
	HistoryDays int
	// PgBouncer runs every scenario's webhookd through a PgBouncer in
	// transaction mode started for the run (internal/pgbouncer): its
	// DATABASE_URL through the bouncer with WEBHOOKD_DB_POOLER=transaction
	// (River poll-only, no named prepared statements), the by-key pool on
	// WEBHOOKD_DIRECT_DATABASE_URL. The reference (River alone) stays
	// direct. Defaults to false: direct.
	PgBouncer bool
	// TracerProvider is the bench servers' (server.Config.TracerProvider):
	// `webhookd bench` builds it from the OTEL_* variables, as serve does,
	// to measure what tracing costs. Optional: nil traces nothing.
	TracerProvider trace.TracerProvider
	// AccountKey makes scenarios 2 and 4 POST with an account key of the
	// sending account (looked up in the database, and rate-limited, like
	// any account key) instead of the bootstrap admin key.
	AccountKey bool
	// ManagementRate and IntakeRate are the servers' rate limits of
	// account keys (WEBHOOKD_RATE_LIMIT_MANAGEMENT and
	// WEBHOOKD_RATE_LIMIT_INTAKE_ACCOUNT); zero: the server's defaults
	// (management 50/s, burst 100; intake none), admin.RateOff: none.
	ManagementRate, IntakeRate admin.Rate
	// LatencyLog, when set, receives a CSV line per event of scenarios 2
	// and 4: scenario, phase (warmup or measured), when its POST began (ms
	// after the phase's first), POST→202 and 202→first attempt (ms), and
	// when its POST began in Unix milliseconds (to match a stall with the
	// system's or PostgreSQL's logs). The header is written first.
	LatencyLog io.Writer
	// ExternalReceiver makes scenarios 0 (River alone) and 1 (drain) post
	// to the bench's receiver running in a process of its own (the running
	// binary started again, see ServeChildIfAsked), so that its
	// CPU is not the bench process's. Defaults to false: in process, like
	// every other scenario's.
	ExternalReceiver bool
	// WorkerProcess makes scenario 1 (drain) drain its backlog with
	// webhookd's workers in a process of their own: the running binary
	// started again (see ServeChildIfAsked) with the same server settings
	// and the worker role only, as issue 30 measured a worker-only process
	// draining what an API-only one had accepted. The backlog is inserted
	// as in the other drains (the bench's webhookd, its workers not
	// started); the drain is timed from telling that ready process to start
	// its workers to the last delivery recorded succeeded, and its CPU per
	// delivery (/proc/<pid>/stat) is reported beside the rate. Combines
	// with ExternalReceiver. Scenario 3 then measures its baseline with
	// webhookd in process, as its healthy drain is. Scenario 9 runs
	// webhookd whole (API and workers) in such a process, the bench's
	// sender and receiver POSTing to it and answering it, and counts that
	// process's CPU alone (issue 30's "webhookd + its PostgreSQL
	// backends"). Defaults to false: webhookd in the bench process.
	WorkerProcess bool
	// WorkerCPUProfile, with WorkerProcess, makes each worker process
	// write a CPU profile of its server's run, from the start of its
	// workers to its stop, to this file (`go tool pprof webhookd FILE`):
	// the run's first worker process to it, the second to FILE.2, and so
	// on. The bench's own -cpuprofile does not see that process. Empty:
	// none.
	WorkerCPUProfile string
	// IntakeEvents is scenario 8's events. Defaults to 20,000.
	IntakeEvents int
	// QuietRates are scenario 9's steady rates, events per second.
	// Defaults to 100 and 200.
	QuietRates []int
	// Out receives the table. Required.
	Out io.Writer
	// Progress receives progress lines. Defaults to Out.
	Progress io.Writer
	// Logger is webhookd's logger. Defaults to zap.NewNop().
	Logger *zap.Logger
}

// WithDefaults returns a copy of c with every zero field defaulted.
func (c *Config) WithDefaults() *Config {
	out := *c
	if len(out.Scenarios) == 0 {
		out.Scenarios = AllScenarios
	}
	if len(out.Rates) == 0 {
		out.Rates = RatesDefault
	}
	if len(out.QuietRates) == 0 {
		out.QuietRates = QuietRatesDefault
	}
	out.IntakeEvents = cmp.Or(out.IntakeEvents, IntakeEventsDefault)
	out.Backlog = cmp.Or(out.Backlog, BacklogDefault)
	out.Duration = cmp.Or(out.Duration, DurationDefault)
	out.BlackHole = cmp.Or(out.BlackHole, BlackHoleDefault)
	out.NoisyBacklog = cmp.Or(out.NoisyBacklog, NoisyBacklogDefault)
	out.NoisyRate = cmp.Or(out.NoisyRate, NoisyRateDefault)
	out.Retries = cmp.Or(out.Retries, RetriesDefault)
	out.RetryScale = cmp.Or(out.RetryScale, RetryScaleDefault)
	out.Timeout = cmp.Or(out.Timeout, TimeoutDefault)
	out.Warmup = cmp.Or(out.Warmup, WarmupDefault)
	out.Progress = cmp.Or(out.Progress, out.Out)
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	return &out
}

// Bounds of Config, so no scenario runs away.
const (
	maxDeliveries = 1_000_000
	maxRate       = 20_000
	maxDuration   = 10 * time.Minute
	maxTimeout    = 30 * time.Minute
)

func (c *Config) validate() error {
	if c.Out == nil {
		return errors.New("bench: Out is required")
	}
	for _, n := range c.Scenarios {
		if n < ScenarioReference || n > scenarioMax {
			return fmt.Errorf("bench: Scenarios: %d is not a scenario (0 to %d)", n, scenarioMax)
		}
	}
	counts := []struct {
		name string
		n    int
	}{{"Backlog", c.Backlog}, {"BlackHole", c.BlackHole}, {"NoisyBacklog", c.NoisyBacklog}, {"Retries", c.Retries}, {"IntakeEvents", c.IntakeEvents}}
	for _, f := range counts {
		if f.n < 1 || f.n > maxDeliveries {
			return fmt.Errorf("bench: %s must be 1 to %d (got %d)", f.name, maxDeliveries, f.n)
		}
	}
	for _, r := range append(append(slices.Clone(c.Rates), c.QuietRates...), c.NoisyRate) {
		if r < 1 || r > maxRate {
			return fmt.Errorf("bench: Rates, QuietRates and NoisyRate must be 1 to %d events/s (got %d)", maxRate, r)
		}
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		return fmt.Errorf("bench: Duration must be above 0 and at most %s (got %s)", maxDuration, c.Duration)
	}
	if c.Warmup > maxDuration {
		return fmt.Errorf("bench: Warmup must be at most %s (got %s)", maxDuration, c.Warmup)
	}
	if c.Timeout <= 0 || c.Timeout > maxTimeout {
		return fmt.Errorf("bench: Timeout must be above 0 and at most %s (got %s)", maxTimeout, c.Timeout)
	}
	if c.RetryScale <= 0 || c.RetryScale > 1 {
		return fmt.Errorf("bench: RetryScale must be above 0 and at most 1 (got %g)", c.RetryScale)
	}
	return nil
}

// ParseScenarios parses a list such as "1,2,5" or "all".
func ParseScenarios(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return AllScenarios, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < ScenarioReference || n > scenarioMax {
			return nil, fmt.Errorf("%q is not a scenario number (0 to %d)", strings.TrimSpace(part), scenarioMax)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Latency summarises a set of durations.
type Latency struct {
	N   int
	P50 time.Duration
	P99 time.Duration
	Max time.Duration
}

// Throughput is a drain's outcome.
type Throughput struct {
	Deliveries int
	Elapsed    time.Duration
	// Snoozes is how often River snoozed the delivery jobs (see
	// stage.snoozes): the per-webhook cap turning a job away, mostly.
	Snoozes int64
	// Worker is set when webhookd's workers ran in a process of their own
	// (Config.WorkerProcess, scenario 1): its CPU and what it left.
	Worker *WorkerProcess
	// ProcessCPU is, in scenario 0, the CPU of the process that worked
	// the jobs (River's: the bench process) from River's start to the last
	// job completed; Backends that of the run's database's backends over
	// the same span (scenario 0, and scenario 1 with a worker process), so
	// that the two scenarios' costs read side by side. Nil when not read
	// (PostgreSQL on another machine): CPUNote says why.
	ProcessCPU *time.Duration
	Backends   *time.Duration
	CPUNote    string
}

// perJob is d ÷ the deliveries (or jobs), in ms, or "n/a" when d is nil.
func (t *Throughput) perJob(d *time.Duration) string {
	if d == nil {
		return "n/a"
	}
	return msf(*d / time.Duration(max(t.Deliveries, 1)))
}

// PerSecond is deliveries per second.
func (t *Throughput) PerSecond() float64 { return float64(t.Deliveries) / t.Elapsed.Seconds() }

// Sustained is one rate of scenario 2.
type Sustained struct {
	Rate     int
	Sent     int
	Achieved float64
	// Latency is from just before each POST to the event's first arrival at
	// the receiver.
	Latency Latency
	// Snoozes is how often River snoozed the delivery jobs.
	Snoozes int64
	// Commits is the commit probe's (a durable commit every 25 ms while
	// the events were sent and delivered): a disk that stalls every
	// commit shows there.
	Commits Latency
}

// Isolation is scenario 3.
type Isolation struct {
	Healthy   Throughput
	BlackHole int
	// Baseline is scenario 1's deliveries/s (run again here when scenario 1
	// was not selected).
	Baseline float64
	// Ratio is Healthy.PerSecond() ÷ Baseline.
	Ratio float64
}

// Noisy is scenario 4.
type Noisy struct {
	Backlog  int
	Rate     int
	Sent     int
	Achieved float64
	// Latency is B's POST → first arrival.
	Latency Latency
	// BacklogDrained is how many of A's deliveries had arrived when B's
	// sender stopped.
	BacklogDrained int64
	// Snoozes is how often River snoozed the delivery jobs (A's and B's).
	Snoozes int64
	// Commits is the commit probe's, as in Sustained.
	Commits Latency
}

// Precision is scenario 5.
type Precision struct {
	Deliveries int
	// FirstRetryDelay is attempt 2's delay after attempt 1 at this scale.
	FirstRetryDelay time.Duration
	// Lateness is attempt 2's started_at − scheduled_at.
	Lateness Latency
	// Snoozes is how often River snoozed the delivery jobs, one retry wait
	// per delivery included.
	Snoozes int64
}

// Resources is scenario 6.
type Resources struct {
	Drain Throughput
	// PeakRSS is the process's VmHWM during the drain, in bytes (0 when
	// /proc/self/status is unreadable). PeakRSSWholeRun is set when the
	// peak could not be reset before the drain.
	PeakRSS         int64
	PeakRSSWholeRun bool
	// CPUPerDelivery is the process's user+system CPU per delivery.
	CPUPerDelivery time.Duration
	// PostgresCPUPerDelivery is PostgreSQL's; nil when PostgreSQL does not
	// run on this machine (PostgresNote says why).
	PostgresCPUPerDelivery *time.Duration
	PostgresNote           string
	// WAL is the server's WAL per delivery over the drain (records, full
	// page images, bytes); nil when pg_stat_wal is unreadable (WALNote).
	WAL     *walStat
	WALNote string
}

// Result is the outcome of a run; a scenario not run (or failed) is nil and
// its error is in Errors.
type Result struct {
	Machine Machine
	// Reference is River alone on this machine (scenario 0).
	Reference *Throughput
	Drain     *Throughput
	Sustained []*Sustained
	Isolation *Isolation
	Noisy     *Noisy
	Precision *Precision
	Resources *Resources
	Cost      *Cost
	Intake    *Intake
	Quiet     *Quiet
	Errors    map[int]error
}

// Run runs the selected scenarios, prints the table and returns the result.
// A scenario that fails leaves its row as the error and the others run; the
// returned error then joins every scenario's.
func Run(ctx context.Context, cfg *Config) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	baseURL := cfg.DatabaseURL
	if baseURL == "" {
		fmt.Fprintln(cfg.Progress, "bench: no DATABASE_URL: starting a throwaway PostgreSQL cluster (durable: fsync on, as a production server)")
		// Durable: a server that never flushes a commit makes figures no
		// production server gives (BENCHMARKS.md, 2026-12-06).
		cluster, err := pgcluster.Start(ctx, &pgcluster.Config{Durable: true})
		if err != nil {
			return nil, err
		}
		defer cluster.Stop() //nolint:errcheck // best effort
		baseURL = cluster.URL()
	}
	e := &env{cfg: cfg, baseURL: baseURL}
	if cfg.PgBouncer {
		stop, err := e.startBouncer(ctx)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	machine, err := describeMachine(ctx, baseURL)
	if err != nil {
		return nil, err
	}
	res := &Result{Machine: *machine, Errors: map[int]error{}}
	if cfg.LatencyLog != nil {
		fmt.Fprintln(cfg.LatencyLog, "scenario,phase,sent_ms,post_to_202_ms,202_to_first_attempt_ms,sent_unix_ms")
	}

	for _, n := range cfg.Scenarios {
		if err := ctx.Err(); err != nil {
			res.Errors[n] = err
			continue
		}
		start := time.Now()
		e.current = n
		e.progress(n, "starting")
		var err error
		switch n {
		case ScenarioReference:
			res.Reference, err = e.reference(ctx)
		case ScenarioDrain:
			res.Drain, err = e.drain(ctx, n, 0, nil)
		case ScenarioSustained:
			res.Sustained, err = e.sustained(ctx)
		case ScenarioIsolation:
			baseline := res.Drain
			if cfg.WorkerProcess {
				baseline = nil // scenario 1's workers were another process's; scenario 3's are in process
			}
			res.Isolation, err = e.isolation(ctx, baseline)
		case ScenarioNoisy:
			res.Noisy, err = e.noisy(ctx)
		case ScenarioPrecision:
			res.Precision, err = e.precision(ctx)
		case ScenarioResources:
			res.Resources, err = e.resources(ctx)
		case ScenarioCost:
			res.Cost, err = e.cost(ctx)
		case ScenarioIntake:
			res.Intake, err = e.intake(ctx, res.Reference)
		case ScenarioQuiet:
			res.Quiet, err = e.quiet(ctx)
		}
		if err != nil {
			res.Errors[n] = err
			e.progress(n, "FAILED after %s: %v", time.Since(start).Round(time.Millisecond), err)
			continue
		}
		e.progress(n, "done in %s", time.Since(start).Round(time.Millisecond))
	}

	writeTable(cfg.Out, cfg, res)
	var errs []error
	for _, n := range cfg.Scenarios {
		if err := res.Errors[n]; err != nil {
			errs = append(errs, fmt.Errorf("scenario %d (%s): %w", n, scenarioNames[n], err))
		}
	}
	return res, errors.Join(errs...)
}

var scenarioNames = map[int]string{
	ScenarioReference: "reference",
	ScenarioDrain:     "drain",
	ScenarioSustained: "sustained",
	ScenarioIsolation: "isolation",
	ScenarioNoisy:     "noisy neighbour",
	ScenarioPrecision: "precision",
	ScenarioResources: "resources",
	ScenarioCost:      "cost",
	ScenarioIntake:    "intake",
	ScenarioQuiet:     "quiet",
}

// env is what every scenario shares.
type env struct {
	cfg     *Config
	baseURL string
	// bouncer is Config.PgBouncer's (nil: direct).
	bouncer *pgbouncer.Bouncer
	// current is the scenario Run is running.
	current int
	// workerProfiles counts the worker processes given a CPU profile
	// (Config.WorkerCPUProfile).
	workerProfiles atomic.Int32
}

func (e *env) progress(scenario int, format string, args ...any) {
	fmt.Fprintf(e.cfg.Progress, "bench: [%d %s] %s\n", scenario, scenarioNames[scenario], fmt.Sprintf(format, args...))
}
