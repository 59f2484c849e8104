package metrics_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// webhookd_throttled_deliveries counts the start slots reserved ahead of
// now across rate-limited webhooks, one number without labels.
func TestThrottledDeliveries(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	now := time.Now()
	reqs := make([]store.SlotRequest, 4)
	for i := range reqs {
		reqs[i] = store.SlotRequest{WebhookID: "wh_limited", Interval: store.RateInterval(1)}
	}
	// Four slots: now (due) and three in the seconds after.
	_, err := store.ReserveSlots(t.Context(), pool, reqs, now)
	require.NoError(t, err)

	m := metrics.New(pool, &metrics.Config{Now: func() time.Time { return now }})
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	found := false
	for _, f := range families {
		if f.GetName() == "webhookd_throttled_deliveries" {
			found = true
			require.Len(t, f.GetMetric(), 1)
			require.Empty(t, f.GetMetric()[0].GetLabel())
			require.Equal(t, 3.0, f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	require.True(t, found, "webhookd_throttled_deliveries is served")
}
