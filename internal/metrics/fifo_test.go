package metrics_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/testdb"
)

// webhookd_fifo_blocked_webhooks is served, one number without labels
// (engine's TestFIFODeadHeadBlocks counts a blocked line with
// store.CountFIFOBlocked, the query behind it).
func TestFIFOBlockedWebhooks(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	m := metrics.New(pool, &metrics.Config{Now: time.Now})
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	found := false
	for _, f := range families {
		if f.GetName() == "webhookd_fifo_blocked_webhooks" {
			found = true
			require.Len(t, f.GetMetric(), 1)
			require.Empty(t, f.GetMetric()[0].GetLabel())
			require.Zero(t, f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	require.True(t, found, "webhookd_fifo_blocked_webhooks is served")
}
