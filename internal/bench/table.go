package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/schedule"
)

// Machine describes where the bench ran.
type Machine struct {
	Date            time.Time
	NProc           int
	GOMAXPROCS      int
	CPUModel        string
	GoVersion       string
	PostgresVersion string
	// PostgresLocal reports whether PostgreSQL runs on this machine (its
	// backend for our connection is visible in /proc).
	PostgresLocal bool
	// PostgresDurability is the server's fsync, synchronous_commit and
	// full_page_writes, as "fsync on, synchronous_commit on,
	// full_page_writes on": a server that doesn't flush its commits (the
	// throwaway cluster) spends less CPU per commit, and the figures of
	// the two kinds differ (BENCHMARKS.md, 2026-12-06).
	PostgresDurability string
}

func describeMachine(ctx context.Context, baseURL string) (*Machine, error) {
	m := &Machine{Date: time.Now(), NProc: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), CPUModel: cpuModel()}
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return nil, fmt.Errorf("error connecting to %s: %w", redact(baseURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&m.PostgresVersion); err != nil {
		return nil, fmt.Errorf("error reading the PostgreSQL version: %w", err)
	}
	var fsync, syncCommit, fullPages string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')").
		Scan(&fsync, &syncCommit, &fullPages); err != nil {
		return nil, fmt.Errorf("error reading the PostgreSQL durability settings: %w", err)
	}
	m.PostgresDurability = fmt.Sprintf("fsync %s, synchronous_commit %s, full_page_writes %s", fsync, syncCommit, fullPages)
	_, err = localBackend(ctx, conn)
	m.PostgresLocal = err == nil
	return m, nil
}

// cpuModel is /proc/cpuinfo's first "model name", or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// serverSettings describes the webhookd configuration every scenario uses.
func serverSettings(cfg *Config) string {
	c := (&server.Config{
		MaxWorkers: cfg.MaxWorkers, WebhookConcurrency: cfg.WebhookConcurrency, DBMaxConns: cfg.DBMaxConns, HTTPTimeout: cfg.HTTPTimeout,
		FetchCooldown: cfg.FetchCooldown, FetchPollInterval: cfg.FetchPollInterval, IntakeTransactions: cfg.IntakeTransactions,
		Handoffs: cfg.Handoffs, KeepFinishedJobs: cfg.KeepFinishedJobs, RecordLinger: cfg.RecordLinger, IntakeLinger: cfg.IntakeLinger,
	}).WithDefaults()
	bulk := "no limit"
	switch {
	case cfg.BulkWhileLive == 0:
		bulk = strconv.Itoa(engine.BulkWhileLiveDefault(c.MaxWorkers))
	case cfg.BulkWhileLive > 0:
		bulk = strconv.Itoa(cfg.BulkWhileLive)
	}
	orDefault := func(r, def admin.Rate) admin.Rate {
		if r == (admin.Rate{}) {
			return def
		}
		return r
	}
	poster := "the bootstrap admin key"
	if cfg.AccountKey {
		poster = "an account key"
	}
	finished := "deleted when recorded"
	if cfg.KeepFinishedJobs {
		finished = "kept (completed)"
	}
	if cfg.DeliveriesFillfactor != 0 {
		finished += fmt.Sprintf(", deliveries' fillfactor %d", cfg.DeliveriesFillfactor)
	}
	if cfg.HistoryDays != 0 {
		finished += fmt.Sprintf(", %d past days' partitions of %d finished deliveries each", cfg.HistoryDays, HistoryRowsPerDay)
	}
	if cfg.PoissonArrivals {
		poster += ", those at a rate at a Poisson process's instants"
	}
	handoffs := "none"
	if n := c.HandoffsAtOnce(); n > 0 {
		handoffs = strconv.Itoa(n)
	}
	linger := func(d time.Duration) string {
		if d > 0 {
			return d.String()
		}
		return "never"
	}
	return fmt.Sprintf("MaxWorkers %d, WebhookConcurrency %d (per process), backlogged bulk deliveries while another account's live ones are answered %s, FetchCooldown %s, FetchPollInterval %s, DBMaxConns %d, HTTP timeout %s, finished delivery jobs %s, a lone recording waits for company %s; events POSTed with %s (intake transactions at once: %d; a lone request waits for company %s; first attempts handed off at once, where the API works deliveries too: %s), account keys' rate limits: management %s, intake %s",
		c.MaxWorkers, c.WebhookConcurrency, bulk, c.FetchCooldown, c.FetchPollInterval, c.DBMaxConns, c.HTTPTimeout, finished, linger(c.RecordLinger),
		poster, c.IntakeTransactions, linger(c.IntakeLinger), handoffs, orDefault(cfg.ManagementRate, admin.ManagementRateDefault), orDefault(cfg.IntakeRate, admin.IntakeRateDefault))
}

