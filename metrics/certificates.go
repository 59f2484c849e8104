package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/mono/webhookd/outbound"
	"github.com/mono/webhookd/store"
)

// certificateCollector counts, at scrape time, the live webhooks whose
// client certificate expires within outbound.CertificateExpiryWarning (14
// days) or has expired: one number, no per-webhook label (the webhooks
// themselves are in each one's API view and dashboard page).
type certificateCollector struct {
	db       store.DB
	cfg      *Config
	expiring *prometheus.Desc
	errors   prometheus.Counter
}

func newCertificateCollector(db store.DB, cfg *Config, errors prometheus.Counter) *certificateCollector {
	return &certificateCollector{
		db: db, cfg: cfg, errors: errors,
		expiring: prometheus.NewDesc("webhookd_webhook_client_certificates_expiring",
			"Live webhooks whose client certificate expires within 14 days or has expired, read at scrape time.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *certificateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.expiring }

// Collect implements prometheus.Collector.
func (c *certificateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.QueryTimeout)
	defer cancel()
	n, err := store.CountCertificatesExpiring(ctx, c.db, c.cfg.Now().Add(outbound.CertificateExpiryWarning))
	if err != nil {
		c.errors.Inc()
		c.cfg.Logger.Warn("error counting expiring client certificates for /metrics", zap.Error(err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.expiring, prometheus.GaugeValue, float64(n))
}
