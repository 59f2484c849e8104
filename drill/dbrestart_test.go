package drill

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/pgcluster"
)

// drillDatabaseRestart runs an API process and a worker process on a
// PostgreSQL cluster the drill owns, under a steady stream of single-event
// enqueues, and restarts PostgreSQL (pg_ctl restart -m fast) in the middle.
// Both processes must recover on their own (same processes, no restart),
// every accepted event must arrive, and no delivery may be left pending.
func drillDatabaseRestart(t *testing.T) {
	var (
		rate          = pick(200, 300) // events/s offered
		runFor        = pick(8*time.Second, 40*time.Second)
		producers     = 8
		recoveryLimit = 2 * time.Minute
	)

	cluster, err := pgcluster.Start(context.Background(), &pgcluster.Config{Logf: t.Logf})
	require.NoError(t, err, "the database-restart drill needs the PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })

	dbURL := cluster.URL()
	key := encryptionKey(t)
	env := serveEnv(dbURL, key, "WEBHOOKD_HTTP_TIMEOUT=2s", "WEBHOOKD_RECONCILE_INTERVAL=10s")
	migrate := exec.Command(binary, "migrate")
	migrate.Env = env
	out, err := migrate.CombinedOutput()
	require.NoError(t, err, "webhookd migrate: %s", out)

	apiProc := startProc(t, "api", env, "serve", "--api")
	worker := startProc(t, "worker", env, "serve", "--worker")
	apiPID, workerPID := apiProc.cmd.Process.Pid, worker.cmd.Process.Pid
	api := newAPI(apiProc.base)
	db := pool(t, dbURL)

	recv := newReceiver(t, 0)
	api.createWebhook(t, "acct_dbrestart", recv.URL)

	// Producers: one event per request, each retried with its idempotency
	// key until the API accepts it (so accepted is exactly what was stored).
	ctx, cancel := context.WithTimeout(context.Background(), runFor+3*time.Minute)
	defer cancel()
	var (
		mu        sync.Mutex
		accepted  []string
		failures  int // requests refused or failed (5xx, connection errors)
		lastOK    = map[int]time.Time{}
		outages   []time.Duration // per producer: longest gap between two accepted requests
		latencies []time.Duration
		prodErr   error
	)
	start := time.Now()
	total := int(runFor.Seconds() * float64(rate))
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &apiClient{base: apiProc.base, client: &http.Client{Timeout: 10 * time.Second}}
			var longest time.Duration
			prev := time.Now()
			for i := p; i < total; i += producers {
				sleepUntil(start.Add(time.Duration(i) * time.Second / time.Duration(rate))) // open-loop pacing at rate per second
				ev := eventIn{AccountID: "acct_dbrestart", Type: "drill.event", IdempotencyKey: fmt.Sprintf("db-%d", i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
				var res struct {
					ID string `json:"id"`
				}
				var began time.Time
				err := retry(ctx, time.Minute, 100*time.Millisecond, func() (int, error) {
					began = time.Now()
					status, err := client.call(ctx, http.MethodPost, "/v1/events", ev, &res)
					if err != nil {
						mu.Lock()
						failures++
						mu.Unlock()
					}
					return status, err
				})
				if err != nil {
					keepFirst(&mu, &prodErr, fmt.Errorf("event %d: %w", i, err))
					return
				}
				mu.Lock()
				accepted = append(accepted, res.ID)
				latencies = append(latencies, time.Since(began))
				lastOK[p] = time.Now()
				mu.Unlock()
				longest = max(longest, time.Since(prev))
				prev = time.Now()
			}
			mu.Lock()
			outages = append(outages, longest)
			mu.Unlock()
		}()
	}

	// Restart PostgreSQL halfway through.
	sleepUntil(start.Add(runFor / 2)) // the restart comes halfway through the load
	receivedBefore := recv.received()
	restartAt := time.Now()
	restartTook := restartPostgres(t, dbURL)
	restartDone := time.Now()

	// How long until the API accepts again and the worker delivers again.
	apiBack, workerBack := time.Duration(-1), time.Duration(-1)
	sample := time.NewTicker(20 * time.Millisecond) // the recovery times are read every 20 ms
	defer sample.Stop()
	for waited := time.Now(); time.Since(waited) < recoveryLimit && (apiBack < 0 || workerBack < 0); <-sample.C {
		mu.Lock()
		for _, at := range lastOK {
			if at.After(restartDone) && apiBack < 0 {
				apiBack = at.Sub(restartAt)
			}
		}
		mu.Unlock()
		if workerBack < 0 && recv.received() > receivedBefore && recv.lastAt().After(restartDone) {
			workerBack = recv.lastAt().Sub(restartAt)
		}
	}

	wg.Wait()
	require.NoError(t, prodErr, "the API did not recover: an event was never accepted")
	ok := recv.waitAll(accepted, recoveryLimit)
	delivered, duplicated, missing := recv.tally(accepted)

	res := &Result{
		order:     2,
		Drill:     "Database restart",
		Load:      fmt.Sprintf("%d single-event enqueues at %d/s from %d clients, one API and one worker process", total, rate, producers),
		Faults:    "PostgreSQL restarted halfway (pg_ctl restart -m fast)",
		BadInputs: "—", Accepted: len(accepted), Delivered: delivered, Duplicated: duplicated, Lost: len(missing),
		Rerun: "go test -count=1 -v -run TestDrill/DatabaseRestart ./drill -args -drill.full",
	}
	sort.Slice(outages, func(i, j int) bool { return outages[i] > outages[j] })
	res.add("pg_ctl restart took", "%s", secs(restartTook))
	res.add("API accepting again", "%s after the restart began", secs(apiBack))
	res.add("worker delivering again", "%s after the restart began", secs(workerBack))
	res.add("failed enqueue requests during the restart (retried with the same key)", "%d", failures)
	if len(outages) > 0 {
		res.add("longest gap between two accepted enqueues of one client", "%s", secs(outages[0]))
	}
	res.add("enqueue latency p50 / p99 / max", "%s / %s / %s", ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99)), ms(percentile(latencies, 1)))
	res.add("processes restarted", "none (same PIDs %d, %d)", apiPID, workerPID)

	require.True(t, ok, "%d of %d accepted events never arrived within %s (lost), e.g. %v", len(missing), len(accepted), recoveryLimit, missing[:min(5, len(missing))])
	waitNoPending(t, db, recoveryLimit)
	var firstLate time.Duration
	require.NoError(t, db.QueryRow(ctx, `SELECT coalesce(max(a.started_at - d.created_at), '0') FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id WHERE a.number = 1`).Scan(&firstLate))
	res.add("slowest first attempt after enqueue", "%s", secs(firstLate))
	record(t, res)

	require.Equal(t, len(accepted), queryInt(t, db, `SELECT count(*) FROM events`))
	require.Equal(t, len(accepted), queryInt(t, db, `SELECT count(*) FROM deliveries WHERE state = 'succeeded'`))
	require.True(t, apiProc.alive() && worker.alive(), "a process exited")
	require.Equal(t, apiPID, apiProc.cmd.Process.Pid)
	require.Equal(t, workerPID, worker.cmd.Process.Pid)
	for _, p := range []*proc{apiProc, worker} {
		resp, err := http.Get(p.base + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s not ready after the restart", p.name)
	}
}

