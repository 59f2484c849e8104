package drill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/hacluster"
)

// drillFailover runs webhookd on a Patroni cluster (internal/hacluster:
// etcd, two PostgreSQL nodes in synchronous mode, HAProxy) under a steady
// stream of single-event enqueues, kills the leader's machine (Patroni and
// PostgreSQL, SIGKILL), lets the standby be promoted, restarts the old
// leader so that it rejoins as a standby, and switches back with
// patronictl. Twice: webhookd through HAProxy, and webhookd with a
// multi-host DATABASE_URL (target_session_attrs=read-write). Every event
// answered 2xx must be delivered; producers may see 503s and timeouts,
// never a 500.
func drillFailover(t *testing.T) {
	if missing := hacluster.Missing(); len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the failover drill needs %v: .ci/install-ha-tools.sh installs them", missing)
		}
		t.Skipf("the failover drill needs %v: apt-get install etcd-server patroni python3-etcd haproxy", missing)
	}
	routes := []string{"HAProxy", "MultiHost"}
	if !*fullFlag {
		routes = routes[:1] // CI: one route, fewer events
	}
	for i, route := range routes {
		t.Run(route, func(t *testing.T) { failoverRun(t, route, 5+i) })
	}
}

// failoverOutcome is what one enqueue request got.
type failoverOutcome struct {
	began, ended time.Time
	status       int    // 0: no answer
	code         string // the error code of a non-2xx answer
	timeout      bool
	id           string // of a 2xx
}

