package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/retention"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/migrations"
)

// benchAdminKey is the bootstrap admin key of every bench server.
const benchAdminKey = "bench-admin-key-0123456789"

// stopTimeout bounds a bench server's shutdown: attempts still running
// (the black hole's) are cancelled after it.
const stopTimeout = 2 * time.Second

// stage is one scenario's fresh database and fresh (not yet started)
// server. close stops and drops everything, in reverse order.
type stage struct {
	e       *env
	n       int
	dbName  string
	dbURL   string
	srv     *server.Server
	keys    *keyring.Keyring
	started bool
	closers []func()
	// accountKeys are the account keys made for Config.AccountKey.
	accountKeys map[string]string
	// key, when set, is the key every POST of postEvents sends (scenarios 8
	// and 9: an events:write key); pad, when set, goes in each event's data.
	key, pad string
	// srvCfg is srv's config (newStage's), which a worker process
	// (Config.WorkerProcess) is given too.
	srvCfg *server.Config
	// apiAddr, when set, is the address of the API the stage's requests
	// go to instead of srv's: a process of its own serving webhookd
	// (scenario 9 with Config.WorkerProcess).
	apiAddr string
}

// newStage creates a fresh, migrated database and a server on it with
// retryScale (1 unless the scenario says otherwise).
func (e *env) newStage(ctx context.Context, n int, retryScale float64) (*stage, error) {
	s := &stage{e: e, n: n}
	dbURL, dbName, drop, err := createDatabase(ctx, e.baseURL, e.dbOptions())
	if err != nil {
		return nil, err
	}
	s.dbName, s.dbURL = dbName, dbURL
	s.closers = append(s.closers, drop)
	key := keyring.Generate()
	s.keys, err = keyring.Parse(key)
	if err != nil {
		s.close()
		return nil, err
	}
	cfg, err := e.serverConfig(dbURL, key, retryScale)
	if err != nil {
		s.close()
		return nil, err
	}
	s.srvCfg = cfg
	s.srv, err = server.New(ctx, cfg, e.cfg.Logger)
	if err != nil {
		s.close()
		return nil, err
	}
	s.closers = append(s.closers, func() {
		// Stop works on a server that never started too (it closes the pool).
		_ = s.srv.Stop(context.WithoutCancel(ctx))
	})
	return s, nil
}

