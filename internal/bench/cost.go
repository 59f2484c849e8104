package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/pgcluster"
	"github.com/mono/webhookd/internal/procs"
	"github.com/mono/webhookd/internal/server"
)

// The cost scenario's (7) account and shape.
const (
	costAccount = "acct_cost"
	// costSenders is how many POSTs are in flight at once in its intake
	// phases.
	costSenders = 32
	// costBatch is the events of one POST /v1/events/batch.
	costBatch = 100
)

// Cost is scenario 7: what one event costs the primary, intake and delivery
// measured apart, for docs/scaling.md.
type Cost struct {
	// Intake is Backlog events POSTed one per request; IntakeBatch as
	// many, costBatch to a request; Delivery is the drain of both (one
	// webhook: one delivery per event).
	Intake, IntakeBatch, Delivery CostPhase
}

// CostPhase is one phase of scenario 7, per event (per delivery for the
// drain).
type CostPhase struct {
	Events  int
	Elapsed time.Duration
	// CPU is webhookd's process per event (the bench's load generator and
	// receiver included); PostgresCPU PostgreSQL's, nil when it does not
	// run on this machine.
	CPU         time.Duration
	PostgresCPU *time.Duration
	// WAL bytes, records and full-page images per event (the phase starts
	// right after a CHECKPOINT: every page's first change is a full-page
	// image, the most a phase can write).
	WALBytes, WALRecords, WALFPI float64
	// WALNoImages is the phase's WAL records without their full-page
	// images, per event (pg_waldump --stats over the phase's WAL: its
	// "Record size"), the figure issue 30's goal is in; -1 when pg_waldump
	// could not read it (WALNoImagesNote says why).
	WALNoImages     float64
	WALNoImagesNote string
	// Commits is the bench database's xact_commit per event; WALWrites and
	// WALSyncs pg_stat_wal's wal_write and wal_sync (write and fsync calls
	// on the WAL); BlocksWritten the 8 KiB data blocks the phase dirtied,
	// written by the CHECKPOINT that ends it (plus any the background
	// writer and backends wrote during it).
	Commits, WALWrites, WALSyncs, BlocksWritten float64
	// Statements are the phase's statements that wrote WAL, most first,
	// per event (pg_stat_statements of the bench database; their bytes
	// include full-page images); nil when it is not loaded
	// (StatementsNote says why).
	Statements     []StatementWAL
	StatementsNote string
}

// StatementWAL is one statement's calls and WAL in a phase, per event.
type StatementWAL struct {
	// Query is the start of its text, whitespace folded.
	Query                               string
	Calls, WALBytes, WALRecords, WALFPI float64
}

// PerSecond is the phase's events a second.
func (p *CostPhase) PerSecond() float64 { return float64(p.Events) / p.Elapsed.Seconds() }

// IOPerEvent is the phase's write I/Os per event on the primary: WAL writes
// and fsyncs and data blocks (an upper bound on data writes: the OS merges
// neighbouring blocks).
func (p *CostPhase) IOPerEvent() float64 { return p.WALWrites + p.WALSyncs + p.BlocksWritten }

// counters are the server's and the bench database's cumulative counters.
type counters struct {
	walBytes, walRecords, walFPI, walWrites, walSyncs float64
	commits, blocks                                   float64
	lsn                                               string
}

const countersQuery = `
SELECT pg_current_wal_insert_lsn()::text, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8,
       w.wal_records::float8, w.wal_fpi::float8, w.wal_write::float8, w.wal_sync::float8,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::float8,
       (b.buffers_checkpoint + b.buffers_clean + b.buffers_backend)::float8
FROM pg_stat_wal w, pg_stat_bgwriter b`

// costProbe reads counters on a connection of its own, straight to the
// database (never through a pooler).
type costProbe struct{ conn *pgx.Conn }

