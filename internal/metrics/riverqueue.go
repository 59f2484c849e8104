package metrics

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// RiverJobStates are the state label values of webhookd_river_jobs: every
// River job state but completed. River deletes completed jobs ten minutes
// after they finish, so their count says little (throughput is
// webhookd_deliveries_finished_total), and counting them would make the
// scrape-time query read every job of the last ten minutes.
var RiverJobStates = []string{
	string(rivertype.JobStateAvailable),
	string(rivertype.JobStateCancelled),
	string(rivertype.JobStateDiscarded),
	string(rivertype.JobStatePending),
	string(rivertype.JobStateRetryable),
	string(rivertype.JobStateRunning),
	string(rivertype.JobStateScheduled),
}

// riverJobCounts counts River's jobs by queue and state, and lists the
// queues River knows (river_queue) with a NULL state, so that a queue with
// no jobs reads 0 rather than vanishing. The state filter is the leading
// column of river_job_prioritized_fetching_index (state, queue, …), so the
// count reads that index for the states asked for and never the completed
// jobs.
const riverJobCounts = `
SELECT queue, state::text, count(*) FROM river_job WHERE state = ANY($1::text[]::river_job_state[]) GROUP BY queue, state
UNION ALL
SELECT name, NULL, 0 FROM river_queue`

// riverQueueCollector computes webhookd_river_jobs at scrape time with one
// bounded query.
type riverQueueCollector struct {
	db     store.DB
	cfg    *Config
	jobs   *prometheus.Desc
	errors prometheus.Counter
}

// newRiverQueueCollector counts its failed queries on errors, the
// pending collector's webhookd_metrics_query_errors_total.
func newRiverQueueCollector(db store.DB, cfg *Config, errors prometheus.Counter) *riverQueueCollector {
	return &riverQueueCollector{
		db:  db,
		cfg: cfg,
		jobs: prometheus.NewDesc("webhookd_river_jobs",
			"River jobs by queue and state (every state but completed), read at scrape time.",
			[]string{"queue", "state"}, nil),
		errors: errors,
	}
}

// Describe implements prometheus.Collector.
func (c *riverQueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
}

// Collect implements prometheus.Collector.
func (c *riverQueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.QueryTimeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		c.errors.Inc()
		c.cfg.Logger.Warn("error reading River's queues for /metrics", zap.Error(err))
		return
	}
	for queue, states := range counts {
		for _, state := range RiverJobStates {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(states[state]), queue, state)
		}
	}
}

// count returns the job count of each queue and state; every queue found
// has an entry, its states with no job absent (read as 0).
func (c *riverQueueCollector) count(ctx context.Context) (map[string]map[string]int64, error) {
	rows, err := c.db.Query(ctx, riverJobCounts, RiverJobStates)
	if err != nil {
		return nil, fmt.Errorf("error counting River jobs: %w", err)
	}
	defer rows.Close()
	counts := map[string]map[string]int64{}
	for rows.Next() {
		var (
			queue string
			state *string
			n     int64
		)
		if err := rows.Scan(&queue, &state, &n); err != nil {
			return nil, fmt.Errorf("error counting River jobs: %w", err)
		}
		if counts[queue] == nil {
			counts[queue] = map[string]int64{}
		}
		if state != nil {
			counts[queue][*state] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error counting River jobs: %w", err)
	}
	return counts, nil
}
