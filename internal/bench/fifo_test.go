package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// TestFIFO runs the ordered-delivery scenario (issue 25): a backlog to one
// FIFO webhook on two worker processes, River's reference from the same
// run first. Small by default (200 events); WEBHOOKD_BENCH_FIFO_EVENTS
// sizes a measurement (BENCHMARKS.md: 2,000).
func TestFIFO(t *testing.T) {
	events := envSize(t, "WEBHOOKD_BENCH_FIFO_EVENTS", 200)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cfg := (&Config{DatabaseURL: testdb.BaseURL(), Backlog: 5000, Timeout: 20 * time.Minute, Progress: logWriter{t}, DBMaxConns: 10}).WithDefaults()
	e := &env{cfg: cfg, baseURL: testdb.BaseURL()}

	ref, err := e.reference(ctx)
	require.NoError(t, err)
	res, err := e.fifoDrain(ctx, events)
	require.NoError(t, err)
	t.Logf("River reference %.0f/s; %d deliveries to one FIFO webhook: %.1f/s (ratio %.4f), %v from one start to the next",
		ref.PerSecond(), events, res.Run.PerSecond(), res.Run.PerSecond()/ref.PerSecond(), res.PerDelivery.Round(time.Microsecond))
	require.Equal(t, events, res.Run.Deliveries)
}
