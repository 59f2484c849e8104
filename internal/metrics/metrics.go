// Package metrics is webhookd's Prometheus instrumentation: one Metrics per
// process, on its own registry (never the global default), passed down to
// the worker, the reconciler and the API, and served at GET /metrics.
//
// Labels stay low-cardinality: never an account, webhook, delivery or event
// id and never a URL. Event types are a label only from a bounded set (the
// first EventTypeLimit distinct types a process sees; the rest are "other").
//
// Every method is safe on a nil *Metrics and then does nothing, so packages
// take an optional *Metrics.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// Defaults.
const (
	// QueryTimeoutDefault bounds each query run at scrape time.
	QueryTimeoutDefault = 2 * time.Second
	// EventTypeLimit is how many distinct event types one process uses as
	// label values; any further type is counted as EventTypeOther.
	EventTypeLimit = 50
	// EventTypeOther is the event_type label of types past EventTypeLimit
	// (and of deliveries whose type is not known where they finish).
	EventTypeOther = "other"
)

// Outcomes: the outcome label of webhookd_deliveries_finished_total.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeDead      = "dead"
	OutcomeCancelled = "cancelled"
)

// ErrorKindNone is the error_kind label of an attempt without error.
const ErrorKindNone = "none"

// Config configures Metrics.
type Config struct {
	// RetryScale is the configured retry scale; webhookd_retry_scale_not_one
	// is 1 when it is not 1. Defaults to 1.
	RetryScale float64
	// QueryTimeout bounds each scrape-time query. Defaults to
	// QueryTimeoutDefault.
	QueryTimeout time.Duration
	// Now is the clock for the oldest-due age. Defaults to time.Now.
	Now func() time.Time
	// Logger reports failed scrape-time queries. Defaults to zap.NewNop().
	Logger *zap.Logger
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.RetryScale == 0 {
		out.RetryScale = 1
	}
	if out.QueryTimeout <= 0 {
		out.QueryTimeout = QueryTimeoutDefault
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	return &out
}

// Metrics holds every webhookd metric on one registry.
type Metrics struct {
	registry *prometheus.Registry

	deliveriesFinished *prometheus.CounterVec
	attempts           *prometheus.CounterVec
	attemptDuration    prometheus.Histogram
	firstAttemptDelay  prometheus.Histogram
	retryLateness      prometheus.Histogram
	reconcilerFixed    prometheus.Counter
	throttleReslots    prometheus.Counter
	jobSnoozes         *prometheus.CounterVec
	webhookPauses      *prometheus.CounterVec
	bulkWaits          prometheus.Counter
	bulkWaitSeconds    prometheus.Counter
	rateLimited        *prometheus.CounterVec
	authFailures       *prometheus.CounterVec
	portalLinks        *prometheus.CounterVec

	eventTypes eventTypes
}

// New returns Metrics on a new registry. db, when not nil, backs the
// gauges computed at scrape time (pending deliveries, oldest due age).
func New(db store.DB, cfg *Config) *Metrics {
	cfg = cfg.WithDefaults()
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		deliveriesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_deliveries_finished_total",
			Help: "Deliveries that reached a final state, by outcome (succeeded, dead, cancelled) and event type (bounded set, others as \"other\").",
		}, []string{"outcome", "event_type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_attempts_total",
			Help: "Delivery attempts made, by response status class (2xx, 3xx, 4xx, 5xx, none) and error kind (none when it succeeded).",
		}, []string{"status_class", "error_kind"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webhookd_attempt_duration_seconds",
			Help:    "Duration of one delivery attempt's HTTP request.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		firstAttemptDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webhookd_first_attempt_latency_seconds",
			Help:    "Time from a delivery's creation (enqueue) to the start of its first attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		retryLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webhookd_retry_lateness_seconds",
			Help:    "How late a retry (attempt 2 or later) started: actual start minus scheduled time.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		reconcilerFixed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhookd_reconciler_fixed_total",
			Help: "Pending deliveries the reconciler re-queued because no live job served them.",
		}),
		throttleReslots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhookd_throttle_reslots_total",
			Help: "Deliveries of rate-limited webhooks that held a start slot but whose turn to start was more than 2 s ahead when their job ran, so took a new slot (a third fetch).",
		}),
		jobSnoozes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_job_snoozes_total",
			Help: "Delivery jobs put back to wait without an attempt counted, by reason: not_due, fifo (behind its line's head), rate_limit (waiting for a start slot), webhook_cap (the webhook's in-flight cap full), retry (after a failed attempt), interrupted (an attempt cut short by shutdown), stopping.",
		}, []string{"reason"}),
		webhookPauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_webhook_pauses_total",
			Help: "Webhooks paused and resumed, by action (pause, resume) and reason (manual, auto).",
		}, []string{"action", "reason"}),
		bulkWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhookd_bulk_gate_waits_total",
			Help: "Backlogged bulk deliveries that waited for other accounts' live traffic (WEBHOOKD_BULK_WHILE_LIVE).",
		}),
		bulkWaitSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhookd_bulk_gate_wait_seconds_total",
			Help: "Time backlogged bulk deliveries spent waiting for other accounts' live traffic.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_rate_limited_total",
			Help: "Requests answered 429 because an API key was over a limit, by the key's scope (admin, account, events:write) and budget (management, intake, body).",
		}, []string{"scope", "budget"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_auth_failures_total",
			Help: "Requests refused for their API key, by reason (missing, malformed, unknown, revoked, expired); throttled counts those refused 429 because their client address failed too often.",
		}, []string{"reason"}),
		portalLinks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhookd_portal_links_total",
			Help: "Dashboard portal links by event: minted, used (a session opened), refused (unknown, used, expired or revoked) and revoked.",
		}, []string{"event"}),
	}
	scaleNotOne := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "webhookd_retry_scale_not_one",
		Help: "1 when the retry schedule is scaled (WEBHOOKD_RETRY_SCALE is not 1): not for production.",
	})
	if cfg.RetryScale != 1 {
		scaleNotOne.Set(1)
	}
	m.registry.MustRegister(
		m.deliveriesFinished, m.attempts, m.attemptDuration, m.firstAttemptDelay,
		m.retryLateness, m.reconcilerFixed, m.webhookPauses, m.bulkWaits, m.bulkWaitSeconds, scaleNotOne,
		m.rateLimited, m.authFailures, m.portalLinks, m.throttleReslots, m.jobSnoozes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if db != nil {
		pending := newPendingCollector(db, cfg)
		m.registry.MustRegister(pending)
	}
	return m
}

