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