func (p *costProbe) read(ctx context.Context) (*counters, error) {
	// Statistics reach the shared counters when a backend exits or idles:
	// the phase's server has stopped; this forces this session's own.
	var c counters
	err := p.conn.QueryRow(ctx, countersQuery).Scan(&c.lsn, &c.walBytes, &c.walRecords, &c.walFPI, &c.walWrites, &c.walSyncs, &c.commits, &c.blocks)
	if err != nil {
		return nil, fmt.Errorf("error reading pg_stat_wal, pg_stat_database and pg_stat_bgwriter: %w", err)
	}
	return &c, nil
}

// checkpoint runs CHECKPOINT and waits for the checkpointer to publish its
// figures, which it does just after CHECKPOINT returns.
func (p *costProbe) checkpoint(ctx context.Context) error {
	if _, err := p.conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("error running CHECKPOINT (scenario 7 needs a superuser, on a server of its own): %w", err)
	}
	time.Sleep(time.Second)
	return nil
}

// walWithoutImages is the WAL between two LSNs without full-page images,
// per event: pg_waldump --stats's total "Record size", read from the
// server's pg_wal (the bench runs on the server's machine, as a user that
// can read it, with a pg_waldump of the server's version). Before the
// phase's closing CHECKPOINT, which may recycle the segments. -1 and why
// when it can't.
func (p *costProbe) walWithoutImages(ctx context.Context, from, to string, events int) (float64, string) {
	var dataDir string
	var version int
	if err := p.conn.QueryRow(ctx, "SELECT current_setting('data_directory'), current_setting('server_version_num')::int").Scan(&dataDir, &version); err != nil {
		return -1, err.Error()
	}
	bin, err := pgcluster.Binary("pg_waldump", version/10000)
	if err != nil {
		return -1, err.Error()
	}
	// The phase's last records may not be on disk yet (nothing committed
	// after them): a commit flushed at once flushes everything before it.
	err = pgx.BeginFunc(ctx, p.conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on; SELECT txid_current()")
		return err
	})
	if err != nil {
		return -1, fmt.Sprintf("error flushing the WAL: %v", err)
	}
	// Seen in 3 of 18 phases on a durable server, once after the flush
	// above was added: the read stopped at the phase's last page, which
	// still held a recycled segment's old contents; read again later, the
	// range read whole. So a failed read is tried twice more, a second
	// apart.
	var out []byte
	for try := 0; ; try++ {
		out, err = exec.CommandContext(ctx, bin, "--stats", "-p", filepath.Join(dataDir, "pg_wal"), "-s", from, "-e", to).CombinedOutput()
		if err == nil {
			break
		}
		if try == 2 {
			var flushed string
			_ = p.conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&flushed)
			return -1, fmt.Sprintf("%s %s to %s (flushed to %s): %v: %s", filepath.Base(bin), from, to, flushed, err, lastLine(out))
		}
		time.Sleep(time.Second)
	}
	records, err := waldumpRecordBytes(out)
	if err != nil {
		return -1, err.Error()
	}
	return records / float64(events), ""
}

// waldumpRecordBytes reads the total "Record size" (bytes without
// full-page images) from pg_waldump --stats's output, whose last line is
// "Total  <records>  <record size> [p%]  <FPI size> [p%]  <combined> [100%]".
func waldumpRecordBytes(out []byte) (float64, error) {
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "Total" {
			n, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return 0, fmt.Errorf("pg_waldump's Total line %q: %w", line, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no Total line in pg_waldump's output: %s", lastLine(out))
}

// lastLine is the last non-empty line of out, for an error message.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// statementsQuery reads pg_stat_statements' WAL counters of the bench
// database's statements.
const statementsQuery = `
SELECT s.queryid, left(regexp_replace(s.query, '\s+', ' ', 'g'), 80), s.calls::float8,
       s.wal_bytes::float8, s.wal_records::float8, s.wal_fpi::float8
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database() AND s.wal_bytes > 0`

// statements reads pg_stat_statements (nil and why when it is not loaded:
// it must be in shared_preload_libraries; the extension is created in the
// bench database when it is).
func (p *costProbe) statements(ctx context.Context) (map[int64]StatementWAL, string) {
	if _, err := p.conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return nil, err.Error()
	}
	rows, err := p.conn.Query(ctx, statementsQuery)
	if err != nil {
		return nil, err.Error()
	}
	read, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		ID int64
		StatementWAL
	}])
	if err != nil {
		return nil, err.Error()
	}
	out := make(map[int64]StatementWAL, len(read))
	for _, r := range read {
		out[r.ID] = r.StatementWAL
	}
	return out, ""
}

