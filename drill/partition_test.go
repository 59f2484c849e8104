package drill

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/netns"
	"github.com/mono/webhookd/internal/pgcluster"
	"github.com/mono/webhookd/internal/testproc"
	"github.com/mono/webhookd/internal/testwait"
)

// The partition drills run one worker process inside a network namespace
// of their own (internal/netns) and cut it off by dropping its packets:
// from PostgreSQL (PartitionDatabase) or from the receivers
// (PartitionReceivers). They are full-size only (-drill.full): a 60 s
// partition does not fit CI's short run.

// partitionEnv is what both partition drills share: a throwaway
// PostgreSQL, reachable from the namespace through a forwarder on the
// host's end of the pair, and the namespace.
type partitionEnv struct {
	cluster *pgcluster.Cluster
	ns      *netns.Namespace
	fwd     *netns.Forwarder
	key     string
}

func newPartitionEnv(t *testing.T) *partitionEnv {
	t.Helper()
	if !*fullFlag {
		t.Skip("the partition drills run with -drill.full only (make drill): a 60 s partition does not fit CI's short run")
	}
	if err := netns.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx := context.Background()
	cluster, err := pgcluster.Start(ctx, &pgcluster.Config{Logf: t.Logf})
	require.NoError(t, err, "the partition drills need the PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })
	ns, err := netns.New(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ns.Close()) })
	fwd, err := netns.Forward(ns.HostIP+":0", fmt.Sprintf("127.0.0.1:%d", cluster.Port()))
	require.NoError(t, err)
	t.Cleanup(func() { fwd.Close() })
	t.Logf("namespace %s: host end %s, namespace end %s; PostgreSQL on 127.0.0.1:%d, forwarded from %s", ns.Name, ns.HostIP, ns.NSIP, cluster.Port(), fwd.Addr)

	e := &partitionEnv{cluster: cluster, ns: ns, fwd: fwd, key: encryptionKey(t)}
	migrate(t, e.env(cluster.URL()))
	return e
}

// env is serveEnv on databaseURL with the drills' settings.
func (e *partitionEnv) env(databaseURL string, extra ...string) []string {
	return serveEnv(databaseURL, e.key, append([]string{"WEBHOOKD_HTTP_TIMEOUT=2s", "WEBHOOKD_RECONCILE_INTERVAL=10s"}, extra...)...)
}

// nsURL is the database URL from inside the namespace.
func (e *partitionEnv) nsURL() string {
	return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable&connect_timeout=2", e.fwd.Addr)
}

// startInNamespace runs `webhookd serve --worker` inside the namespace,
// its API and metrics on the namespace's end of the pair, and waits (at
// most 60 s) for /healthz.
func (e *partitionEnv) startInNamespace(t *testing.T, name string, env []string) (p *proc, metrics string) {
	t.Helper()
	port := func() int {
		a := testproc.FreeAddr(t)
		_, p, _ := net.SplitHostPort(a)
		n, _ := strconv.Atoi(p)
		return n
	}
	addr := net.JoinHostPort(e.ns.NSIP, strconv.Itoa(port()))
	metricsAddr := net.JoinHostPort(e.ns.NSIP, strconv.Itoa(port()))
	p = &proc{name: name, out: &testproc.Buffer{Max: 256 << 10}, base: "http://" + addr, done: make(chan struct{})}
	// ip netns exec execs webhookd itself: the pid is webhookd's.
	p.cmd = e.ns.Command(binary, "serve", "--worker")
	p.cmd.Env = append(append([]string(nil), env...), "WEBHOOKD_ADDR="+addr, "WEBHOOKD_METRICS_ADDR="+metricsAddr)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, p.out.String())
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	testwait.For(t, 60*time.Second, func() (bool, string) {
		resp, err := client.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, ""
			}
		}
		require.True(t, p.alive(), "%s exited:\n%s", name, p.out.String())
		return false, fmt.Sprintf("%s not healthy:\n%s", name, p.out.String())
	})
	return p, "http://" + metricsAddr
}