// Registry is the registry every metric is on.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		// A failed scrape-time query drops its gauges, not the whole scrape.
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.registry,
		MaxRequestsInFlight: 4,
	})
}

// Attempt records one attempt: its HTTP status (0 when there was no
// response), its error kind ("" when none) and its duration.
func (m *Metrics) Attempt(statusCode int, errorKind string, d time.Duration) {
	if m == nil {
		return
	}
	if errorKind == "" {
		errorKind = ErrorKindNone
	}
	m.attempts.WithLabelValues(StatusClass(statusCode), errorKind).Inc()
	m.attemptDuration.Observe(d.Seconds())
}

// FirstAttemptLatency records the time from a delivery's creation to the
// start of its first attempt.
func (m *Metrics) FirstAttemptLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.firstAttemptDelay.Observe(max(d, 0).Seconds())
}

// RetryLateness records how late a retry started (start − scheduled).
func (m *Metrics) RetryLateness(d time.Duration) {
	if m == nil {
		return
	}
	m.retryLateness.Observe(max(d, 0).Seconds())
}

// DeliveriesFinished counts n deliveries of eventType reaching outcome
// (OutcomeSucceeded, OutcomeDead or OutcomeCancelled). An empty eventType
// (not known where they finished) counts as EventTypeOther.
func (m *Metrics) DeliveriesFinished(outcome, eventType string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.deliveriesFinished.WithLabelValues(outcome, m.eventTypes.label(eventType)).Add(float64(n))
}

// ReconcilerFixed counts n deliveries re-queued by the reconciler.
func (m *Metrics) ReconcilerFixed(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.reconcilerFixed.Add(float64(n))
}

// ThrottleReslot counts a delivery of a rate-limited webhook that held a
// slot but took a new one, its turn to start too far ahead.
func (m *Metrics) ThrottleReslot() {
	if m == nil {
		return
	}
	m.throttleReslots.Inc()
}

