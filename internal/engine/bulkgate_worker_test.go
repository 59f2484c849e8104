package engine_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
)

// While account B's live deliveries are being answered, account A's
// backlog (bulk, behind its time) runs at most BulkWhileLive at once: the
// rest wait (webhookd_bulk_gate_waits_total), and every one of them is
// still delivered, once.
func TestBacklogGivesWayToLiveTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupServer(t, func(c *server.Config) {
		c.MaxWorkers = 40
		c.BulkWhileLive = 2
	})
	slowA := testreceiver.New(t, func(int, http.ResponseWriter, *http.Request) {
		time.Sleep(100 * time.Millisecond) // sleeps because: a slow endpoint; then 200
	})
	liveB := testreceiver.New(t, testreceiver.Status(200))
	createWebhook(t, b.pool, b.keys, "acct_backlog", slowA.URL)
	createWebhook(t, b.pool, b.keys, "acct_live", liveB.URL)

	// B sends an event every 20 ms until the test ends.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			tx, err := b.pool.Begin(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			_, err = b.enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_live", Type: "ping", Data: rawJSON(`{}`)})
			if err == nil {
				err = tx.Commit(ctx)
			}
			_ = tx.Rollback(ctx)
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-stopped
	}()
	liveB.Wait(t, 3, 10*time.Second)

	// A's backlog: 16 deliveries, bulk and 5 s behind their time, all
	// available at once.
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	var ids []string
	for range 16 {
		res, err := b.enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_backlog", Type: "ping", Data: rawJSON(`{}`)})
		require.NoError(t, err)
		ids = append(ids, res.Deliveries[0].ID)
	}
	tag, err := tx.Exec(ctx, `UPDATE river_job SET priority = $1, scheduled_at = now() - interval '5 seconds'
WHERE id IN (SELECT job_id FROM deliveries WHERE id = ANY($2))`, engine.PriorityBulk, ids)
	require.NoError(t, err)
	require.EqualValues(t, 16, tag.RowsAffected())
	require.NoError(t, tx.Commit(ctx))

	for _, id := range ids {
		require.Equal(t, store.StateSucceeded, waitFinished(t, b.pool, id, 30*time.Second).State)
	}
	require.Equal(t, 16, slowA.Count(), "each delivered once")
	body := scrape(t, "http://"+b.srv.MetricsAddr()+"/metrics")
	require.GreaterOrEqual(t, metricValue(t, body, `webhookd_bulk_gate_waits_total`), 1.0, "A's backlog waited for B")
	require.Positive(t, metricValue(t, body, `webhookd_bulk_gate_wait_seconds_total`))
}
