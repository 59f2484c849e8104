package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// TestThrottled runs the rate-limit scenario (issue 25): a webhook limited
// to 5/s with a backlog beside a healthy endpoint's, two worker processes,
// River's reference from the same run first. Small by default (a smoke
// test: 50 limited, 2,000 healthy); WEBHOOKD_BENCH_THROTTLE_LIMITED and
// WEBHOOKD_BENCH_THROTTLE_HEALTHY size a measurement (BENCHMARKS.md: 2,000
// and 20,000).
func TestThrottled(t *testing.T) {
	limited, healthy := envSize(t, "WEBHOOKD_BENCH_THROTTLE_LIMITED", 50), envSize(t, "WEBHOOKD_BENCH_THROTTLE_HEALTHY", 2000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cfg := (&Config{DatabaseURL: testdb.BaseURL(), Backlog: healthy, Timeout: 20 * time.Minute, Progress: logWriter{t}, DBMaxConns: 10}).WithDefaults()
	e := &env{cfg: cfg, baseURL: testdb.BaseURL()}

	ref, err := e.reference(ctx)
	require.NoError(t, err)
	res, err := e.throttled(ctx, 5, limited, healthy)
	require.NoError(t, err)
	t.Logf("River reference %.0f/s; healthy %d beside %d limited to %d/s: %.0f/s against %.0f/s alone (%.0f before, %.0f after; ratio %.2f); limited drained in %.1f s at %.2f starts/s, at most %d starts in 1 s and %d in 10 s; fetches per limited delivery: %d once, %d twice, %d more; throttled gauge at most %d, oldest due at most %v; the healthy drain's work alone / beside: CPU %.1f / %.1f s, transactions %d / %d, rows written %d / %d",
		ref.PerSecond(), healthy, limited, res.PerSecond, res.HealthyRun.PerSecond(), (res.Baseline.PerSecond()+res.BaselineAfter.PerSecond())/2, res.Baseline.PerSecond(), res.BaselineAfter.PerSecond(), res.Ratio,
		res.LimitedElapsed.Seconds(), res.Achieved, res.Most1s, res.Most10s, res.Fetches[0], res.Fetches[1], res.Fetches[2], res.MaxThrottled, res.MaxDueAge.Round(time.Millisecond),
		res.WorkAlone.CPU.Seconds(), res.WorkBeside.CPU.Seconds(), res.WorkAlone.Xacts, res.WorkBeside.Xacts, res.WorkAlone.RowWrites, res.WorkBeside.RowWrites)
	require.LessOrEqual(t, res.Most1s, res.PerSecond)
	require.LessOrEqual(t, res.Most10s, 10*res.PerSecond)
}
