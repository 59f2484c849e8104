package metrics_test

import (
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/testdb"
)

func TestRiverJobs(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		pool *pgxpool.Pool
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		pool := testdb.New(t)
		// Jobs in two queues and every state; a third queue River knows
		// of (a client serves it) with no job at all.
		_, err := pool.Exec(t.Context(), `
INSERT INTO river_job (args, kind, max_attempts, queue, state, finalized_at)
SELECT '{}', 'test', 25, q, s::river_job_state,
       CASE WHEN s IN ('cancelled', 'completed', 'discarded') THEN now() END
FROM (VALUES
  ('deliveries', 'available'), ('deliveries', 'available'), ('deliveries', 'available'),
  ('deliveries', 'scheduled'), ('deliveries', 'scheduled'),
  ('deliveries', 'running'), ('deliveries', 'retryable'), ('deliveries', 'discarded'),
  ('deliveries', 'completed'), ('deliveries', 'completed'),
  ('default', 'available'), ('default', 'cancelled'), ('default', 'pending')
) AS j(q, s);
INSERT INTO river_queue (name, created_at, metadata, updated_at) VALUES ('idle', now(), '{}', now());`)
		require.NoError(t, err)
		return &testBundle{pool: pool}
	}

	// gather returns the value of every webhookd_river_jobs series, by
	// "queue/state", and of webhookd_metrics_query_errors_total.
	gather := func(t *testing.T, m *metrics.Metrics) (map[string]float64, float64) {
		t.Helper()
		families, err := m.Registry().Gather()
		require.NoError(t, err)
		jobs, queryErrors := map[string]float64{}, -1.0
		for _, f := range families {
			for _, s := range f.GetMetric() {
				switch f.GetName() {
				case "webhookd_river_jobs":
					labels := map[string]string{}
					for _, l := range s.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					require.Len(t, labels, 2)
					jobs[labels["queue"]+"/"+labels["state"]] = s.GetGauge().GetValue()
				case "webhookd_metrics_query_errors_total":
					queryErrors = s.GetCounter().GetValue()
				}
			}
		}
		return jobs, queryErrors
	}

	t.Run("ByQueueAndState", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		jobs, queryErrors := gather(t, metrics.New(b.pool, nil))

		// Every state of every queue, zeros included; completed jobs are
		// not counted.
		want := map[string]float64{}
		for _, queue := range []string{"deliveries", "default", "idle"} {
			for _, state := range metrics.RiverJobStates {
				want[queue+"/"+state] = 0
			}
		}
		maps.Copy(want, map[string]float64{
			"deliveries/available": 3, "deliveries/scheduled": 2, "deliveries/running": 1,
			"deliveries/retryable": 1, "deliveries/discarded": 1,
			"default/available": 1, "default/cancelled": 1, "default/pending": 1,
		})
		require.Equal(t, want, jobs)
		require.Zero(t, queryErrors)
	})

	t.Run("QueryTimeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// A timeout no query meets: the five scrape-time queries (pending,
		// River's jobs, expiring client certificates, throttled
		// deliveries, blocked FIFO webhooks) fail, their gauges are left
		// out and the rest of the scrape is served.
		jobs, queryErrors := gather(t, metrics.New(b.pool, &metrics.Config{QueryTimeout: time.Nanosecond}))
		require.Empty(t, jobs)
		require.Equal(t, 5.0, queryErrors)
	})
}