func failoverRun(t *testing.T, route string, order int) {
	var (
		rate      = pick(40, 100) // events/s offered
		producers = 4
		maxEvents = pick(2000, 8000) // a bound whatever happens
		tail      = pick(3*time.Second, 10*time.Second)
		recovery  = 3 * time.Minute
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	cluster, err := hacluster.Start(ctx, &hacluster.Config{Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(cluster.List(context.Background()))
			t.Log(cluster.Logs())
		}
		require.NoError(t, cluster.Stop())
	})
	ttl := time.Duration(hacluster.TTLDefault) * time.Second

	dbURL := cluster.HAProxyURL()
	if route == "MultiHost" {
		dbURL = cluster.MultiHostURL()
	}
	key := encryptionKey(t)
	env := serveEnv(dbURL, key, "WEBHOOKD_HTTP_TIMEOUT=2s", "WEBHOOKD_RECONCILE_INTERVAL=10s")
	migrate(t, env)

	apiProc := startProc(t, "api", env, "serve", "--api")
	worker := startProc(t, "worker", env, "serve", "--worker")
	api := newAPI(apiProc.base)
	recv := newReceiver(t, 0)
	api.createWebhook(t, "acct_failover", recv.URL)

	// Producers: one event per request, each retried with its idempotency
	// key (after 200 ms) until it is accepted; every answer is recorded.
	var (
		mu       sync.Mutex
		outcomes []failoverOutcome
		prodErr  error
		stop     = make(chan struct{})
	)
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &apiClient{base: apiProc.base, client: &http.Client{Timeout: 5 * time.Second}}
			for i := p; i < maxEvents; i += producers {
				if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
					select {
					case <-stop:
						return
					case <-time.After(wait):
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				ev := eventIn{AccountID: "acct_failover", Type: "drill.event", IdempotencyKey: fmt.Sprintf("fo-%d", i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
				err := retry(ctx, 90*time.Second, 200*time.Millisecond, func() (int, error) {
					var res struct {
						ID string `json:"id"`
					}
					o := failoverOutcome{began: time.Now()}
					status, err := client.call(ctx, http.MethodPost, "/v1/events", ev, &res)
					o.ended, o.status = time.Now(), status
					if err == nil {
						o.id = res.ID
					} else {
						o.timeout = isTimeout(err) || errors.Is(err, context.DeadlineExceeded)
						if status != 0 {
							o.code = errorCode(err)
						}
					}
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
					return status, err
				})
				if err != nil {
					keepFirst(&mu, &prodErr, fmt.Errorf("event %d: %w", i, err))
					return
				}
			}
		}()
	}

	// The leader's machine dies a few seconds into the load.
	sleepUntil(start.Add(pick(3*time.Second, 10*time.Second))) // the kill comes a few seconds into the load
	first := cluster.Leader(ctx)
	require.Equal(t, "node1", first)
	second := cluster.Other(first).Name
	// Times count from the moment both processes are gone: a request sent
	// while Kill was at work may still have been committed (and
	// replicated) by the dying leader.
	require.NoError(t, cluster.Kill(first))
	killAt := time.Now()
	promotedAt, err := cluster.WaitLeader(ctx, second)
	require.NoError(t, err)
	t.Logf("%s promoted %s after the kill", second, promotedAt.Sub(killAt))

	// The old leader's machine comes back: its Patroni rejoins it as a
	// standby (pg_rewind if it must); then a planned switchover back.
	sleepUntil(promotedAt.Add(pick(2*time.Second, 5*time.Second))) // the load runs on the new leader a while first
	restartAt := time.Now()
	require.NoError(t, cluster.StartNode(first))
	require.NoError(t, cluster.WaitSyncStandby(ctx, first))
	rejoinedAt := time.Now()
	sleepUntil(rejoinedAt.Add(pick(2*time.Second, 5*time.Second))) // the load runs with the rejoined standby a while first
	switchAt := time.Now()
	require.NoError(t, cluster.Switchover(ctx, second, first))
	switchedAt := time.Now()
	sleepUntil(switchedAt.Add(tail)) // the load goes on a while after the switchover
	close(stop)
	wg.Wait()
	producedFor := time.Since(start)
	require.NoError(t, prodErr, "the API did not recover: an event was never accepted")

	// Tally what producers saw.
	var accepted []string
	seen := map[string]bool{}
	saw := map[string]int{}
	for _, o := range outcomes {
		switch {
		case o.id != "":
			if !seen[o.id] {
				seen[o.id] = true
				accepted = append(accepted, o.id)
			}
			saw[fmt.Sprintf("%d", o.status)]++
		case o.status != 0:
			saw[fmt.Sprintf("%d %s", o.status, o.code)]++
		case o.timeout:
			saw["timeout (5 s)"]++
		default:
			saw["connection error"]++
		}
	}

	ok := recv.waitAll(accepted, recovery)
	delivered, duplicated, missing := recv.tally(accepted)

	// Recovery after each event: the first 2xx of a request sent after
	// it, and the first arrival of an event accepted after it.
	apiBack := func(after time.Time) time.Duration {
		best := time.Duration(-1)
		for _, o := range outcomes {
			if o.id != "" && o.began.After(after) && (best < 0 || o.ended.Sub(after) < best) {
				best = o.ended.Sub(after)
			}
		}
		return best
	}
	deliveredBack := func(after time.Time) time.Duration {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		best := time.Duration(-1)
		for _, o := range outcomes {
			if o.id == "" || !o.began.After(after) {
				continue
			}
			if at, ok := recv.first[o.id]; ok && (best < 0 || at.Sub(after) < best) {
				best = at.Sub(after)
			}
		}
		return best
	}
	// longestPause is the longest time without a 2xx answer between from
	// and to.
	longestPause := func(from, to time.Time) time.Duration {
		var ends []time.Time
		for _, o := range outcomes {
			if o.id != "" && o.ended.After(from) && o.ended.Before(to) {
				ends = append(ends, o.ended)
			}
		}
		sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })
		longest, prev := time.Duration(0), from
		for _, at := range append(ends, to) {
			longest = max(longest, at.Sub(prev))
			prev = at
		}
		return longest
	}
	window := func(from, to time.Time) string {
		counts := map[string]int{}
		for _, o := range outcomes {
			if o.ended.Before(from) || o.began.After(to) {
				continue
			}
			switch {
			case o.id != "":
				counts[fmt.Sprintf("%d", o.status)]++
			case o.status != 0:
				counts[fmt.Sprintf("%d %s", o.status, o.code)]++
			case o.timeout:
				counts["timeout"]++
			default:
				counts["connection error"]++
			}
		}
		return summary(counts)
	}

	routeName := map[string]string{"HAProxy": "through HAProxy", "MultiHost": "multi-host DATABASE_URL"}[route]
	res := &Result{
		order:     order,
		Drill:     "Failover (" + routeName + ")",
		Load:      fmt.Sprintf("%d single-event enqueues at %d/s from %d clients, one API and one worker process", len(accepted), rate, producers),
		Faults:    "leader's Patroni and PostgreSQL SIGKILLed; standby promoted; old leader rejoined; patronictl switchover back",
		BadInputs: "—", Accepted: len(accepted), Delivered: delivered, Duplicated: duplicated, Lost: len(missing),
		Rerun: "go test -count=1 -v -run TestDrill/Failover/" + route + " ./drill -args -drill.full",
	}
	res.add("Patroni", "ttl %s, loop_wait %d s, retry_timeout %d s, synchronous_mode on", ttl, hacluster.LoopWaitDefault, hacluster.RetryTimeoutDefault)
	res.add("kill → standby promoted (Patroni /primary 200)", "%s", secs(promotedAt.Sub(killAt)))
	res.add("kill → API accepting again", "%s", secs(apiBack(killAt)))
	res.add("kill → deliveries resuming (first arrival of an event accepted after the kill)", "%s (target: under ttl + 15 s = %s)", secs(deliveredBack(killAt)), secs(ttl+15*time.Second))
	res.add("answers producers received, kill → API accepting", "%s", window(killAt, killAt.Add(apiBack(killAt))))
	res.add("old leader restarted → synchronous standby again", "%s", secs(rejoinedAt.Sub(restartAt)))
	res.add("switchover (patronictl) → new leader", "%s", secs(switchedAt.Sub(switchAt)))
	res.add("longest pause in 2xx answers, switchover start → its end + 2 s", "%s", secs(longestPause(switchAt, switchedAt.Add(2*time.Second))))
	res.add("switchover end → deliveries resuming", "%s", secs(deliveredBack(switchedAt)))
	res.add("answers producers received, switchover start → its end + 2 s", "%s", window(switchAt, switchedAt.Add(2*time.Second)))
	res.add("answers producers received, whole run", "%s (over %s)", summary(saw), secs(producedFor))
	record(t, res)

	require.Zero(t, saw["500 internal_error"], "a producer got a 500 while the database failed over")
	for k := range saw {
		require.False(t, strings.HasPrefix(k, "500"), "a producer got %s", k)
	}
	require.True(t, ok, "%d of %d accepted events never arrived within %s (lost), e.g. %v", len(missing), len(accepted), recovery, missing[:min(5, len(missing))])
	db := pool(t, dbURL)
	waitNoPending(t, db, recovery)
	require.Equal(t, len(accepted), queryInt(t, db, `SELECT count(*) FROM events`), "events stored = events accepted")
	require.True(t, apiProc.alive() && worker.alive(), "a process exited")
}

// errorCode is the API error code in a call's error text ("…: 503
// {"error":{"code":"database_unavailable",…").
func errorCode(err error) string {
	s := err.Error()
	i := strings.Index(s, `"code":"`)
	if i < 0 {
		return "(no code)"
	}
	s = s[i+len(`"code":"`):]
	code, _, _ := strings.Cut(s, `"`)
	return code
}

// summary renders counts as "503 database_unavailable: 12, timeout: 1",
// largest first.
func summary(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, counts[k])
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// migrate runs `webhookd migrate` with env.
func migrate(t *testing.T, env []string) {
	t.Helper()
	cmd := exec.Command(binary, "migrate")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "webhookd migrate: %s", out)
}
