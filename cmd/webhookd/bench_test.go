package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A bench receiver that is neither in-process nor external stops the bench
// before it starts anything, naming the setting.
func TestBenchBadReceiver(t *testing.T) {
	err := runBench(context.Background(), []string{"-receiver", "sideways"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "WEBHOOKD_BENCH_RECEIVER (-receiver)")
	require.Contains(t, err.Error(), `"sideways"`)

	t.Setenv("WEBHOOKD_BENCH_RECEIVER", "outside")
	err = runBench(context.Background(), nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "WEBHOOKD_BENCH_RECEIVER (-receiver)")
}

// A bench worker that is neither in-process nor process stops the bench
// before it starts anything, naming the setting.
func TestBenchBadWorker(t *testing.T) {
	err := runBench(context.Background(), []string{"-worker", "elsewhere"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "WEBHOOKD_BENCH_WORKER (-worker)")
	require.Contains(t, err.Error(), `"elsewhere"`)

	t.Setenv("WEBHOOKD_BENCH_WORKER", "thread")
	err = runBench(context.Background(), nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "WEBHOOKD_BENCH_WORKER (-worker)")
}

// A negative fetch cooldown or poll interval stops the bench before it
// starts anything, naming the flag.
func TestBenchBadFetchSettings(t *testing.T) {
	for _, args := range [][]string{{"-fetch-cooldown", "-1ms"}, {"-fetch-poll-interval", "-5s"}} {
		err := runBench(context.Background(), args)
		require.Error(t, err, args)
		require.Contains(t, err.Error(), "-fetch-cooldown and -fetch-poll-interval must not be negative")
	}
}

// A fillfactor PostgreSQL would refuse stops the bench before it starts
// anything, naming the flag.
func TestBenchBadDeliveriesFillfactor(t *testing.T) {
	for _, v := range []string{"5", "101", "-1"} {
		err := runBench(context.Background(), []string{"-deliveries-fillfactor", v})
		require.Error(t, err, v)
		require.Contains(t, err.Error(), "-deliveries-fillfactor must be 0 (the schema's, 90) or 10 to 100")
	}
}

// A -history-days out of range stops the bench before it starts anything,
// naming the flag.
func TestBenchBadHistoryDays(t *testing.T) {
	for _, v := range []string{"-1", "401"} {
		err := runBench(context.Background(), []string{"-history-days", v})
		require.Error(t, err, v)
		require.Contains(t, err.Error(), "-history-days must be 0 to 400")
	}
}

// An -intake-transactions the server would refuse stops the bench before
// it starts anything, naming the flag.
func TestBenchBadIntakeTransactions(t *testing.T) {
	for _, v := range []string{"-1", "17"} {
		err := runBench(context.Background(), []string{"-intake-transactions", v})
		require.Error(t, err, v)
		require.Contains(t, err.Error(), "-intake-transactions must be 0 (the default, 1) to 16", v)
	}
}

// -worker-cpuprofile without a worker process, or to a file that can't be
// written, stops the bench before it starts anything, naming the flag.
func TestBenchBadWorkerCPUProfile(t *testing.T) {
	err := runBench(context.Background(), []string{"-worker-cpuprofile", filepath.Join(t.TempDir(), "w.prof")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "-worker-cpuprofile profiles the worker process: set WEBHOOKD_BENCH_WORKER (-worker) to process")

	err = runBench(context.Background(), []string{"-worker", "process", "-worker-cpuprofile", filepath.Join(t.TempDir(), "missing", "w.prof")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "-worker-cpuprofile: open ")
}

// Arrivals that are neither even nor poisson stop the bench before it
// starts anything, naming the flag.
func TestBenchBadArrivals(t *testing.T) {
	err := runBench(context.Background(), []string{"-arrivals", "bursty"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "-arrivals")
	require.Contains(t, err.Error(), `"bursty" is not even or poisson`)
}