// gauges scrapes a process's /metrics for the in-flight gauges:
// webhookd_attempts_in_flight and the sum of
// webhookd_db_connections_acquired.
func gauges(base string) (attempts, conns float64, err error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(base + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch {
		case name == "webhookd_attempts_in_flight":
			attempts, found = v, true
		case strings.HasPrefix(name, "webhookd_db_connections_acquired"):
			conns += v
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("no webhookd_attempts_in_flight on %s/metrics", base)
	}
	return attempts, conns, sc.Err()
}

// sourceReceiver is a receiver (counting by Mono-Event-Id) on addr that
// also remembers which address each request came from.
type sourceReceiver struct {
	*receiver

	smu   sync.Mutex
	froms map[string]map[string]bool // event id → source addresses
	last  map[string]time.Time       // source address → last request
}

func newSourceReceiver(t *testing.T, addr string, delay time.Duration) *sourceReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	r := &sourceReceiver{
		receiver: &receiver{URL: "http://" + ln.Addr().String() + "/hook", counts: map[string]int{}, first: map[string]time.Time{}, delay: delay},
		froms:    map[string]map[string]bool{}, last: map[string]time.Time{},
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // closed at cleanup
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *sourceReceiver) port() int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(r.URL, "/hook"), "http://"))
	n, _ := strconv.Atoi(p)
	return n
}

func (r *sourceReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	id := req.Header.Get("Mono-Event-Id")
	src, _, _ := net.SplitHostPort(req.RemoteAddr)
	r.smu.Lock()
	if r.froms[id] == nil {
		r.froms[id] = map[string]bool{}
	}
	r.froms[id][src] = true
	r.last[src] = time.Now()
	r.smu.Unlock()
	r.receiver.ServeHTTP(w, req)
}

// lastFrom is when the last request from src arrived.
func (r *sourceReceiver) lastFrom(src string) time.Time {
	r.smu.Lock()
	defer r.smu.Unlock()
	return r.last[src]
}

// produce enqueues single events of account at rate until stop or total
// events, each retried with its idempotency key until accepted; it
// returns the accepted ids (call the returned func after stop).
func produce(t *testing.T, base, account, prefix string, rate, total int, stop <-chan struct{}) func() []string {
	t.Helper()
	var (
		mu       sync.Mutex
		accepted []string
		prodErr  error
		wg       sync.WaitGroup
	)
	const producers = 2
	start := time.Now()
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &apiClient{base: base, client: &http.Client{Timeout: 10 * time.Second}}
			for i := p; i < total; i += producers {
				select {
				case <-stop:
					return
				case <-time.After(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate)))):
				}
				ev := eventIn{AccountID: account, Type: "drill.event", IdempotencyKey: fmt.Sprintf("%s-%d", prefix, i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
				var res struct {
					ID string `json:"id"`
				}
				err := retry(context.Background(), time.Minute, 200*time.Millisecond, func() (int, error) {
					return client.call(context.Background(), http.MethodPost, "/v1/events", ev, &res)
				})
				if err != nil {
					keepFirst(&mu, &prodErr, fmt.Errorf("event %d: %w", i, err))
					return
				}
				mu.Lock()
				accepted = append(accepted, res.ID)
				mu.Unlock()
			}
		}()
	}
	return func() []string {
		wg.Wait()
		require.NoError(t, prodErr)
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), accepted...)
	}
}