func writeTable(w io.Writer, cfg *Config, res *Result) {
	m := res.Machine
	fmt.Fprintf(w, "\n%s · nproc %d (GOMAXPROCS %d)", m.Date.UTC().Format("2006-01-02 15:04 MST"), m.NProc, m.GOMAXPROCS)
	if m.CPUModel != "" {
		fmt.Fprintf(w, " · %s", m.CPUModel)
	}
	where := "on another machine"
	if m.PostgresLocal {
		where = "on this machine"
	}
	fmt.Fprintf(w, " · PostgreSQL %s (%s; %s) · %s\n", m.PostgresVersion, where, m.PostgresDurability, m.GoVersion)
	if cfg.PgBouncer {
		fmt.Fprintf(w, "**Through PgBouncer** %s in transaction mode (pool %d server connections per database; WEBHOOKD_DB_POOLER=transaction: River poll-only, statements described and cached, never prepared by name; the by-key pool and the reference direct).\n", pgbouncerVersion(), bouncerPoolSize)
	}
	if cfg.ExternalReceiver {
		fmt.Fprintln(w, "**External receiver**: scenarios 0 (River alone) and 1 (drain) post to the bench's receiver in a process of its own (the same code, started for each), the others to one in the bench process.")
	}
	if cfg.WorkerProcess && slices.Contains(cfg.Scenarios, ScenarioDrain) {
		fmt.Fprintln(w, workerProcessNote)
	}
	if cfg.WorkerProcess {
		procsNote := "**Go processors of webhookd's own process**: as `webhookd serve` by default, one while it uses under a quarter of a core, all of them from over half a core (WEBHOOKD_ADAPTIVE_PROCS)."
		if !cfg.AdaptiveProcs {
			procsNote = "**Go processors of webhookd's own process**: the runtime's count throughout (-adaptive-procs=false; WEBHOOKD_ADAPTIVE_PROCS=false)."
		}
		fmt.Fprintln(w, procsNote)
	}
	fmt.Fprintf(w, "webhookd in process with the bench's receivers and load generator: %s. "+
		"Snoozes: River job snoozes (a webhook at its in-flight cap, or a retry waiting for its time), from webhookd's webhookd_job_snoozes_total (a worker process's: from its kept jobs, with -keep-finished-jobs only).\n\n", serverSettings(cfg))

	fmt.Fprintln(w, "| # | scenario | result | target (issue 4) |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(n int, scenario, result, target string) {
		fmt.Fprintf(w, "| %d | %s | %s | %s |\n", n, scenario, result, target)
	}
	failed := func(n int) (string, bool) {
		if err, ok := res.Errors[n]; ok {
			return "**failed**: " + strings.ReplaceAll(err.Error(), "|", "/"), true
		}
		return "", false
	}
	for _, n := range cfg.Scenarios {
		msg, bad := failed(n)
		switch n {
		case ScenarioReference:
			scenario := fmt.Sprintf("reference, no webhookd: River alone working %s jobs, each signing its ~1 KB body and POSTing it to the same receiver (FetchCooldown %s, MaxWorkers as webhookd's)", count(cfg.Backlog), referenceFetchCooldown)
			if !bad {
				r := res.Reference
				msg = fmt.Sprintf("**%s jobs/s** (%.2f s); River's process (the bench's) CPU per job %s ms, its database's backends %s ms", count(int(r.PerSecond())), r.Elapsed.Seconds(), r.perJob(r.ProcessCPU), r.perJob(r.Backends))
			}
			row(n, scenario, msg, "issue 4 quotes ~14,600/s for its machine")
		case ScenarioDrain:
			scenario := fmt.Sprintf("drain: %s pending deliveries to one receiver answering 200", count(cfg.Backlog))
			if cfg.WorkerProcess {
				scenario += ", drained by a worker-only webhookd process"
			}
			if !bad {
				msg = fmt.Sprintf("**%s deliveries/s** (%.2f s; %s)%s", count(int(res.Drain.PerSecond())), res.Drain.Elapsed.Seconds(), snoozesText(res.Drain.Snoozes), workerProcessResult(res.Drain))
			}
			row(n, scenario, msg, "≥ 8,000/s")
		case ScenarioSustained:
			if bad {
				row(n, fmt.Sprintf("sustained: POST /v1/events at %s/s for %s each", joinInts(cfg.Rates), cfg.Duration), msg, "2,000/s, p99 ≤ 50 ms")
				continue
			}
			for _, s := range res.Sustained {
				row(n, fmt.Sprintf("sustained: POST /v1/events at %s/s for %s%s", count(s.Rate), cfg.Duration, warmupNote(cfg)),
					fmt.Sprintf("achieved %s/s (%s events); POST→first attempt p50 %s, **p99 %s**, max %s; %s; %s", count(int(s.Achieved+0.5)), count(s.Sent), ms(s.Latency.P50), ms(s.Latency.P99), ms(s.Latency.Max), snoozesText(s.Snoozes), commitNote(s.Commits)),
					"2,000/s, p99 ≤ 50 ms")
			}
		case ScenarioIsolation:
			scenario := fmt.Sprintf("isolation: scenario 1 beside a black hole (another account's webhook: accepts, never answers) with %s pending", count(cfg.BlackHole))
			if !bad {
				i := res.Isolation
				msg = fmt.Sprintf("healthy %s deliveries/s (%.2f s; %s) vs %s/s alone: **ratio %.2f**", count(int(i.Healthy.PerSecond())), i.Healthy.Elapsed.Seconds(), snoozesText(i.Healthy.Snoozes), count(int(i.Baseline)), i.Ratio)
			}
			row(n, scenario, msg, "ratio ≥ 0.9")
		case ScenarioNoisy:
			scenario := fmt.Sprintf("noisy neighbour: account A with a %s-delivery backlog; account B POSTs %d events/s for %s%s, starting once A has 2,000 delivered", count(cfg.NoisyBacklog), cfg.NoisyRate, cfg.Duration, warmupNote(cfg))
			if !bad {
				nz := res.Noisy
				msg = fmt.Sprintf("B's POST→first attempt p50 %s, **p99 %s**, max %s (%s events at %.0f/s); A delivered %s meanwhile; %s; %s",
					ms(nz.Latency.P50), ms(nz.Latency.P99), ms(nz.Latency.Max), count(nz.Sent), nz.Achieved, count(int(nz.BacklogDrained)), snoozesText(nz.Snoozes), commitNote(nz.Commits))
			}
			row(n, scenario, msg, "B's p99 ≤ 100 ms")
		case ScenarioPrecision:
			delay, _ := mustSchedule(cfg.RetryScale).Delay(2)
			scenario := fmt.Sprintf("precision: %s deliveries failing once at retry scale %g (attempt 2 due %s after attempt 1)", count(cfg.Retries), cfg.RetryScale, delay)
			if !bad {
				p := res.Precision
				msg = fmt.Sprintf("lateness (attempt 2 started_at − scheduled_at) p50 %s, **p99 %s**, max %s; %s (%s deliveries waited for a retry)",
					ms(p.Lateness.P50), ms(p.Lateness.P99), ms(p.Lateness.Max), snoozesText(p.Snoozes), count(p.Deliveries))
			}
			row(n, scenario, msg, "p99 ≤ 100 ms")
		case ScenarioResources:
			scenario := fmt.Sprintf("resources: a drain of %s (webhookd in process: its figures include the bench's receiver)", count(cfg.Backlog))
			if !bad {
				r := res.Resources
				rss := "n/a (no /proc/self/status)"
				if r.PeakRSS > 0 {
					rss = fmt.Sprintf("**%.0f MB**", float64(r.PeakRSS)/(1<<20))
					if r.PeakRSSWholeRun {
						rss += " (whole run: the peak could not be reset)"
					}
				}
				pg := "n/a (" + r.PostgresNote + ")"
				if r.PostgresCPUPerDelivery != nil {
					pg = fmt.Sprintf("%s ms (%s)", msf(*r.PostgresCPUPerDelivery), r.PostgresNote)
				}
				wal := "n/a (" + r.WALNote + ")"
				if r.WAL != nil {
					wal = fmt.Sprintf("%.0f bytes in about %.1f records (%.2f full-page images)", r.WAL.bytes, r.WAL.records, r.WAL.fpi)
				}
				msg = fmt.Sprintf("peak RSS %s; CPU per delivery: webhookd + receiver %s ms, PostgreSQL %s; WAL per delivery (the whole server's): %s; %s deliveries/s", rss, msf(r.CPUPerDelivery), pg, wal, count(int(r.Drain.PerSecond())))
			}
			row(n, scenario, msg, "RSS ≤ 150 MB")
		case ScenarioCost:
			if !bad {
				msg = fmt.Sprintf("intake %s events/s one a request, %s/s in batches; delivery %s/s: the table below", count(int(res.Cost.Intake.PerSecond())), count(int(res.Cost.IntakeBatch.PerSecond())), count(int(res.Cost.Delivery.PerSecond())))
			}
			row(n, fmt.Sprintf("cost: %s events POSTed one a request, %s in batches, then their deliveries drained; per event, each phase alone", count(cfg.Backlog), count(cfg.Backlog)), msg, "docs/scaling.md")
		case ScenarioIntake, ScenarioQuiet:
			writeIntakeRows(row, cfg, res, n, msg, bad)
		}
	}
	fmt.Fprintln(w)
	if res.Cost != nil {
		writeCost(w, res.Cost)
	}
}

// warmupNote says what was sent, uncounted, before a sender measured.
func warmupNote(cfg *Config) string {
	if cfg.Warmup <= 0 {
		return ""
	}
	return fmt.Sprintf(" (after %s uncounted)", cfg.Warmup)
}

func mustSchedule(scale float64) *schedule.Schedule {
	s, err := schedule.New(scale)
	if err != nil {
		s, _ = schedule.New(schedule.ScaleDefault)
	}
	return s
}

// ms formats d in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// msf formats d in milliseconds with three decimals (CPU per delivery).
func msf(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d.Nanoseconds())/1e6) }

// count formats n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = count(n)
	}
	return strings.Join(parts, ", ")
}

// snoozesText is a scenario's snoozes as printed: "n snoozes", or that
// they were not counted (stage.snoozes).
func snoozesText(n int64) string {
	if n < 0 {
		return "snoozes not counted"
	}
	return count(int(n)) + " snoozes"
}
