package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterInFlight adds the process's in-flight gauges, read at scrape
// time: webhookd_attempts_in_flight (attempts holding a slot, from
// attempts) and webhookd_db_connections_acquired{pool} (connections of
// each named pool in use). On an idle process both are zero: anything
// else is a slot or a connection that leaked. Pools may hold nil ones,
// which are left out.
func (m *Metrics) RegisterInFlight(attempts func() int, pools map[string]*pgxpool.Pool) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "webhookd_attempts_in_flight",
		Help: "Delivery attempts of this process holding a slot now.",
	}, func() float64 { return float64(attempts()) }))
	for name, pool := range pools {
		if pool == nil {
			continue
		}
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "webhookd_db_connections_acquired",
			Help:        "Database connections of this process's pool in use now.",
			ConstLabels: prometheus.Labels{"pool": name},
		}, func() float64 { return float64(pool.Stat().AcquiredConns()) }))
	}
}

// RegisterWebhookCache adds webhookd_intake_webhook_cache_total{result},
// read at scrape time from stats (the intake's webhook cache: accounts
// fanned out from memory, read, and found changed at the insert).
func (m *Metrics) RegisterWebhookCache(stats func() (hits, misses, changed int64)) {
	for i, result := range []string{"hit", "miss", "changed"} {
		m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "webhookd_intake_webhook_cache_total",
			Help:        "Accounts of intake transactions whose webhooks came from memory (hit), were read (miss), or had changed at the insert, which was retried (changed).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 {
			h, mi, c := stats()
			return float64([]int64{h, mi, c}[i])
		}))
	}
}