// drillPartitionDatabase: two worker processes, one of them in the
// namespace, under a steady stream of events; the namespace's worker is
// cut from PostgreSQL for 60 s (its packets to and from the database
// dropped, the receivers still reachable), then healed. It must stop
// starting attempts, its jobs must be rescued by the other worker,
// nothing may be recorded twice, and it must deliver again after the
// heal without a restart.
func drillPartitionDatabase(t *testing.T) {
	e := newPartitionEnv(t)
	var (
		rate      = 50
		cutAfter  = 15 * time.Second
		cutFor    = 60 * time.Second
		loadFor   = cutAfter + cutFor + 15*time.Second
		recovery  = 3 * time.Minute
		receiverD = 200 * time.Millisecond // about 10 attempts in flight
	)
	apiProc := startProc(t, "api", e.env(e.cluster.URL()), "serve", "--api")
	hostWorker := startProc(t, "worker-host", e.env(e.cluster.URL()), "serve", "--worker")
	nsWorker, nsMetrics := e.startInNamespace(t, "worker-ns", e.env(e.nsURL()))
	nsPID := nsWorker.cmd.Process.Pid
	_, idleConns, err := gauges(nsMetrics)
	require.NoError(t, err)
	api := newAPI(apiProc.base)
	db := pool(t, e.cluster.URL())

	recv := newSourceReceiver(t, e.ns.HostIP+":0", receiverD)
	api.createWebhook(t, "acct_partition_db", recv.URL)

	stop := make(chan struct{})
	start := time.Now()
	results := produce(t, apiProc.base, "acct_partition_db", "pdb", rate, rate*int(loadFor/time.Second), stop)

	sleepUntil(start.Add(cutAfter)) // the cut comes cutAfter into the load
	fromNSBefore := recv.lastFrom(e.ns.NSIP)
	require.False(t, fromNSBefore.IsZero(), "the namespace's worker delivered nothing before the cut")
	running := queryInt(t, db, `SELECT count(*) FROM river_job WHERE state = 'running'`)
	cutAt := time.Now()
	require.NoError(t, e.ns.Partition(false, e.fwd.Port()))
	t.Logf("cut the namespace's worker from PostgreSQL; %d jobs running", running)

	// While cut: when did the namespace's worker last start an attempt,
	// and did everything accepted before the cut arrive anyway?
	sleepUntil(cutAt.Add(cutFor)) // the cut lasts cutFor
	lastNS := recv.lastFrom(e.ns.NSIP)
	healAt := time.Now()
	require.NoError(t, e.ns.Heal())

	// Back: the namespace's worker delivers again, same process.
	var rejoin time.Duration = -1
	sample := time.NewTicker(100 * time.Millisecond) // the rejoin time is read every 100 ms
	defer sample.Stop()
	for deadline := time.Now().Add(recovery); time.Now().Before(deadline); <-sample.C {
		if at := recv.lastFrom(e.ns.NSIP); at.After(healAt) {
			rejoin = at.Sub(healAt)
			break
		}
	}
	sleepUntil(start.Add(loadFor)) // the load runs for loadFor
	close(stop)
	accepted := results()

	ok := recv.waitAll(accepted, recovery)
	delivered, duplicated, missing := recv.tally(accepted)
	waitNoPending(t, db, recovery)

	// Every event: sent from the namespace, the host, or both.
	recv.smu.Lock()
	both, fromNS := 0, 0
	for _, id := range accepted {
		if recv.froms[id][e.ns.NSIP] {
			fromNS++
			if len(recv.froms[id]) > 1 {
				both++
			}
		}
	}
	recv.smu.Unlock()
	// Jobs run by both workers: the cut worker's, rescued by the other.
	rescued := queryInt(t, db, `SELECT count(*) FROM river_job WHERE cardinality(ARRAY(SELECT DISTINCT unnest(attempted_by))) > 1`)
	var lastPreCut time.Time
	require.NoError(t, db.QueryRow(context.Background(), `
		SELECT coalesce(max(a.started_at), now()) FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.created_at < $1 AND a.status_code BETWEEN 200 AND 299`, cutAt).Scan(&lastPreCut))
	twice := queryInt(t, db, `SELECT count(*) FROM (SELECT delivery_id, generation, number FROM attempt_log WHERE counted GROUP BY 1, 2, 3 HAVING count(*) > 1) x`)
	succeededTwice := queryInt(t, db, `SELECT count(*) FROM (SELECT delivery_id FROM attempt_log WHERE status_code BETWEEN 200 AND 299 GROUP BY 1 HAVING count(*) > 1) x`)
	var attemptsInFlight, conns float64
	var gaugeErr error
	testwait.Until(10*time.Second, func() bool {
		attemptsInFlight, conns, gaugeErr = gauges(nsMetrics)
		return gaugeErr != nil || (attemptsInFlight == 0 && conns <= idleConns)
	})

	res := &Result{
		order:     7,
		Drill:     "Partition: worker cut from PostgreSQL",
		Load:      fmt.Sprintf("%d single-event enqueues at %d/s through an API process; two worker processes, one in a network namespace; receiver %s per request", len(accepted), rate, receiverD),
		Faults:    fmt.Sprintf("the namespace's packets to and from PostgreSQL dropped (iptables) for %s, %s into the load, then healed", cutFor, cutAfter),
		BadInputs: "—", Accepted: len(accepted), Delivered: delivered, Duplicated: duplicated, Lost: len(missing),
		Rerun: "go test -count=1 -v -run TestDrill/PartitionDatabase ./drill -args -drill.full",
	}
	res.add("jobs running (both workers) at the cut", "%d", running)
	res.add("cut worker's last attempt started", "%s after the cut", secs(lastNS.Sub(cutAt)))
	res.add("cut worker's first attempt after the heal", "%s after the heal (same process, pid %d)", secs(rejoin), nsPID)
	res.add("events the cut worker sent / also sent by the other worker", "%d / %d", fromNS, both)
	res.add("jobs run by both workers (rescued from the cut worker)", "%d", rescued)
	res.add("last success of an event accepted before the cut", "%s after the cut", secs(lastPreCut.Sub(cutAt)))
	res.add("duplicates / bound (jobs running at the cut)", "%d / %d", duplicated, running)
	res.add("attempts recorded twice (same delivery, generation and number) / deliveries with two 2xx attempts", "%d / %d", twice, succeededTwice)
	res.add("cut worker's in-flight gauges at the end (attempts, database connections)", "%.0f, %.0f (idle before the load: 0, %.0f)", attemptsInFlight, conns, idleConns)
	record(t, res)

	require.True(t, ok, "%d of %d accepted events never arrived (lost), e.g. %v", len(missing), len(accepted), missing[:min(5, len(missing))])
	require.Zero(t, twice, "an attempt was recorded twice")
	require.Zero(t, succeededTwice, "a delivery recorded two successes")
	require.LessOrEqual(t, duplicated, running, "more duplicates than jobs in flight at the cut")
	require.GreaterOrEqual(t, rejoin, time.Duration(0), "the cut worker never delivered again after the heal")
	require.Equal(t, nsPID, nsWorker.cmd.Process.Pid)
	require.True(t, nsWorker.alive() && hostWorker.alive() && apiProc.alive(), "a process exited")
	require.NoError(t, gaugeErr)
	require.Zero(t, attemptsInFlight, "an attempt slot leaked")
	require.LessOrEqual(t, conns, idleConns, "a database connection leaked")
}