// restartPostgres restarts the cluster at superuserURL with pg_ctl restart
// -m fast (reusing the server's own options, postmaster.opts), as the
// owner of its data directory, and returns how long it took.
func restartPostgres(t *testing.T, superuserURL string) time.Duration {
	t.Helper()
	db := pool(t, superuserURL)
	var dataDir string
	require.NoError(t, db.QueryRow(context.Background(), `SHOW data_directory`).Scan(&dataDir))
	db.Close()

	pgCtl, err := exec.LookPath("pg_ctl")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
		require.NotEmpty(t, matches, "pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin: apt-get install postgresql")
		sort.Slice(matches, func(i, j int) bool { return versionLess(matches[i], matches[j]) })
		pgCtl = matches[len(matches)-1]
	}
	fi, err := os.Stat(dataDir)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)

	cmd := exec.Command(pgCtl, "-D", dataDir, "-l", filepath.Join(filepath.Dir(dataDir), "postgres.log"), "-m", "fast", "-w", "-t", "60", "restart")
	cmd.Dir = filepath.Dir(dataDir)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if os.Geteuid() == 0 && st.Uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: st.Uid, Gid: st.Gid}}
	}
	cmd.WaitDelay = 5 * time.Second // the postmaster keeps pg_ctl's output open
	began := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(began)
	require.NoError(t, err, "pg_ctl restart: %s", out)
	return took
}

// versionLess orders /usr/lib/postgresql/<v>/bin paths by version.
func versionLess(a, b string) bool {
	va, vb := filepath.Base(filepath.Dir(filepath.Dir(a))), filepath.Base(filepath.Dir(filepath.Dir(b)))
	if len(va) != len(vb) {
		return len(va) < len(vb)
	}
	return va < vb
}