// serverConfig is the config of a bench server on dbURL: the Config's
// overrides, through the bench's PgBouncer when there is one.
func (e *env) serverConfig(dbURL, key string, retryScale float64) (*server.Config, error) {
	cfg := &server.Config{
		DatabaseURL:            dbURL,
		Addr:                   "127.0.0.1:0",
		EncryptionKey:          key,
		BootstrapAdminKey:      benchAdminKey,
		AllowPrivateNetworks:   true,
		RetryScale:             retryScale,
		MaxWorkers:             e.cfg.MaxWorkers,
		WebhookConcurrency:     e.cfg.WebhookConcurrency,
		BulkWhileLive:          e.cfg.BulkWhileLive,
		DBMaxConns:             e.cfg.DBMaxConns,
		HTTPTimeout:            e.cfg.HTTPTimeout,
		FetchCooldown:          e.cfg.FetchCooldown,
		FetchPollInterval:      e.cfg.FetchPollInterval,
		IntakeTransactions:     e.cfg.IntakeTransactions,
		Handoffs:               e.cfg.Handoffs,
		RecordLinger:           e.cfg.RecordLinger,
		IntakeLinger:           e.cfg.IntakeLinger,
		RateLimitManagement:    e.cfg.ManagementRate,
		RateLimitIntakeAccount: e.cfg.IntakeRate,
		ShutdownTimeout:        stopTimeout,
		Version:                "bench",
		TracerProvider:         e.cfg.TracerProvider,
		KeepFinishedJobs:       e.cfg.KeepFinishedJobs,
	}
	if err := e.throughBouncer(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newStageWithReceiver is newStage with a receiver started (failing each
// event's first attempt when failFirst) and, unless account is empty, a
// webhook of account to it. The stage closes on any error. With
// Config.ExternalReceiver, scenarios 0 and 1 get a receiver in a process of
// its own.
func (e *env) newStageWithReceiver(ctx context.Context, n int, retryScale float64, failFirst bool, account string) (*stage, *receiver, string, error) {
	s, err := e.newStage(ctx, n, retryScale)
	if err != nil {
		return nil, nil, "", err
	}
	var recv *receiver
	var target string
	if e.cfg.ExternalReceiver && !failFirst && (e.current == ScenarioReference || e.current == ScenarioDrain) {
		recv, target, err = s.startExternalReceiver()
	} else {
		recv, target, err = s.startReceiver(failFirst)
	}
	if err == nil && account != "" {
		_, err = s.createWebhook(ctx, account, target)
	}
	if err != nil {
		s.close()
		return nil, nil, "", err
	}
	return s, recv, target, nil
}

// start starts the server's API and workers.
func (s *stage) start(ctx context.Context) error {
	if err := s.srv.Start(ctx); err != nil {
		return err
	}
	s.started = true
	return nil
}

// onClose runs f when the stage closes, before the server stops.
func (s *stage) onClose(f func()) { s.closers = append(s.closers, f) }

func (s *stage) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func (s *stage) progress(format string, args ...any) { s.e.progress(s.n, format, args...) }

func (s *stage) pool() *pgxpool.Pool { return s.srv.Pool() }

// addr is the address of the stage's API: srv's (after start), or
// apiAddr.
func (s *stage) addr() string {
	if s.apiAddr != "" {
		return s.apiAddr
	}
	return s.srv.Addr()
}

// api is the URL of the server's event endpoint (after start).
func (s *stage) api() string { return "http://" + s.addr() + "/v1/events" }

// postKey is the API key scenarios 2 and 4 POST account's events with:
// the bootstrap admin key, or with Config.AccountKey one of account's,
// made through the API once per stage (after start).
func (s *stage) postKey(ctx context.Context, account string) (string, error) {
	if s.key != "" {
		return s.key, nil
	}
	if !s.e.cfg.AccountKey {
		return benchAdminKey, nil
	}
	if k, ok := s.accountKeys[account]; ok {
		return k, nil
	}
	k, err := s.newKey(ctx, "account", account)
	if err != nil {
		return "", err
	}
	if s.accountKeys == nil {
		s.accountKeys = map[string]string{}
	}
	s.accountKeys[account] = k
	return k, nil
}

// createWebhook adds a webhook of account to target, inserted directly.
func (s *stage) createWebhook(ctx context.Context, account, target string, with ...func(*store.Webhook)) (string, error) {
	id := ident.New(ident.Webhook)
	ct, keyID, err := s.keys.Encrypt([]byte("whsec_bench"), []byte(id))
	if err != nil {
		return "", err
	}
	hook := &store.Webhook{ID: id, AccountID: account, URL: target, URLNormalized: target, SecretCiphertext: ct, SecretKeyID: keyID, CreatedAt: time.Now()}
	for _, f := range with {
		f(hook)
	}
	if err = store.InsertWebhook(ctx, s.pool(), hook); err != nil {
		return "", fmt.Errorf("error creating webhook of %s: %w", account, err)
	}
	return id, nil
}

// backlogPerTx is how many events one transaction of insertBacklog holds,
// in EnqueueMany batches of engine.MaxBatchSize.
const backlogPerTx = 5 * engine.MaxBatchSize

// insertBacklog enqueues n events of account (a ~1 KB body each; one
// delivery per live webhook of the account) through the engine's own
// EnqueueMany, in big transactions, so the jobs get whatever the engine
// gives them (their priority included). One Enqueuer per call: its per-
// account fair-share accounting sees the whole backlog, as a producer's
// would.
func (s *stage) insertBacklog(ctx context.Context, account string, n int) error {
	start := time.Now()
	deadline := start.Add(s.e.cfg.Timeout)
	enqueuer, err := engine.NewEnqueuer(s.srv.River(), nil)
	if err != nil {
		return err
	}
	pad := strings.Repeat("x", 900)
	for done := 0; done < n; {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: inserting the backlog: %d of %d inserted after %s", errBound, done, n, s.e.cfg.Timeout)
		}
		size := min(backlogPerTx, n-done)
		err := pgx.BeginFunc(ctx, s.pool(), func(tx pgx.Tx) error {
			for off := 0; off < size; off += engine.MaxBatchSize {
				events := make([]*engine.Event, min(engine.MaxBatchSize, size-off))
				for i := range events {
					data := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, done+off+i, pad)
					events[i] = &engine.Event{AccountID: account, Type: "bench.backlog", Data: json.RawMessage(data)}
				}
				if _, err := enqueuer.EnqueueMany(ctx, tx, events); err != nil {
					return fmt.Errorf("error enqueuing the backlog: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += size
	}
	s.progress("inserted %s deliveries of %s in %s", count(n), account, time.Since(start).Round(time.Millisecond))
	return nil
}

// pendingOf counts account's pending deliveries.
func (s *stage) pendingOf(ctx context.Context, account string) (int, error) {
	var n int
	err := s.pool().QueryRow(ctx, "SELECT count(*) FROM deliveries WHERE account_id = $1 AND state = 'pending'", account).Scan(&n)
	return n, err
}

const snoozesCount = `
SELECT coalesce(sum((metadata->>'snoozes')::bigint), 0)::bigint FROM river_job WHERE kind = $1`

// snoozes is how often this stage's delivery jobs were snoozed: a webhook
// at its per-process in-flight cap, a delivery not yet due, a retry
// waiting for its time. From the stage's server's
// webhookd_job_snoozes_total when that server worked the jobs; else (a
// worker process worked them) from the jobs' metadata, which River keeps
// only as long as it keeps the jobs: with Config.KeepFinishedJobs. Without
// either, -1: not counted (a finished delivery's job is deleted, its
// snoozes with it).
func (s *stage) snoozes(ctx context.Context) (int64, error) {
	if s.started {
		return snoozesCounted(s.srv.Metrics())
	}
	if !s.srvCfg.KeepFinishedJobs {
		return -1, nil
	}
	var n int64
	if err := s.pool().QueryRow(ctx, snoozesCount, engine.DeliveryArgs{}.Kind()).Scan(&n); err != nil {
		return 0, fmt.Errorf("error counting snoozes: %w", err)
	}
	return n, nil
}

// snoozesCounted is the sum of m's webhookd_job_snoozes_total.
func snoozesCounted(m *metrics.Metrics) (int64, error) {
	families, err := m.Registry().Gather()
	if err != nil {
		return 0, fmt.Errorf("error reading the server's metrics: %w", err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() == "webhookd_job_snoozes_total" {
			for _, c := range f.GetMetric() {
				n += c.GetCounter().GetValue()
			}
		}
	}
	return int64(n), nil
}

// errBound marks an error from a bound being hit.
var errBound = errors.New("bound reached")

// waitFor polls cond every interval until it reports done, printing its
// status every progressEvery; it fails when ctx ends or timeout passes.
func (s *stage) waitFor(ctx context.Context, what string, timeout, interval time.Duration, cond func() (done bool, status string, err error)) error {
	const progressEvery = 5 * time.Second
	start := time.Now()
	nextProgress := start.Add(progressEvery)
	for {
		done, status, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		now := time.Now()
		if now.Sub(start) > timeout {
			return fmt.Errorf("%w: %s not reached after %s (%s)", errBound, what, timeout, status)
		}
		if now.After(nextProgress) {
			s.progress("waiting for %s: %s (%s)", what, status, now.Sub(start).Round(time.Second))
			nextProgress = now.Add(progressEvery)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (%s)", what, ctx.Err(), status)
		case <-time.After(interval):
		}
	}
}

// dbOptions is how a bench database differs from a fresh one.
type dbOptions struct {
	// fillfactor is Config.DeliveriesFillfactor.
	fillfactor int
	// historyDays is Config.HistoryDays.
	historyDays int
}

func (e *env) dbOptions() dbOptions {
	return dbOptions{fillfactor: e.cfg.DeliveriesFillfactor, historyDays: e.cfg.HistoryDays}
}

// HistoryRowsPerDay is how many finished deliveries each past day's
// partition holds with Config.HistoryDays.
const HistoryRowsPerDay = 2000

// createDatabase makes a fresh, migrated database on the server at baseURL
// and returns its URL, its name and a function that drops it. A fillfactor
// other than 0 is set on deliveries' partitions, as docs/operators.md
// tells an operator to (the default partition, whose storage parameters
// new partitions take, and those already made); historyDays past days'
// partitions are made and filled.
func createDatabase(ctx context.Context, baseURL string, opts dbOptions) (string, string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "webhookd_bench_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return "", "", nil, fmt.Errorf("error connecting to %s: %w", redact(baseURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", nil, fmt.Errorf("error creating the bench database: %w", err)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", "", nil, err
	}
	u.Path = "/" + name
	dbURL := u.String()
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(dctx, baseURL)
		if err == nil {
			_, _ = c.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(dctx)
		}
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		drop()
		return "", "", nil, err
	}
	defer pool.Close()
	if err := migrations.Migrate(ctx, pool); err != nil {
		drop()
		return "", "", nil, err
	}
	if opts.fillfactor != 0 {
		if _, err := pool.Exec(ctx, `
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'deliveries'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = `+strconv.Itoa(opts.fillfactor)+`)', p);
    END LOOP;
END
$$`); err != nil {
			drop()
			return "", "", nil, fmt.Errorf("error setting deliveries' fillfactor: %w", err)
		}
	}
	// The steady state: a deployment that has run for a day has its
	// partitions from yesterday to the retention job's days ahead, so its
	// start creates none. Created at the server's start instead, each
	// ATTACH holds its parent's default partition exclusively and the hot
	// path queues behind it: measured, B's p99 in scenario 4 went from
	// 154 - 245 ms to 400 - 544 ms.
	today := store.Day(time.Now())
	if _, err := store.EnsurePartitions(ctx, pool, today.AddDate(0, 0, -max(1, opts.historyDays)), today.AddDate(0, 0, retention.AheadDefault), 0); err != nil {
		drop()
		return "", "", nil, fmt.Errorf("error creating the day partitions: %w", err)
	}
	if opts.historyDays > 0 {
		// A deployment's past days: finished deliveries of an account no
		// scenario reads (no attempts, no events: nothing counts them).
		if _, err := pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, gen_attempts,
                        created_at, updated_at, finished_at, part_day)
SELECT 'dlv_history_' || to_char(d, 'YYYYMMDD') || '_' || g, 'evt_history', 'wh_history', 'acct_history', 'history',
       'succeeded', 1, 1, d, d, d, d::date
FROM generate_series($1::date, $2::date, interval '1 day') d, generate_series(1, $3) g`,
			today.AddDate(0, 0, -opts.historyDays), today.AddDate(0, 0, -1), HistoryRowsPerDay); err != nil {
			drop()
			return "", "", nil, fmt.Errorf("error filling the past days: %w", err)
		}
		// The past days' partitions only, as autovacuum leaves a
		// deployment: today's and the days ahead are never analyzed
		// while empty. Analyzed empty (as VACUUM (ANALYZE) deliveries
		// did), the worker's generic plans, made while today's partition
		// was nearly empty, scanned it whole for each attempt's record
		// until autoanalyze came: single-event intake at 0.15 - 0.22 of
		// River instead of ~0.40 (BENCHMARKS.md).
		for d := 1; d <= opts.historyDays; d++ {
			part := pgx.Identifier{store.PartitionName("deliveries", today.AddDate(0, 0, -d))}.Sanitize()
			if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) `+part); err != nil {
				drop()
				return "", "", nil, fmt.Errorf("error vacuuming the past days: %w", err)
			}
		}
	}
	return dbURL, name, drop, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// failedAttemptsOf counts account's attempts that did not succeed: a
// timed-out attempt whose request the receiver did get is sent again.
const failedAttemptsOf = `
SELECT count(*) FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.account_id = $1 AND (a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)`

// checkSentOnce fails when the receiver saw more requests than deliveries
// (got for total) beyond what account's failed attempts explain, or fewer:
// on a loaded machine an attempt can time out after the receiver has read
// it, and its retry is a second request the engine recorded, not a
// duplicate it lost track of.
func (s *stage) checkSentOnce(ctx context.Context, account string, got int64, total int) error {
	if got == int64(total) {
		return nil
	}
	// The scenario's servers may be stopped by now: a connection of its own.
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return fmt.Errorf("error connecting to count failed attempts: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var failed int64
	if err := conn.QueryRow(ctx, failedAttemptsOf, account).Scan(&failed); err != nil {
		return fmt.Errorf("error counting failed attempts: %w", err)
	}
	if got < int64(total) || got-int64(total) > failed {
		return fmt.Errorf("the receiver saw %d requests for %d deliveries (each should be sent once; %d failed attempts were retried)", got, total, failed)
	}
	s.progress("the receiver saw %d requests for %d deliveries: %d sent again after an attempt that failed (timed out under load)", got, total, got-int64(total))
	return nil
}

// twoServerStage is a drain stage (scenario 1's number) on a fresh
// database with two servers on it, not started, the first as s.srv: the
// throttle and FIFO scenarios' set-up. The caller closes the stage.
func (e *env) twoServerStage(ctx context.Context) (s *stage, servers []*server.Server, err error) {
	s = &stage{e: e, n: ScenarioDrain}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	dbURL, dbName, drop, err := createDatabase(ctx, e.baseURL, e.dbOptions())
	if err != nil {
		return nil, nil, err
	}
	s.dbName, s.dbURL = dbName, dbURL
	s.onClose(drop)
	key := keyring.Generate()
	if s.keys, err = keyring.Parse(key); err != nil {
		return nil, nil, err
	}
	for range 2 {
		cfg, err := e.serverConfig(dbURL, key, 1)
		if err != nil {
			return nil, nil, err
		}
		// Each limited delivery's fetches are read from its job's
		// metadata: the jobs are kept.
		cfg.KeepFinishedJobs = true
		srv, err := server.New(ctx, cfg, e.cfg.Logger)
		if err != nil {
			return nil, nil, err
		}
		s.onClose(func() { _ = srv.Stop(context.WithoutCancel(ctx)) })
		servers = append(servers, srv)
	}
	s.srv = servers[0]
	return s, servers, nil
}
