package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/pgbouncer"
	"github.com/mono/webhookd/internal/pgcluster"
)

// TestRunCostThroughPgBouncer runs the drain, a sustained rate and the
// cost scenario (7) with tiny sizes through PgBouncer, on a throwaway
// cluster (scenario 7 runs CHECKPOINT). The figures mean nothing at this
// size; their presence and sanity do.
func TestRunCostThroughPgBouncer(t *testing.T) {
	t.Parallel()
	if _, err := pgbouncer.Binary(); errors.Is(err, pgbouncer.ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.Stop() })

	var out bytes.Buffer
	res, err := Run(ctx, &Config{
		DatabaseURL: cluster.URL(),
		Scenarios:   []int{ScenarioDrain, ScenarioSustained, ScenarioCost},
		Backlog:     300,
		Rates:       []int{50},
		Duration:    time.Second,
		Warmup:      -1,
		Timeout:     time.Minute,
		DBMaxConns:  8,
		PgBouncer:   true,
		Out:         &out,
		Progress:    logWriter{t},
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)
	require.Equal(t, 300, res.Drain.Deliveries)
	require.Len(t, res.Sustained, 1)
	require.Equal(t, 50, res.Sustained[0].Sent)

	c := res.Cost
	require.NotNil(t, c)
	for name, ph := range map[string]CostPhase{"intake": c.Intake, "intake batch": c.IntakeBatch, "delivery": c.Delivery} {
		require.Positive(t, ph.PerSecond(), name)
		require.Positive(t, ph.CPU, name)
		require.Positive(t, ph.Commits, name)
		require.LessOrEqual(t, ph.Commits, 3.0, name)
		// An event writes its row, its delivery and its job (and their
		// indexes); a delivery its attempt and two updates.
		require.Greater(t, ph.WALBytes, 1000.0, name)
		require.Greater(t, ph.WALRecords, 5.0, name)
		// pg_waldump read the phase's WAL: without full-page images (this
		// cluster writes none) its records are the LSN's advance less the
		// pages' headers.
		require.Empty(t, ph.WALNoImagesNote, name)
		require.LessOrEqual(t, ph.WALNoImages, ph.WALBytes, name)
		require.Greater(t, ph.WALNoImages, 0.9*ph.WALBytes, name)
	}
	require.Equal(t, 600, c.Delivery.Events)
	table := out.String()
	// The throwaway cluster doesn't flush its commits, and the table says so.
	require.Equal(t, "fsync off, synchronous_commit off, full_page_writes off", res.Machine.PostgresDurability)
	require.Contains(t, table, "; fsync off, synchronous_commit off, full_page_writes off) · ")
	require.Contains(t, table, "**Through PgBouncer**")
	require.Contains(t, table, "| delivery (one attempt, 200) |")
	require.Equal(t, 1, strings.Count(table, "| intake, POST /v1/events (one event a request) |"))
	// The throwaway cluster does not preload pg_stat_statements.
	require.Nil(t, c.Delivery.Statements)
	require.Contains(t, table, "WAL by statement: n/a (pg_stat_statements: ")
}

// The statements table is each statement's difference between two
// readings, per event, the six that wrote most, most first; those that
// wrote nothing in between are left out.
func TestStatementsPerEvent(t *testing.T) {
	before := map[int64]StatementWAL{1: {Query: "a", Calls: 10, WALBytes: 1000, WALRecords: 10}, 2: {Query: "b", Calls: 5, WALBytes: 500}}
	after := map[int64]StatementWAL{
		1: {Query: "a", Calls: 30, WALBytes: 5000, WALRecords: 50, WALFPI: 2},
		2: {Query: "b", Calls: 5, WALBytes: 500},
		3: {Query: "c", Calls: 100, WALBytes: 10000, WALRecords: 100},
	}
	for i := int64(4); i < 10; i++ {
		after[i] = StatementWAL{Query: "small", Calls: 1, WALBytes: float64(100 * i)}
	}
	got := statementsPerEvent(before, after, 100)
	require.Len(t, got, 6)
	require.Equal(t, StatementWAL{Query: "c", Calls: 1, WALBytes: 100, WALRecords: 1}, got[0])
	require.Equal(t, StatementWAL{Query: "a", Calls: 0.2, WALBytes: 40, WALRecords: 0.4, WALFPI: 0.02}, got[1])
	for i, st := range got[2:] {
		require.Equal(t, float64(9-i), st.WALBytes, "the next largest, in order")
	}
}