// statementsPerEvent is what each statement wrote between two readings,
// per event: the six that wrote most (a byte or more per event), most
// first.
func statementsPerEvent(before, after map[int64]StatementWAL, events int) []StatementWAL {
	n := float64(events)
	var out []StatementWAL
	for id, a := range after {
		b := before[id]
		d := StatementWAL{Query: a.Query, Calls: (a.Calls - b.Calls) / n, WALBytes: (a.WALBytes - b.WALBytes) / n,
			WALRecords: (a.WALRecords - b.WALRecords) / n, WALFPI: (a.WALFPI - b.WALFPI) / n}
		if d.WALBytes >= 1 {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(x, y StatementWAL) int { return cmp.Compare(y.WALBytes, x.WALBytes) })
	return out[:min(len(out), 6)]
}

// measure runs one phase: a CHECKPOINT (so the phase's own dirty blocks are
// what the closing one writes), the counters, run, the CPU figures, stop
// (which stops the phase's server, so that every backend flushes its
// statistics as it exits), the counters again and a closing CHECKPOINT.
func (e *env) measure(ctx context.Context, probe *costProbe, dbName string, events int, run, stop func() error) (*CostPhase, error) {
	if err := probe.checkpoint(ctx); err != nil {
		return nil, err
	}
	c0, err := probe.read(ctx)
	if err != nil {
		return nil, err
	}
	st0, stNote := probe.statements(ctx)
	sampler, samplerErr := startPGSampler(ctx, e.baseURL, dbName)
	cpu0, err := procs.ProcessCPU()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := run(); err != nil {
		_ = stop()
		return nil, err
	}
	elapsed := time.Since(start)
	cpu1, err := procs.ProcessCPU()
	if err != nil {
		return nil, err
	}
	ph := &CostPhase{Events: events, Elapsed: elapsed, CPU: (cpu1 - cpu0) / time.Duration(events)}
	if samplerErr == nil {
		pg, err := sampler.stop(ctx)
		if err != nil {
			return nil, err
		}
		per := pg / time.Duration(events)
		ph.PostgresCPU = &per
	}
	if err := stop(); err != nil {
		return nil, err
	}
	// A pooler keeps its server connections: end them, so they flush too.
	if _, err := probe.conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
		return nil, fmt.Errorf("error ending the phase's database sessions: %w", err)
	}
	// Backends flush their statistics as they exit, which neither the
	// server's Stop nor pg_terminate_backend waits for.
	time.Sleep(time.Second)
	c1, err := probe.read(ctx)
	if err != nil {
		return nil, err
	}
	ph.WALNoImages, ph.WALNoImagesNote = probe.walWithoutImages(ctx, c0.lsn, c1.lsn, events)
	ph.StatementsNote = stNote
	if st0 != nil {
		st1, note := probe.statements(ctx)
		if st1 != nil {
			ph.Statements = statementsPerEvent(st0, st1, events)
		}
		ph.StatementsNote = note
	}
	if err := probe.checkpoint(ctx); err != nil {
		return nil, err
	}
	c2, err := probe.read(ctx)
	if err != nil {
		return nil, err
	}
	n := float64(events)
	ph.WALBytes, ph.WALRecords, ph.WALFPI = (c1.walBytes-c0.walBytes)/n, (c1.walRecords-c0.walRecords)/n, (c1.walFPI-c0.walFPI)/n
	ph.WALWrites, ph.WALSyncs = (c1.walWrites-c0.walWrites)/n, (c1.walSyncs-c0.walSyncs)/n
	ph.Commits = (c1.commits - c0.commits - 1) / n // less the probe's read of c1
	ph.BlocksWritten = (c2.blocks - c0.blocks) / n
	return ph, nil
}

