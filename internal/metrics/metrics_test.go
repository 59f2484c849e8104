package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/metrics"
)

func TestStatusClass(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		code int
		want string
	}{
		{0, "none"}, {101, "none"}, {200, "2xx"}, {204, "2xx"}, {301, "3xx"},
		{404, "4xx"}, {429, "4xx"}, {500, "5xx"}, {599, "5xx"}, {600, "none"},
	} {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, metrics.StatusClass(tt.code))
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()

	scrape := func(t *testing.T, m *metrics.Metrics) string {
		t.Helper()
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Equal(t, 200, rec.Code)
		return rec.Body.String()
	}

	t.Run("NilIsNoOp", func(t *testing.T) {
		t.Parallel()
		var m *metrics.Metrics
		m.Attempt(500, "http_status", time.Second)
		m.FirstAttemptLatency(time.Second)
		m.RetryLateness(time.Second)
		m.DeliveriesFinished(metrics.OutcomeDead, "x", 1)
		m.ReconcilerFixed(3)
	})

	t.Run("EventTypesBounded", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(nil, nil)
		for i := range metrics.EventTypeLimit + 10 {
			m.DeliveriesFinished(metrics.OutcomeSucceeded, fmt.Sprintf("type_%d", i), 1)
		}
		m.DeliveriesFinished(metrics.OutcomeSucceeded, "type_0", 1) // seen: keeps its name
		m.DeliveriesFinished(metrics.OutcomeCancelled, "", 2)       // unknown type
		body := scrape(t, m)
		require.Equal(t, metrics.EventTypeLimit+2, strings.Count(body, "webhookd_deliveries_finished_total{"))
		require.Contains(t, body, `webhookd_deliveries_finished_total{event_type="other",outcome="succeeded"} 10`)
		require.Contains(t, body, `webhookd_deliveries_finished_total{event_type="type_0",outcome="succeeded"} 2`)
		require.Contains(t, body, `webhookd_deliveries_finished_total{event_type="other",outcome="cancelled"} 2`)
	})

	t.Run("AttemptsAndHistograms", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(nil, nil)
		m.Attempt(0, "timeout", 10*time.Second)
		m.Attempt(200, "", 20*time.Millisecond)
		m.FirstAttemptLatency(-time.Second) // clock skew counts as 0
		m.RetryLateness(1500 * time.Millisecond)
		m.ReconcilerFixed(0)
		m.ReconcilerFixed(2)
		body := scrape(t, m)
		require.Contains(t, body, `webhookd_attempts_total{error_kind="timeout",status_class="none"} 1`)
		require.Contains(t, body, `webhookd_attempts_total{error_kind="none",status_class="2xx"} 1`)
		require.Contains(t, body, "webhookd_attempt_duration_seconds_count 2")
		require.Contains(t, body, `webhookd_first_attempt_latency_seconds_bucket{le="0.005"} 1`)
		require.Contains(t, body, `webhookd_retry_lateness_seconds_bucket{le="1"} 0`)
		require.Contains(t, body, `webhookd_retry_lateness_seconds_bucket{le="2.5"} 1`)
		require.Contains(t, body, "webhookd_reconciler_fixed_total 2")
		require.Contains(t, body, "go_goroutines")
		require.NotContains(t, body, "webhookd_pending_deliveries", "no database, no backlog gauges")
	})

	t.Run("RetryScaleNotOne", func(t *testing.T) {
		t.Parallel()
		for scale, want := range map[float64]float64{0: 0, 1: 0, 0.001: 1, 2: 1} {
			m := metrics.New(nil, &metrics.Config{RetryScale: scale})
			require.Contains(t, scrape(t, m), fmt.Sprintf("webhookd_retry_scale_not_one %g\n", want), "scale %g", scale)
		}
	})
}
