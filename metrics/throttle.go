package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/mono/webhookd/store"
)

// throttleCollector reports, at scrape time, the deliveries waiting for a
// rate-limited webhook's start slot: one number, no per-webhook label. It
// reads webhook_throttle (one row per limited webhook), not deliveries.
// Those deliveries are pending but not due (their due time is their slot),
// so they stay out of webhookd_oldest_due_pending_age_seconds and the
// retry lateness.
type throttleCollector struct {
	db        store.DB
	cfg       *Config
	throttled *prometheus.Desc
	errors    prometheus.Counter
}

func newThrottleCollector(db store.DB, cfg *Config, errors prometheus.Counter) *throttleCollector {
	return &throttleCollector{
		db: db, cfg: cfg, errors: errors,
		throttled: prometheus.NewDesc("webhookd_throttled_deliveries",
			"Deliveries waiting for a start slot of their webhook's rate limit (slots reserved ahead of now), read at scrape time.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *throttleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.throttled }

// Collect implements prometheus.Collector.
func (c *throttleCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.QueryTimeout)
	defer cancel()
	n, err := store.CountThrottled(ctx, c.db, c.cfg.Now())
	if err != nil {
		c.errors.Inc()
		c.cfg.Logger.Warn("error counting throttled deliveries for /metrics", zap.Error(err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.throttled, prometheus.GaugeValue, float64(n))
}
