//go:build linux

package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
)

// TestDrainWorkerProcessSmoke runs scenario 1 with webhookd's workers in a
// process of their own and the receiver in another (issue 30's set-up),
// small: every delivery is answered once and recorded succeeded with one
// attempt, the worker process's CPU is read, and the process is gone
// afterwards. The figures mean nothing at this size.
func TestDrainWorkerProcessSmoke(t *testing.T) {
	t.Parallel()

	const backlog = 300
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	var progress lockedBuffer
	res, err := Run(ctx, &Config{
		DatabaseURL:      testdb.BaseURL(),
		Scenarios:        []int{ScenarioDrain},
		Backlog:          backlog,
		ExternalReceiver: true,
		WorkerProcess:    true,
		MaxWorkers:       50,
		DBMaxConns:       6,
		Timeout:          time.Minute,
		Out:              &out,
		Progress:         io.MultiWriter(&progress, logWriter{t}),
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)
	d := res.Drain
	require.Equal(t, backlog, d.Deliveries)
	require.NotNil(t, d.Worker, "the drain's workers ran in a process of their own")
	w := d.Worker
	require.EqualValues(t, backlog, w.Requests, "the receiver answered every delivery exactly once")
	require.Equal(t, backlog, w.Succeeded, "every delivery recorded succeeded")
	require.Equal(t, backlog, w.Attempts, "one attempt each")
	require.True(t, w.CPUKnown, w.CPUNote)
	require.Positive(t, w.CPU, "the worker process worked")
	// Its database's backends, read (in 10 ms ticks: 300 deliveries' may
	// read 0).
	require.NotNil(t, d.Backends, "its database's backends read: %s", d.CPUNote)
	require.GreaterOrEqual(t, *d.Backends, time.Duration(0))

	require.Contains(t, out.String(), "**Worker process**")
	require.Contains(t, out.String(), "**External receiver**")
	require.Contains(t, out.String(), "worker process CPU per delivery")
	require.Contains(t, out.String(), "its database's backends")
	require.Equal(t, 1, strings.Count(progress.String(), "worker process: process"), "one worker process")
	require.Equal(t, 1, strings.Count(progress.String(), "external receiver: process"), "one receiver process")
	// The bench waited for it: no such process any more.
	require.ErrorIs(t, syscall.Kill(w.PID, 0), syscall.ESRCH, "worker process %d still exists", w.PID)
}

// A worker process that exits before it is ready fails the drain, naming
// it, and leaves no process behind.
func TestWorkerProcessBadSpec(t *testing.T) {
	t.Parallel()

	e := &env{cfg: (&Config{Out: io.Discard}).WithDefaults()}
	s := &stage{e: e, n: ScenarioDrain}
	t.Cleanup(s.close)
	// No database URL: the process's server.New refuses it.
	_, err := s.startWorkerProcess(context.Background(), &server.Config{}, false)
	require.Error(t, err)
	require.Contains(t, err.Error(), "the worker process exited before it said \"ready\"")
	require.NotErrorIs(t, err, errBound)
}

// A worker process that dies during a drain ends the drain's waits at once
// with its exit as the cause, instead of at the drain's bound.
func TestWorkerProcessDiesDuringDrain(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := &env{cfg: (&Config{Out: io.Discard, DBMaxConns: 4, MaxWorkers: 10}).WithDefaults(), baseURL: testdb.BaseURL()}
	s, err := e.newStage(ctx, ScenarioDrain, 1)
	require.NoError(t, err)
	t.Cleanup(s.close)
	wp, err := s.startWorkerProcess(ctx, s.srvCfg, false)
	require.NoError(t, err)
	_, err = wp.startWorkers(ctx)
	require.NoError(t, err)
	waitCtx, stop := wp.watch(ctx)
	defer stop()

	require.NoError(t, wp.cmd.Process.Kill())
	select {
	case <-waitCtx.Done():
	case <-ctx.Done():
		t.Fatal("the watch did not see the worker process exit within a minute")
	}
	require.ErrorContains(t, context.Cause(waitCtx), "the worker process exited during the drain")
	require.ErrorIs(t, syscall.Kill(wp.pid(), 0), syscall.ESRCH, "the killed process was waited for")
}

// With Config.WorkerCPUProfile each worker process writes a CPU profile of
// its run, complete once it has stopped: the run's first to the file, its
// second to FILE.2.
func TestWorkerProcessCPUProfile(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file := filepath.Join(t.TempDir(), "worker.prof")
	e := &env{cfg: (&Config{Out: io.Discard, DBMaxConns: 4, MaxWorkers: 10, WorkerCPUProfile: file}).WithDefaults(), baseURL: testdb.BaseURL()}
	s, err := e.newStage(ctx, ScenarioDrain, 1)
	require.NoError(t, err)
	t.Cleanup(s.close)
	for _, want := range []string{file, file + ".2"} {
		wp, err := s.startWorkerProcess(ctx, s.srvCfg, false)
		require.NoError(t, err)
		_, err = wp.startWorkers(ctx)
		require.NoError(t, err)
		wp.stop()
		require.EqualError(t, wp.exit(), "exit status 0", "the worker process stopped cleanly")

		// A CPU profile is gzipped protobuf, written whole at its stop:
		// a stream cut short fails to read to its end.
		f, err := os.Open(want)
		require.NoError(t, err, "no profile at %s", want)
		zr, err := gzip.NewReader(f)
		require.NoError(t, err, "%s is not gzipped", want)
		data, err := io.ReadAll(zr)
		require.NoError(t, err, "%s is cut short", want)
		require.NoError(t, f.Close())
		require.Contains(t, string(data), "nanoseconds", "%s is not a CPU profile", want)
	}
}
