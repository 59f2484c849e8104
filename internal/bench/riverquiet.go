package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/mono/webhookd/internal/server"
)

// riverProcessEnv, set to "1" in a process's environment, makes it the
// bench's River process (scenario 9's reference, with -worker process)
// instead of whatever it would have been: startRiverProcess re-executes the
// running binary (webhookd, or this package's test binary) with it, and
// ServeChildIfAsked serves.
const riverProcessEnv = "WEBHOOKD_BENCH_RIVER_PROCESS"

// riverSpec is what the bench sends the River process, one JSON line on its
// standard input.
type riverSpec struct {
	DatabaseURL string `json:"database_url"`
	// Target is the receiver's URL every job POSTs to.
	Target     string `json:"target"`
	MaxWorkers int    `json:"max_workers"`
	DBMaxConns int32  `json:"db_max_conns"`
	// GCPercent is the bench process's, as the worker process gets it: the
	// two processes measured side by side collect alike.
	GCPercent int `json:"gc_percent"`
}

func (w *riverSpec) gcPercent() int { return w.GCPercent }

// serveRiver is River's process: it reads a riverSpec line on its standard
// input, serves River alone with a minimal event API in front (riverAPI)
// on 127.0.0.2, prints "listening ADDR", and returns when its standard
// input closes.
func serveRiver(ctx context.Context, in io.Reader, out io.Writer) error {
	var spec riverSpec
	sc, err := readSpec(in, &spec, "River spec")
	if err != nil {
		return err
	}
	pcfg, err := pgxpool.ParseConfig(spec.DatabaseURL)
	if err != nil {
		return err
	}
	pcfg.MaxConns = spec.DBMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, stopClient, err := startReferenceClient(ctx, pool, spec.MaxWorkers)
	if err != nil {
		return err
	}
	defer stopClient()

	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: &riverAPI{client: client, target: spec.Target}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if _, err := fmt.Fprintf(out, "listening %s\n", ln.Addr()); err != nil {
		return err
	}
	if sc.Scan() {
		return fmt.Errorf("unknown command %q", sc.Text())
	}
	return sc.Err()
}

// startReferenceClient starts River alone as scenario 0 runs it
// (newReferenceClient). stop stops it, bounded by stopTimeout.
func startReferenceClient(ctx context.Context, pool *pgxpool.Pool, maxWorkers int) (client *river.Client[pgx.Tx], stop func(), err error) {
	client, transport, err := newReferenceClient(pool, maxWorkers)
	if err != nil {
		return nil, nil, err
	}
	if err := client.Start(ctx); err != nil {
		transport.CloseIdleConnections()
		return nil, nil, err
	}
	return client, func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		_ = client.Stop(stopCtx)
		transport.CloseIdleConnections()
	}, nil
}

// riverAPI is the least an event API in front of River does: POST
// /v1/events decodes the event, wraps it in an envelope with an id, inserts
// it as River's job (its own transaction, committed before the answer) and
// answers 202 with the id; the reference worker then signs and POSTs it.
// It checks no API key and stores no event or delivery row: what River
// alone costs an event, for scenario 9's figures to be read against.
type riverAPI struct {
	client *river.Client[pgx.Tx]
	target string
	seq    atomic.Int64
}

func (a *riverAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" {
		http.NotFound(w, r)
		return
	}
	var ev struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&ev); err != nil || ev.Type == "" || len(ev.Data) == 0 {
		http.Error(w, `{"error":"an event needs a type and data"}`, http.StatusBadRequest)
		return
	}
	id := "evt_river_" + strconv.FormatInt(a.seq.Add(1), 10)
	body, err := json.Marshal(struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}{id, ev.Type, ev.Data})
	if err == nil {
		_, err = a.client.Insert(r.Context(), referenceArgs{URL: a.target, EventID: id, Body: string(body)}, nil)
	}
	if err != nil {
		http.Error(w, `{"error":"not stored"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = fmt.Fprintf(w, `{"id":%q}`+"\n", id)
}

// riverProcess is River alone, with riverAPI in front, in a process of its
// own.
type riverProcess struct {
	*child
	addr string
}

// startRiverProcess starts River alone in a process of its own on the
// stage's database, directly (never through -pgbouncer's pooler, as
// scenario 0's River), River's schema as it comes (restoreRiverStock), its
// jobs POSTing to target, and returns once it listens. It stops when the
// stage closes.
func (s *stage) startRiverProcess(ctx context.Context, target string) (*riverProcess, error) {
	if err := restoreRiverStock(ctx, s.pool()); err != nil {
		return nil, err
	}
	gc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	cfg := (&server.Config{MaxWorkers: s.e.cfg.MaxWorkers, DBMaxConns: s.e.cfg.DBMaxConns}).WithDefaults()
	spec, err := json.Marshal(&riverSpec{DatabaseURL: s.dbURL, Target: target, MaxWorkers: cfg.MaxWorkers, DBMaxConns: cfg.DBMaxConns, GCPercent: gc})
	if err != nil {
		return nil, err
	}
	c, err := startChild("River process", riverProcessEnv)
	if err != nil {
		return nil, err
	}
	p := &riverProcess{child: c}
	stop := func() { c.stop(stopTimeout + 5*time.Second) }
	if err := c.send(string(spec)); err != nil {
		stop()
		return nil, err
	}
	line, err := c.next(ctx, workerProcessStart)
	addr, found := strings.CutPrefix(line, "listening ")
	if err != nil || !found {
		stop()
		return nil, errors.Join(fmt.Errorf("the River process did not say where it listens within %s (said %q)", workerProcessStart, line), err)
	}
	p.addr = addr
	s.onClose(stop)
	s.progress("River process: process %d on %s (River alone, a minimal event API in front)", c.pid(), addr)
	return p, nil
}

// cpu is the process's user and system CPU so far.
func (p *riverProcess) cpu() (time.Duration, error) {
	return pidCPU(p.pid(), "the River process")
}
