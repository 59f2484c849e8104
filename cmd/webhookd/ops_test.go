package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testproc"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// terminate sends SIGTERM to p and returns its exit code, failing the test
// if it has not exited within timeout.
func (p *process) terminate(t *testing.T, timeout time.Duration) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("webhookd did not exit within %s of SIGTERM:\n%s", timeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitChan fails the test unless ch is closed within timeout.
func waitChan(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("%s did not happen within %s", what, timeout)
	}
}

// SIGTERM lets a running attempt finish within WEBHOOKD_SHUTDOWN_TIMEOUT,
// records one cut short after it as interrupted (not counted), and exits 0;
// nothing is lost or counted twice across the restart.
func TestShutdown(t *testing.T) {
	t.Parallel()

	t.Run("AttemptFinishes", func(t *testing.T) {
		t.Parallel()
		gotFirst := make(chan struct{})
		recv := testreceiver.New(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				close(gotFirst)
				time.Sleep(1500 * time.Millisecond) // sleeps because: an attempt still running at SIGTERM
			}
			w.WriteHeader(http.StatusOK)
		})
		env := serveEnv(testdb.NewURL(t), keyring.Generate(), "WEBHOOKD_SHUTDOWN_TIMEOUT=5s", "WEBHOOKD_HTTP_TIMEOUT=10s")
		first := startServe(t, env)
		id := createWebhookAndEvent(t, first, "acct_term", recv.URL+"/hook")
		waitChan(t, gotFirst, 30*time.Second, "the first attempt")

		start := time.Now()
		require.Equal(t, 0, first.terminate(t, 15*time.Second), first.out.String())
		t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		require.GreaterOrEqual(t, time.Since(start), time.Second, "exited before the attempt could finish")
		require.NotContains(t, first.out.String(), "interrupted")

		second := startServe(t, env)
		d := waitState(t, func() *process { return second }, id, 10*time.Second)
		require.Equal(t, "succeeded", d.State)
		require.Len(t, d.Attempts, 1)
		require.True(t, d.Attempts[0].Counted)
		require.Equal(t, 200, *d.Attempts[0].StatusCode)
		require.Equal(t, 1, recv.Count())
	})

	t.Run("AttemptInterrupted", func(t *testing.T) {
		t.Parallel()
		gotFirst := make(chan struct{})
		recv := testreceiver.New(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				close(gotFirst)
				<-r.Context().Done() // never answers
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		env := serveEnv(testdb.NewURL(t), keyring.Generate(), "WEBHOOKD_SHUTDOWN_TIMEOUT=1s", "WEBHOOKD_HTTP_TIMEOUT=30s")
		first := startServe(t, env)
		id := createWebhookAndEvent(t, first, "acct_term", recv.URL+"/hook")
		waitChan(t, gotFirst, 30*time.Second, "the first attempt")

		start := time.Now()
		require.Equal(t, 0, first.terminate(t, 15*time.Second), first.out.String())
		t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		require.Contains(t, first.out.String(), "attempt interrupted by shutdown")

		second := startServe(t, env)
		d := waitState(t, func() *process { return second }, id, 10*time.Second)
		require.Equal(t, "succeeded", d.State)
		require.Len(t, d.Attempts, 2)
		require.Equal(t, "interrupted", *d.Attempts[0].ErrorKind)
		require.False(t, d.Attempts[0].Counted)
		require.Nil(t, d.Attempts[1].ErrorKind)
		require.True(t, d.Attempts[1].Counted)
		require.Equal(t, 1, d.Attempts[1].Number, "the interrupted attempt used none of the ten")
		require.Equal(t, 200, *d.Attempts[1].StatusCode)
		require.Equal(t, 2, recv.Count())
		require.Equal(t, 0, second.terminate(t, 10*time.Second))
	})
}

