package engine_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
)

// After a small real run (500 then 200), GET /metrics over HTTP shows the
// attempts, the retry's snooze, the success, the histograms and an empty
// backlog, and never an account id, a webhook id or a URL.
func TestMetricsAfterRun(t *testing.T) {
	t.Parallel()

	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Sequence(500, 200))
	webhookID, _ := createWebhook(t, b.pool, b.keys, "acct_metrics", recv.URL+"/hook?token=abc")
	res := enqueue(t, b.pool, b.enqueuer, &engine.Event{
		AccountID: "acct_metrics", Type: "payment.settled", Data: rawJSON(`{"n":1}`), OccurredAt: time.Now(),
	})
	require.Len(t, res.Deliveries, 1)
	d := waitFinished(t, b.pool, res.Deliveries[0].ID, 30*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)

	body := scrape(t, "http://"+b.srv.MetricsAddr()+"/metrics")
	// Only there: the API's listener doesn't serve it.
	resp, err := http.Get("http://" + b.srv.Addr() + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the API listener serves /metrics")

	require.Equal(t, 1.0, metricValue(t, body, `webhookd_deliveries_finished_total{event_type="payment.settled",outcome="succeeded"}`))
	require.Equal(t, 1.0, metricValue(t, body, `webhookd_attempts_total{error_kind="http_status",status_class="5xx"}`))
	require.Equal(t, 1.0, metricValue(t, body, `webhookd_attempts_total{error_kind="none",status_class="2xx"}`))
	require.Equal(t, 2.0, metricValue(t, body, `webhookd_attempt_duration_seconds_count`))
	require.Equal(t, 1.0, metricValue(t, body, `webhookd_first_attempt_latency_seconds_count`))
	require.Equal(t, 1.0, metricValue(t, body, `webhookd_retry_lateness_seconds_count`))
	require.Equal(t, 0.0, metricValue(t, body, `webhookd_pending_deliveries`))
	require.Equal(t, 0.0, metricValue(t, body, `webhookd_oldest_due_pending_age_seconds`))
	require.Equal(t, 0.0, metricValue(t, body, `webhookd_reconciler_fixed_total`))
	// The failed attempt's job snoozed until the retry (the job's own
	// count went with it: a finished delivery's job is deleted).
	require.Equal(t, 1.0, metricValue(t, body, `webhookd_job_snoozes_total{reason="retry"}`))
	require.Equal(t, 1.0, metricValue(t, body, `webhookd_retry_scale_not_one`), "the test server runs at scale 0.001")
	require.NotContains(t, body, `outcome="dead"`)

	for _, secret := range []string{"acct_metrics", webhookID, res.Deliveries[0].ID, res.EventID, recv.URL, "127.0.0.2", "token=abc"} {
		require.NotContains(t, body, secret)
	}
}

// A pending delivery that is due shows in the backlog gauges.
func TestMetricsPendingBacklog(t *testing.T) {
	t.Parallel()

	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Status(500))
	createWebhook(t, b.pool, b.keys, "acct_backlog", recv.URL)
	// Stop the workers so the delivery stays pending and due.
	require.NoError(t, b.srv.River().Stop(t.Context()))
	res := enqueue(t, b.pool, b.enqueuer, &engine.Event{
		AccountID: "acct_backlog", Type: "payment.settled", Data: rawJSON(`{}`), OccurredAt: time.Now(),
	})
	require.Len(t, res.Deliveries, 1)
	_, err := b.pool.Exec(t.Context(), "UPDATE deliveries SET created_at = now() - interval '90 seconds', next_attempt_at = now() - interval '90 seconds' WHERE id = $1", res.Deliveries[0].ID)
	require.NoError(t, err)

	body := scrape(t, "http://"+b.srv.MetricsAddr()+"/metrics")
	require.Equal(t, 1.0, metricValue(t, body, `webhookd_pending_deliveries`))
	require.InDelta(t, 90, metricValue(t, body, `webhookd_oldest_due_pending_age_seconds`), 10)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(raw)
}

// metricValue is the value of the sample whose name and labels (sorted, as
// the exposition writes them) are series; the test fails if it is missing.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("no sample %s in /metrics:\n%s", series, body)
	return 0
}
