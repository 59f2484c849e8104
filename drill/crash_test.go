package drill

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testwait"
)

// drillWorkerCrash sends events to a healthy receiver through an API
// process while the only worker process is killed with SIGKILL and
// restarted, several times. Afterwards every accepted event must have been
// received at least once (the receiver counts by Mono-Event-Id), and the
// duplicates must be no more than the jobs that were running at the kills:
// a delivery whose attempt was recorded is never sent again.
func drillWorkerCrash(t *testing.T) {
	var (
		events      = pick(2000, 20000)
		kills       = pick(2, 5)
		rate        = 1000 // events/s offered by the producer
		batch       = 100
		httpTimeout = 2 * time.Second
		// Recovery bound: a killed attempt's job is rescued once it has
		// been running JobTimeout + 10 s (HTTP timeout + 20 s), by a
		// rescuer that runs every 30 s on the elected leader, which a
		// killed leader keeps for its lease. Beyond this the drill calls
		// the events lost.
		recoveryLimit = 3 * time.Minute
	)

	dbURL := testdb.NewURL(t)
	db := pool(t, dbURL)
	key := encryptionKey(t)
	env := serveEnv(dbURL, key, "WEBHOOKD_HTTP_TIMEOUT="+httpTimeout.String(), "WEBHOOKD_RECONCILE_INTERVAL=10s")
	apiProc := startProc(t, "api", env, "serve", "--api")
	worker := startProc(t, "worker", env, "serve", "--worker")
	api := newAPI(apiProc.base)

	recv := newReceiver(t, 2*time.Millisecond)
	api.createWebhook(t, "acct_crash", recv.URL)

	// The producer offers rate events/s in batches while the kills happen.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		accepted []string
		prodErr  error
	)
	produced := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(produced)
		interval := time.Duration(batch) * time.Second / time.Duration(rate)
		for i := 0; i < events/batch; i++ {
			sleepUntil(start.Add(time.Duration(i) * interval)) // open-loop pacing, a batch every interval
			ids, err := api.enqueueBatch(ctx, "acct_crash", fmt.Sprintf("crash-%d", i), batch)
			mu.Lock()
			accepted = append(accepted, ids...)
			if err != nil && prodErr == nil {
				prodErr = err
			}
			mu.Unlock()
		}
	}()

	// Kill the worker at even intervals over the producer's run.
	type kill struct {
		at       time.Time
		received int
		inFlight []string // deliveries whose job was running at the kill
		fresh    int      // of which not already stuck from an earlier kill
		restart  time.Duration
	}
	var killsDone []kill
	stuck := map[string]bool{} // deliveries in flight at any kill so far
	runFor := time.Duration(events/rate) * time.Second
	for i := range kills {
		sleepUntil(start.Add(runFor * time.Duration(i+1) / time.Duration(kills+1))) // the kills are spread evenly over the run
		worker.kill(t)
		k := kill{at: time.Now(), received: recv.received()}
		rows, err := db.Query(ctx, `SELECT args->>'delivery_id' FROM river_job WHERE state = 'running' AND kind = 'webhookd.delivery'`)
		require.NoError(t, err)
		for rows.Next() {
			var id string
			require.NoError(t, rows.Scan(&id))
			k.inFlight = append(k.inFlight, id)
			if !stuck[id] {
				stuck[id] = true
				k.fresh++
			}
		}
		require.NoError(t, rows.Err())
		before := time.Now()
		worker = startProc(t, "worker", env, "serve", "--worker")
		k.restart = time.Since(before)
		killsDone = append(killsDone, k)
	}
	lastRestart := time.Now()
	<-produced
	require.NoError(t, prodErr, "the API refused or lost a batch")
	producedFor := time.Since(start)

	ok := recv.waitAll(accepted, recoveryLimit)
	recovered := time.Since(lastRestart)
	delivered, duplicated, missing := recv.tally(accepted)

	res := &Result{
		order:     1,
		Drill:     "Worker crash",
		Load:      fmt.Sprintf("%d events at %d/s through an API process, one worker process, receiver 2 ms per request", events, rate),
		Faults:    fmt.Sprintf("worker SIGKILLed %d times at even intervals, restarted at once", kills),
		BadInputs: "—", Accepted: len(accepted), Delivered: delivered, Duplicated: duplicated, Lost: len(missing),
		Rerun: "go test -count=1 -v -run TestDrill/WorkerCrash ./drill -args -drill.full",
	}
	inFlightTotal := len(stuck)
	for i, k := range killsDone {
		var worst time.Duration
		var unfinished int
		for _, id := range k.inFlight {
			var finished *time.Time
			require.NoError(t, db.QueryRow(ctx, `SELECT finished_at FROM deliveries WHERE id = $1`, id).Scan(&finished))
			if finished == nil {
				unfinished++
				continue
			}
			worst = max(worst, finished.Sub(k.at))
		}
		res.add(fmt.Sprintf("kill %d", i+1), "at %s, %d requests received so far, %d jobs running (%d newly in flight, the rest still stuck from earlier kills), restart %s, its in-flight deliveries finished %s after the kill (%d unfinished)",
			secs(k.at.Sub(start)), k.received, len(k.inFlight), k.fresh, secs(k.restart), secs(worst), unfinished)
	}
	res.add("duplicates / distinct deliveries in flight at the kills", "%d / %d", duplicated, inFlightTotal)
	res.add("producer ran", "%s", secs(producedFor))
	res.add("every event received, after the last restart", "%s", secs(recovered))
	res.add("recovery bound used", "%s (HTTP timeout %s: job timeout %s, rescue after %s, rescuer every 30 s)",
		secs(recoveryLimit), httpTimeout, httpTimeout+10*time.Second, httpTimeout+20*time.Second)
	record(t, res)

	require.True(t, ok, "%d of %d accepted events never arrived within %s (lost), e.g. %v", len(missing), len(accepted), recoveryLimit, missing[:min(5, len(missing))])
	require.Empty(t, missing)
	require.LessOrEqual(t, duplicated, inFlightTotal, "duplicates beyond what was in flight at the kills: a recorded delivery was sent again")

	// The database agrees: every event stored once, every delivery done.
	require.Equal(t, len(accepted), queryInt(t, db, `SELECT count(*) FROM events`))
	waitNoPending(t, db, time.Minute)
	require.Equal(t, len(accepted), queryInt(t, db, `SELECT count(*) FROM deliveries WHERE state = 'succeeded'`))
	require.True(t, apiProc.alive() && worker.alive(), "a process died")
}

// waitNoPending waits until no delivery is pending (a success is recorded
// just after the receiver answers) and fails naming the pending count.
func waitNoPending(t *testing.T, db *pgxpool.Pool, timeout time.Duration) {
	t.Helper()
	testwait.For(t, timeout, func() (bool, string) {
		n := queryInt(t, db, `SELECT count(*) FROM deliveries WHERE state = 'pending'`)
		return n == 0, fmt.Sprintf("%d deliveries still pending", n)
	})
}