// startServeArgs is startServe with command-line arguments, ready when it
// logs "webhookd serving" (a worker-only process serves /healthz too, but
// the log line says every role has started).
func startServeArgs(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	serving := func(p *testproc.Proc) bool { return strings.Contains(p.Out.String(), `"webhookd serving"`) }
	return newProcess(testproc.Start(t, fmt.Sprintf("webhookd serve %v", args), binary, env, &testproc.Buffer{}, 30*time.Second, serving, append([]string{"serve"}, args...)...))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// countLogs counts the zap JSON lines of out whose msg is msg.
func countLogs(t *testing.T, out, msg string) int {
	t.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg {
			n++
		}
	}
	require.NoError(t, sc.Err())
	return n
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// One API-only process and three worker-only processes on one database:
// 10,000 deliveries, each delivered exactly once, by every worker.
func TestRoles(t *testing.T) {
	t.Parallel()

	const total = 10_000
	recv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	dbURL := testdb.NewURL(t)
	env := serveEnv(dbURL, keyring.Generate(), "WEBHOOKD_WEBHOOK_CONCURRENCY=100", "WEBHOOKD_SHUTDOWN_TIMEOUT=5s")

	api := startServeArgs(t, append(env, "WEBHOOKD_ROLES=worker"), "-api")
	require.Equal(t, http.StatusOK, getStatus(t, api.base+"/readyz"))
	// The API-only process enqueues (an insert-only River client) but
	// works nothing.
	apiID := createWebhookAndEvent(t, api, "acct_roles", recv.URL+"/hook")
	// sleeps because: an absence (no worker in this process fetches the
	// job) shows only over time; a working process takes it within ms.
	time.Sleep(time.Second)
	require.Equal(t, 0, recv.Count(), "an API-only process delivered")

	workers := []*process{
		startServeArgs(t, env, "-worker"),
		startServeArgs(t, append(env, "WEBHOOKD_ROLES=worker")),
		startServeArgs(t, env, "-api=false"),
	}
	for _, w := range workers {
		require.Equal(t, http.StatusOK, getStatus(t, w.base+"/healthz"))
		require.Equal(t, http.StatusOK, getStatus(t, w.base+"/readyz"))
		require.Equal(t, http.StatusNotFound, getStatus(t, w.base+"/v1/webhooks"), "a worker-only process serves the API")
		// Metrics on their own listener (WEBHOOKD_METRICS_ADDR) only.
		require.Equal(t, http.StatusOK, getStatus(t, w.metrics+"/metrics"))
		require.Equal(t, http.StatusNotFound, getStatus(t, w.base+"/metrics"))
	}
	require.Equal(t, http.StatusOK, getStatus(t, api.metrics+"/metrics"))
	require.Equal(t, http.StatusNotFound, getStatus(t, api.base+"/metrics"), "the API listener serves /metrics")

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	insertStart := time.Now()
	for batch := 0; batch < total/1000; batch++ {
		events := make([]*engine.Event, 1000)
		for i := range events {
			events[i] = &engine.Event{AccountID: "acct_roles", Type: "ping", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, batch*1000+i))}
		}
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		_, err = enqueuer.EnqueueMany(ctx, tx, events)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
	}
	t.Logf("inserted %d deliveries in %v", total, time.Since(insertStart).Round(time.Millisecond))

	want := total + 1 // and the one enqueued through the API
	testwait.For(t, 45*time.Second, func() (bool, string) {
		var succeeded, other int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state <> 'succeeded') FROM deliveries`).Scan(&succeeded, &other))
		return succeeded == want, fmt.Sprintf("%d of %d deliveries succeeded (%d not)", succeeded, want, other)
	})
	t.Logf("delivered %d in %v after the insert began", want, time.Since(insertStart).Round(time.Millisecond))

	var attempts, counted int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE counted) FROM attempt_log`).Scan(&attempts, &counted))
	require.Equal(t, want, attempts)
	require.Equal(t, want, counted)
	reqs := recv.Requests()
	perEvent := map[string]int{}
	for _, r := range reqs {
		perEvent[r.Header.Get("Mono-Event-Id")]++
	}
	require.Len(t, reqs, want, "the receiver saw duplicates")
	require.Len(t, perEvent, want)
	for ev, n := range perEvent {
		require.Equal(t, 1, n, "event %s delivered %d times", ev, n)
	}

	d := waitState(t, func() *process { return api }, apiID, 5*time.Second)
	require.Equal(t, "succeeded", d.State)

	var wg sync.WaitGroup
	codes := make([]int, len(workers)+1)
	for i, p := range append([]*process{api}, workers...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			select {
			case <-p.done:
				codes[i] = p.cmd.ProcessState.ExitCode()
			case <-time.After(15 * time.Second):
				codes[i] = -100
			}
		}()
	}
	wg.Wait()
	require.Equal(t, make([]int, len(codes)), codes, "exit codes of api, worker 1-3")

	require.Zero(t, countLogs(t, api.out.String(), "delivered"))
	sum := 0
	for i, w := range workers {
		n := countLogs(t, w.out.String(), "delivered")
		t.Logf("worker %d delivered %d", i+1, n)
		require.Positive(t, n, "worker %d delivered none", i+1)
		sum += n
	}
	require.Equal(t, want, sum)
}

// Role settings that select nothing, or something unknown, fail at start.
func TestRolesBadConfig(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"BothFalse", nil, []string{"-api=false", "-worker=false"}},
		{"EmptyRoles", []string{"WEBHOOKD_ROLES="}, nil},
		{"UnknownRole", []string{"WEBHOOKD_ROLES=api,scheduler"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary, append([]string{"serve"}, tt.args...)...)
			cmd.Env = append(serveEnv("postgres://nobody@127.0.0.1:1/none", keyring.Generate()), tt.env...)
			out, err := cmd.CombinedOutput()
			require.Error(t, err, string(out))
			require.Contains(t, string(out), "WEBHOOKD_ROLES")
		})
	}
}

// With the database unreachable, serve retries for WEBHOOKD_DB_WAIT, logging
// each retry, then fails naming DATABASE_URL without its password.
func TestStartupDatabaseWait(t *testing.T) {
	t.Parallel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	cmd := exec.Command(binary, "serve")
	cmd.Env = append(serveEnv("postgres://webhookd:hunter2secret@"+closed+"/webhookd", keyring.Generate()), "WEBHOOKD_DB_WAIT=2s")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	require.Error(t, err, string(out))
	t.Logf("failed after %v:\n%s", elapsed.Round(time.Millisecond), tail(string(out), 600))
	require.Less(t, elapsed, 5*time.Second)
	require.GreaterOrEqual(t, elapsed, time.Second)
	require.Contains(t, string(out), "database not reachable yet; retrying")
	require.Contains(t, string(out), "webhookd: DATABASE_URL: database postgres://webhookd@"+closed+"/webhookd not reachable after 2s")
	require.NotContains(t, string(out), "hunter2secret")
}