// JobSnoozed counts a delivery job snoozed for reason (see
// webhookd_job_snoozes_total).
func (m *Metrics) JobSnoozed(reason string) {
	if m == nil {
		return
	}
	m.jobSnoozes.WithLabelValues(reason).Inc()
}

// BulkGateWait counts a backlogged bulk delivery that waited d for other
// accounts' live traffic.
func (m *Metrics) BulkGateWait(d time.Duration) {
	if m == nil {
		return
	}
	m.bulkWaits.Inc()
	m.bulkWaitSeconds.Add(d.Seconds())
}

// WebhookPause counts a webhook paused or resumed (action "pause" or
// "resume", reason "manual" or "auto").
func (m *Metrics) WebhookPause(action, reason string) {
	if m == nil {
		return
	}
	m.webhookPauses.WithLabelValues(action, reason).Inc()
}

// RateLimited counts a request refused 429 for a key of scope over budget
// ("management", "intake" or "body").
func (m *Metrics) RateLimited(scope, budget string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(scope, budget).Inc()
}

// AuthFailure counts a request refused for its API key, for reason
// ("missing", "malformed", "unknown", "revoked", "expired" or "throttled").
func (m *Metrics) AuthFailure(reason string) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

// PortalLinks counts n portal links reaching event ("minted", "used",
// "refused" or "revoked").
func (m *Metrics) PortalLinks(event string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.portalLinks.WithLabelValues(event).Add(float64(n))
}

// StatusClass is the status_class label of an HTTP status: "2xx" to "5xx",
// or "none" when there was no (valid) response.
func StatusClass(code int) string {
	switch {
	case code >= 200 && code < 300:
		return "2xx"
	case code >= 300 && code < 400:
		return "3xx"
	case code >= 400 && code < 500:
		return "4xx"
	case code >= 500 && code < 600:
		return "5xx"
	default:
		return "none"
	}
}

// eventTypes bounds the event_type label: the first EventTypeLimit types
// seen keep their name, the rest are EventTypeOther.
type eventTypes struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (e *eventTypes) label(t string) string {
	if t == "" {
		return EventTypeOther
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.seen[t]; ok {
		return t
	}
	if len(e.seen) >= EventTypeLimit {
		return EventTypeOther
	}
	if e.seen == nil {
		e.seen = make(map[string]struct{})
	}
	e.seen[t] = struct{}{}
	return t
}

// pendingCollector computes the backlog gauges at scrape time with one
// bounded query.
type pendingCollector struct {
	db      store.DB
	cfg     *Config
	pending *prometheus.Desc
	oldest  *prometheus.Desc
	errors  prometheus.Counter
	// counts and river run in this collector's Collect, so a failure of
	// their queries is in the errors counter of the same scrape
	// (internal/metrics/countgauge.go, internal/metrics/riverqueue.go): registered apart,
	// their increments raced the counter's collection.
	counts []*countGauge
	river  *riverQueueCollector
}

func newPendingCollector(db store.DB, cfg *Config) *pendingCollector {
	c := &pendingCollector{
		db:  db,
		cfg: cfg,
		pending: prometheus.NewDesc("webhookd_pending_deliveries",
			"Deliveries pending (not yet succeeded, dead or cancelled), read at scrape time.", nil, nil),
		oldest: prometheus.NewDesc("webhookd_oldest_due_pending_age_seconds",
			"Age of the oldest pending delivery that is due (now − its due time); 0 when none is due. Read at scrape time.", nil, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "webhookd_metrics_query_errors_total",
			Help: "Scrape-time queries that failed or timed out (their gauges are then missing from that scrape).",
		}),
	}
	c.counts = scrapeCounts(db)
	c.river = newRiverQueueCollector(db, cfg, c.errors)
	return c
}

// Describe implements prometheus.Collector.
func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
	for _, g := range c.counts {
		ch <- g.desc
	}
	c.river.Describe(ch)
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	for _, g := range c.counts {
		g.collect(ch, c.cfg, c.errors)
	}
	c.river.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.QueryTimeout)
	defer cancel()
	stats, err := store.GetPendingStats(ctx, c.db)
	if err != nil {
		c.errors.Inc()
		c.cfg.Logger.Warn("error reading pending deliveries for /metrics", zap.Error(err))
		return
	}
	age := 0.0
	if stats.EarliestDue != nil {
		age = max(c.cfg.Now().Sub(*stats.EarliestDue).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(stats.Count))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