// cost is scenario 7: Backlog events POSTed one per request to an API-only
// webhookd, as many again in batches of costBatch, then every delivery
// (one webhook) drained by a worker-only webhookd, each phase measured on
// its own. It runs CHECKPOINT between phases: give it a server of its own
// (a throwaway cluster, or your own with production settings).
func (e *env) cost(ctx context.Context) (*Cost, error) {
	dbURL, dbName, drop, err := createDatabase(ctx, e.baseURL, e.dbOptions())
	if err != nil {
		return nil, err
	}
	defer drop()
	key := keyring.Generate()
	keys, err := keyring.Parse(key)
	if err != nil {
		return nil, err
	}
	probeConn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer probeConn.Close(context.WithoutCancel(ctx))
	probe := &costProbe{conn: probeConn}

	// A stage for the receiver, the webhook and the waits; its server is
	// each phase's.
	s := &stage{e: e, n: ScenarioCost, dbName: dbName, dbURL: dbURL, keys: keys}
	defer s.close()
	recv, target, err := s.startReceiver(false)
	if err != nil {
		return nil, err
	}
	total := e.cfg.Backlog
	out := &Cost{}

	serve := func(api bool) (*server.Server, error) {
		cfg, err := e.serverConfig(dbURL, key, 1)
		if err != nil {
			return nil, err
		}
		cfg.API, cfg.Worker = api, !api
		srv, err := server.New(ctx, cfg, e.cfg.Logger)
		if err != nil {
			return nil, err
		}
		if err := srv.Start(ctx); err != nil {
			_ = srv.Stop(context.WithoutCancel(ctx))
			return nil, err
		}
		return srv, nil
	}
	for i, batch := range []int{1, costBatch} {
		srv, err := serve(true)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			s.srv = srv
			if _, err := s.createWebhook(ctx, costAccount, target); err != nil {
				_ = srv.Stop(context.WithoutCancel(ctx))
				return nil, err
			}
		}
		s.progress("intake: POSTing %s events, %d to a request, %d requests at once", count(total), batch, costSenders)
		ph, err := e.measure(ctx, probe, dbName, total, func() error {
			return postAll(ctx, "http://"+srv.Addr(), total, batch)
		}, func() error { return srv.Stop(context.WithoutCancel(ctx)) })
		if err != nil {
			return nil, err
		}
		s.progress("intake, %d to a request: %s events/s", batch, count(int(ph.PerSecond())))
		if batch == 1 {
			out.Intake = *ph
		} else {
			out.IntakeBatch = *ph
		}
	}

	deliveries := 2 * total
	s.progress("delivery: draining %s deliveries", count(deliveries))
	var worker *server.Server
	ph, err := e.measure(ctx, probe, dbName, deliveries, func() error {
		var err error
		if worker, err = serve(false); err != nil {
			return err
		}
		deadline := time.Now().Add(e.cfg.Timeout)
		err = s.waitAnswered(ctx, recv, deliveries, deadline)
		if err == nil {
			err = s.waitFor(ctx, "every delivery to be recorded as succeeded", time.Until(deadline), 5*time.Millisecond, func() (bool, string, error) {
				var pending int
				err := probeConn.QueryRow(ctx, "SELECT count(*) FROM deliveries WHERE state = 'pending'").Scan(&pending)
				return pending == 0, fmt.Sprintf("%s still pending", count(pending)), err
			})
		}
		return err
	}, func() error {
		if worker == nil {
			return nil
		}
		return worker.Stop(context.WithoutCancel(ctx))
	})
	if err != nil {
		return nil, err
	}
	if err := s.checkSentOnce(ctx, costAccount, recv.requests.Load(), deliveries); err != nil {
		return nil, err
	}
	out.Delivery = *ph
	s.progress("delivery: %s deliveries/s", count(int(ph.PerSecond())))
	return out, nil
}