// drillPartitionReceivers: one worker process, in the namespace, cut from
// two receivers (not from PostgreSQL) for 20 s: one receiver's packets
// dropped (attempts time out), the other's connections reset (refused).
// Attempts must fail with those error kinds and be retried on schedule
// (retry schedule ×0.01), every event must arrive after the heal, and
// the worker's in-flight gauges must return to zero.
func drillPartitionReceivers(t *testing.T) {
	e := newPartitionEnv(t)
	const (
		scale    = 0.01
		perHook  = 15 // few enough that the per-webhook cap never makes them wait
		rate     = 4
		cutFor   = 20 * time.Second
		recovery = 3 * time.Minute
	)
	apiProc := startProc(t, "api", e.env(e.cluster.URL()), "serve", "--api")
	nsWorker, nsMetrics := e.startInNamespace(t, "worker-ns", e.env(e.nsURL(), "WEBHOOKD_RETRY_SCALE=0.01"))
	api := newAPI(apiProc.base)
	db := pool(t, e.cluster.URL())

	dropped := newSourceReceiver(t, e.ns.HostIP+":0", 0)
	reset := newSourceReceiver(t, e.ns.HostIP+":0", 0)
	api.createWebhook(t, "acct_partition_drop", dropped.URL)
	api.createWebhook(t, "acct_partition_reset", reset.URL)

	_, idleConns, err := gauges(nsMetrics)
	require.NoError(t, err)
	require.NoError(t, e.ns.Partition(false, dropped.port()))
	require.NoError(t, e.ns.Partition(true, reset.port()))
	cutAt := time.Now()
	stop := make(chan struct{})
	dropIDs := produce(t, apiProc.base, "acct_partition_drop", "pdrop", rate/2, perHook, stop)
	resetIDs := produce(t, apiProc.base, "acct_partition_reset", "preset", rate/2, perHook, stop)

	// Mid-cut: attempts in flight (the dropped ones wait out the 2 s
	// timeout).
	var peakAttempts, peakConns float64
	sample := time.NewTicker(250 * time.Millisecond) // the gauges are read every 250 ms
	defer sample.Stop()
	for ; time.Since(cutAt) < cutFor; <-sample.C {
		a, c, err := gauges(nsMetrics)
		require.NoError(t, err)
		peakAttempts, peakConns = max(peakAttempts, a), max(peakConns, c)
	}
	require.NoError(t, e.ns.Heal())
	healAt := time.Now()
	close(stop)
	acceptedDrop, acceptedReset := dropIDs(), resetIDs()

	okDrop := dropped.waitAll(acceptedDrop, recovery)
	okReset := reset.waitAll(acceptedReset, recovery)
	allAt := time.Now()
	waitNoPending(t, db, recovery)
	dDel, dDup, dMissing := dropped.tally(acceptedDrop)
	rDel, rDup, rMissing := reset.tally(acceptedReset)

	// The gauges of an idle worker: zero, within a few seconds.
	var endAttempts, endConns float64
	testwait.Until(10*time.Second, func() bool {
		a, c, err := gauges(nsMetrics)
		require.NoError(t, err)
		endAttempts, endConns = a, c
		return a == 0 && c <= idleConns
	})

	kinds := func(account string) string {
		rows, err := db.Query(context.Background(), `
			SELECT coalesce(a.error_kind, 'http ' || a.status_code::text), count(*)
			FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id JOIN webhooks w ON w.id = d.webhook_id
			WHERE w.account_id = $1 GROUP BY 1 ORDER BY 2 DESC`, account)
		require.NoError(t, err)
		counts := map[string]int{}
		for rows.Next() {
			var k string
			var n int
			require.NoError(t, rows.Scan(&k, &n))
			counts[k] = n
		}
		require.NoError(t, rows.Err())
		return summary(counts)
	}
	// On schedule: never before scheduled_at, and scheduled_at the
	// scaled delay after the end of the attempt before.
	var early, maxLate, maxOff time.Duration
	var lates []time.Duration
	rows, err := db.Query(context.Background(), `
		SELECT a.started_at - a.scheduled_at,
		       a.scheduled_at - (p.started_at + make_interval(secs => p.duration_us / 1e6)), a.number
		FROM attempt_log a
		JOIN attempt_log p ON p.delivery_id = a.delivery_id AND p.generation = a.generation AND p.number = a.number - 1 AND p.counted
		WHERE a.counted`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var late, gap time.Duration
		var number int
		require.NoError(t, rows.Scan(&late, &gap, &number))
		n++
		if late < 0 {
			early = min(early, late)
		}
		maxLate = max(maxLate, late)
		lates = append(lates, late)
		want := time.Duration(float64(30*time.Second) * float64(int(1)<<(number-1)-1) * scale)
		off := gap - want
		if off < 0 {
			off = -off
		}
		maxOff = max(maxOff, off)
	}
	require.NoError(t, rows.Err())

	res := &Result{
		order:     8,
		Drill:     "Partition: worker cut from receivers",
		Load:      fmt.Sprintf("%d events to two webhooks at %d/s while cut, one worker process in a network namespace; HTTP timeout 2 s, retry schedule ×%g", len(acceptedDrop)+len(acceptedReset), rate, scale),
		Faults:    fmt.Sprintf("for %s: one receiver's packets dropped, the other's connections reset (iptables in the namespace); PostgreSQL reachable", cutFor),
		BadInputs: "—", Accepted: len(acceptedDrop) + len(acceptedReset), Delivered: dDel + rDel, Duplicated: dDup + rDup, Lost: len(dMissing) + len(rMissing),
		Rerun: "go test -count=1 -v -run TestDrill/PartitionReceivers ./drill -args -drill.full",
	}
	res.add("attempts to the dropped receiver, by error kind", "%s", kinds("acct_partition_drop"))
	res.add("attempts to the reset receiver, by error kind", "%s", kinds("acct_partition_reset"))
	res.add("retries checked / started before scheduled_at", "%d / %s", n, ms(-early))
	res.add("retry start − scheduled_at p50 / p99 / max", "%s / %s / %s", ms(percentile(lates, 0.5)), ms(percentile(lates, 0.99)), ms(maxLate))
	res.add("largest deviation of scheduled_at from the previous attempt's end + scaled delay", "%s", ms(maxOff))
	res.add("heal → every event delivered", "%s", secs(allAt.Sub(healAt)))
	res.add("worker in-flight gauges while cut, peak (attempts, database connections)", "%.0f, %.0f", peakAttempts, peakConns)
	res.add("worker in-flight gauges at the end (attempts, database connections)", "%.0f, %.0f (idle before the cut: 0, %.0f)", endAttempts, endConns, idleConns)
	record(t, res)

	require.True(t, okDrop && okReset, "accepted events never arrived (lost): %v %v", dMissing[:min(5, len(dMissing))], rMissing[:min(5, len(rMissing))])
	require.Zero(t, early, "an attempt started before it was due")
	require.Less(t, maxOff, time.Second, "a retry was scheduled off the schedule")
	require.Zero(t, endAttempts, "an attempt slot leaked")
	require.LessOrEqual(t, endConns, idleConns, "a database connection leaked")
	require.True(t, nsWorker.alive() && apiProc.alive(), "a process exited")
}
