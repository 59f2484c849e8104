package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
)

// countGauge is a gauge without labels whose value one bounded query
// counts at scrape time. A failed query is counted in the scrape's errors
// counter, logged, and leaves the gauge out of that scrape.
type countGauge struct {
	desc  *prometheus.Desc
	what  string // for the log line: "error counting <what> for /metrics"
	count func(ctx context.Context, now func() time.Time) (int64, error)
}

// scrapeCounts are the count gauges the pending collector serves.
func scrapeCounts(db store.DB) []*countGauge {
	return []*countGauge{
		{
			// No per-webhook label: the webhooks themselves are in each
			// one's API view and dashboard page.
			desc: prometheus.NewDesc("webhookd_webhook_client_certificates_expiring",
				"Live webhooks whose client certificate expires within 14 days or has expired, read at scrape time.", nil, nil),
			what: "expiring client certificates",
			count: func(ctx context.Context, now func() time.Time) (int64, error) {
				return store.CountCertificatesExpiring(ctx, db, now().Add(outbound.CertificateExpiryWarning))
			},
		},
		{
			// Reads webhook_throttle (one row per limited webhook), not
			// deliveries. Those deliveries are pending but not due (their
			// due time is their slot), so they stay out of
			// webhookd_oldest_due_pending_age_seconds and the retry
			// lateness.
			desc: prometheus.NewDesc("webhookd_throttled_deliveries",
				"Deliveries waiting for a start slot of their webhook's rate limit (slots reserved ahead of now), read at scrape time.", nil, nil),
			what: "throttled deliveries",
			count: func(ctx context.Context, now func() time.Time) (int64, error) {
				return store.CountThrottled(ctx, db, now())
			},
		},
		{
			// No per-webhook label either: each blocked webhook shows its
			// dead head as fifo.blocked_by in the API and the dashboard.
			desc: prometheus.NewDesc("webhookd_fifo_blocked_webhooks",
				"FIFO webhooks whose line is blocked by a dead delivery (fifo.blocked_by) until it is replayed or skipped, read at scrape time.", nil, nil),
			what: "blocked FIFO webhooks",
			count: func(ctx context.Context, _ func() time.Time) (int64, error) {
				return store.CountFIFOBlocked(ctx, db)
			},
		},
	}
}

// collect sends g's value, or counts and logs the failure.
func (g *countGauge) collect(ch chan<- prometheus.Metric, cfg *Config, errors prometheus.Counter) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.QueryTimeout)
	defer cancel()
	n, err := g.count(ctx, cfg.Now)
	if err != nil {
		errors.Inc()
		cfg.Logger.Warn("error counting "+g.what+" for /metrics", zap.Error(err))
		return
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n))
}
