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
	}
	require.Equal(t, 600, c.Delivery.Events)
	table := out.String()
	require.Contains(t, table, "**Through PgBouncer**")
	require.Contains(t, table, "| delivery (one attempt, 200) |")
	require.Equal(t, 1, strings.Count(table, "| intake, POST /v1/events (one event a request) |"))
}