// postAll POSTs total events of costAccount to the API at base, batch to a
// request (1: POST /v1/events), costSenders requests at once.
func postAll(ctx context.Context, base string, total, batch int) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: costSenders}, Timeout: postTimeout}
	defer client.CloseIdleConnections()
	pad := strings.Repeat("x", 900)
	event := func(i int) string {
		return fmt.Sprintf(`{"account_id":%q,"type":"bench.cost","data":{"i":%d,"pad":%q}}`, costAccount, i, pad)
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	requests := (total + batch - 1) / batch
	for range costSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r := int(next.Add(1)) - 1
				if r >= requests {
					return
				}
				path, body := "/v1/events", event(r)
				if batch > 1 {
					parts := make([]string, 0, batch)
					for i := r * batch; i < min((r+1)*batch, total); i++ {
						parts = append(parts, event(i))
					}
					path, body = "/v1/events/batch", `{"events":[`+strings.Join(parts, ",")+`]}`
				}
				err := postOne(ctx, client, base+path, body)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func postOne(ctx context.Context, client *http.Client, url, body string) error {
	status, raw, err := postJSON(ctx, client, url, benchAdminKey, body)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	if status/100 != 2 {
		return fmt.Errorf("POST %s: status %d: %.4096s", url, status, raw)
	}
	return nil
}

// postJSON POSTs body to url with API key key and returns the answer's
// status and body (its first 64 KiB).
func postJSON(ctx context.Context, client *http.Client, url, key, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, raw, nil
}

// writeCost prints scenario 7's table: per event, intake and delivery; then
// the statements that wrote the WAL.
func writeCost(w io.Writer, c *Cost) {
	phases := []struct {
		name, short string
		ph          *CostPhase
	}{
		{"intake, POST /v1/events (one event a request)", "intake, one a request", &c.Intake},
		{fmt.Sprintf("intake, POST /v1/events/batch (%d a request)", costBatch), "intake, batches", &c.IntakeBatch},
		{"delivery (one attempt, 200)", "delivery", &c.Delivery},
	}
	fmt.Fprintln(w, "\nScenario 7, per event (per delivery for the drain; one webhook), each phase after a CHECKPOINT:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| phase | events/s | webhookd CPU (with load generator and receiver) | PostgreSQL CPU | commits | WAL bytes (records, full-page images) | WAL bytes without full-page images | WAL writes + fsyncs | data blocks written | write I/Os |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	var notes []string
	for _, p := range phases {
		pg := "n/a"
		if p.ph.PostgresCPU != nil {
			pg = msf(*p.ph.PostgresCPU) + " ms"
		}
		noImages := fmt.Sprintf("%.0f", p.ph.WALNoImages)
		if p.ph.WALNoImages < 0 {
			noImages = "n/a"
			notes = append(notes, fmt.Sprintf("%s: %s", p.short, p.ph.WALNoImagesNote))
		}
		fmt.Fprintf(w, "| %s | %s | %s ms | %s | %.2f | %.0f (%.1f, %.2f) | %s | %.2f + %.2f | %.2f | %.2f |\n",
			p.name, count(int(p.ph.PerSecond())), msf(p.ph.CPU), pg, p.ph.Commits, p.ph.WALBytes, p.ph.WALRecords, p.ph.WALFPI,
			noImages, p.ph.WALWrites, p.ph.WALSyncs, p.ph.BlocksWritten, p.ph.IOPerEvent())
	}
	fmt.Fprintln(w)
	if len(notes) > 0 {
		fmt.Fprintf(w, "WAL without full-page images (pg_waldump --stats over each phase's WAL): n/a, %s\n\n", strings.Join(notes, "; "))
	}
	if c.Delivery.Statements == nil {
		fmt.Fprintf(w, "WAL by statement: n/a (pg_stat_statements: %s)\n\n", c.Delivery.StatementsNote)
		return
	}
	fmt.Fprintln(w, "WAL by statement, per event (pg_stat_statements; bytes include full-page images):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| phase | statement | calls | WAL bytes (records, full-page images) |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, p := range phases {
		for _, st := range p.ph.Statements {
			fmt.Fprintf(w, "| %s | `%s` | %.2f | %.0f (%.1f, %.2f) |\n", p.short, strings.ReplaceAll(st.Query, "|", "\\|"), st.Calls, st.WALBytes, st.WALRecords, st.WALFPI)
		}
	}
	fmt.Fprintln(w)
}
