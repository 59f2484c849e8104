package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
)

// referenceFetchCooldown is River's fetch cooldown in the reference, as in
// the figure issue 4 quotes for it.
const referenceFetchCooldown = time.Millisecond

// riverStock undoes on a reference's database what webhookd's migrations
// changed in River's own schema, so that River alone runs as it comes:
// migration 10 dropped three of River's indexes on river_job (River's own
// migration 2 makes them), and migration 24 gave river_job fillfactor 50
// (River leaves PostgreSQL's 100). The reference's database is its own, so
// nothing of webhookd's is touched.
var riverStock = []string{
	`CREATE INDEX IF NOT EXISTS river_job_args_index ON river_job USING GIN (args)`,
	`CREATE INDEX IF NOT EXISTS river_job_metadata_index ON river_job USING GIN (metadata)`,
	`CREATE INDEX IF NOT EXISTS river_job_kind ON river_job (kind)`,
	`ALTER TABLE river_job RESET (fillfactor)`,
}

// restoreRiverStock runs riverStock on db.
func restoreRiverStock(ctx context.Context, db store.DB) error {
	for _, stmt := range riverStock {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("error restoring River's own schema (%s): %w", stmt, err)
		}
	}
	return nil
}

// referenceArgs is the reference's job: everything the POST needs is in it.
type referenceArgs struct {
	URL     string `json:"url"`
	EventID string `json:"event_id"`
	Body    string `json:"body"`
}

func (referenceArgs) Kind() string { return "bench.reference" }

// referenceWorker signs the body (HMAC-SHA256 over "t.body", as webhookd
// does) and POSTs it; anything but a 2xx fails the job.
type referenceWorker struct {
	river.WorkerDefaults[referenceArgs]
	client *http.Client
	secret []byte
}

func (w *referenceWorker) Work(ctx context.Context, job *river.Job[referenceArgs]) error {
	t := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, w.secret)
	mac.Write([]byte(t))
	mac.Write([]byte{'.'})
	mac.Write([]byte(job.Args.Body))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, job.Args.URL, strings.NewReader(job.Args.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Mono-Event-Id", job.Args.EventID)
	req.Header.Set("Mono-Signature", "t="+t+",v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// newReferenceClient is River alone as scenario 0 runs it, not started:
// the reference worker (sign the body, POST it) with maxWorkers workers,
// River's fetch cooldown at 1 ms, its POSTs through transport.
func newReferenceClient(pool *pgxpool.Pool, maxWorkers int) (*river.Client[pgx.Tx], *http.Transport, error) {
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: maxWorkers}
	workers := river.NewWorkers()
	river.AddWorker(workers, &referenceWorker{client: &http.Client{Transport: transport, Timeout: 10 * time.Second}, secret: []byte("whsec_bench")})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}},
		Workers:       workers,
		FetchCooldown: referenceFetchCooldown,
		Logger:        nil,
	})
	if err != nil {
		return nil, nil, err
	}
	return client, transport, nil
}

// reference is scenario 0: River alone, without webhookd, on this machine:
// cfg.Backlog jobs, each signing its ~1 KB body and POSTing it to the same
// receiver as scenario 1, with River's fetch cooldown at 1 ms and webhookd's
// MaxWorkers. It is the figure issue 4 quotes for its own machine, measured
// here, so that the other rows can be read against what this machine does.
func (e *env) reference(ctx context.Context) (*Throughput, error) {
	s, recv, target, err := e.newStageWithReceiver(ctx, ScenarioReference, 1, false, "")
	if err != nil {
		return nil, err
	}
	defer s.close()
	client, transport, err := newReferenceClient(s.pool(), (&server.Config{MaxWorkers: e.cfg.MaxWorkers}).WithDefaults().MaxWorkers)
	if err != nil {
		return nil, err
	}
	defer transport.CloseIdleConnections()

	// River as it comes (see riverStock).
	if err := restoreRiverStock(ctx, s.pool()); err != nil {
		return nil, err
	}

	total := e.cfg.Backlog
	start := time.Now()
	pad := strings.Repeat("x", 900)
	for done := 0; done < total; {
		if time.Since(start) > e.cfg.Timeout {
			return nil, fmt.Errorf("%w: inserting the jobs: %d of %d inserted after %s", errBound, done, total, e.cfg.Timeout)
		}
		params := make([]river.InsertManyParams, min(1000, total-done))
		for i := range params {
			id := fmt.Sprintf("ref_%d", done+i)
			params[i] = river.InsertManyParams{Args: referenceArgs{URL: target, EventID: id, Body: fmt.Sprintf(`{"id":%q,"pad":"%s"}`, id, pad)}}
		}
		if _, err := client.InsertManyFast(ctx, params); err != nil {
			return nil, fmt.Errorf("error inserting the jobs: %w", err)
		}
		done += len(params)
	}
	s.progress("inserted %s jobs in %s", count(total), time.Since(start).Round(time.Millisecond))

	started := false
	defer func() {
		if !started {
			return
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		_ = client.Stop(stopCtx)
	}()
	// River's process is this one: its CPU, and its database's backends',
	// from River's start to the last job completed (beside scenario 1's
	// worker process and its backends).
	benchCPU := func() (time.Duration, error) { return pidCPU(os.Getpid(), "the bench process (River's)") }
	var elapsed time.Duration
	cpu, backends, note, err := e.cpuOver(ctx, s.dbName, benchCPU, func() error {
		start := time.Now()
		deadline := start.Add(e.cfg.Timeout)
		if err := client.Start(ctx); err != nil {
			return err
		}
		started = true
		s.progress("River started: working %s jobs", count(total))
		if err := s.waitAnswered(ctx, recv, total, deadline); err != nil {
			return err
		}
		err := s.waitFor(ctx, "every job to be completed", time.Until(deadline), 5*time.Millisecond, func() (bool, string, error) {
			var left int
			err := s.pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND state <> 'completed'`, referenceArgs{}.Kind()).Scan(&left)
			return left == 0, fmt.Sprintf("%s not completed", count(left)), err
		})
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &Throughput{Deliveries: total, Elapsed: elapsed, ProcessCPU: &cpu, Backends: backends, CPUNote: note}
	if err := recv.refresh(); err != nil {
		return nil, err
	}
	if got := recv.requests.Load(); got != int64(total) {
		return nil, fmt.Errorf("the receiver saw %d requests for %d jobs", got, total)
	}
	s.progress("%s jobs in %.2f s: %s/s; River's process CPU per job %s ms, its database's backends %s ms", count(total), out.Elapsed.Seconds(), count(int(out.PerSecond())), out.perJob(out.ProcessCPU), out.perJob(out.Backends))
	return out, nil
}
