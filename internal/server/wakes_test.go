package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
)

// With the deliveries queue polled only once a minute, a delivery's
// retries still go when due: attempt 2 after the hand-off's move, attempts
// 3 and 4 after River's snoozes, each ringing an alarm (engine.Wakes) that
// makes River fetch. At RetryScale 0.001 they are due 30, 90 and 210 ms
// after the attempt before, sooner than the alarms' read of what comes due
// (every second) sees most of them; without the alarms they would wait
// for the poll.
func TestWakesRingRetries(t *testing.T) {
	t.Parallel()
	const poll = time.Minute
	srv := testserver.Start(t, func(c *server.Config) { c.FetchPollInterval = poll })
	b := &traceBundle{srv: srv}
	recv := testreceiver.New(t, testreceiver.Sequence(500, 500, 500, 200))
	b.createWebhook(t, "acct_wakes", recv.URL)

	var ev struct {
		Deliveries []struct {
			ID string `json:"id"`
		} `json:"deliveries"`
	}
	require.Equal(t, http.StatusAccepted, b.post(t, "/v1/events", `{"account_id":"acct_wakes","type":"order.created","data":{}}`, nil, &ev))
	require.Len(t, ev.Deliveries, 1)
	// Far less than the poll: only the alarms can have fetched them.
	recv.Wait(t, 4, 20*time.Second)

	api, err := client.New(srv.BaseURL, testserver.AdminKey, nil)
	require.NoError(t, err)
	var d *client.Delivery
	require.Eventually(t, func() bool {
		d, err = api.GetDelivery(t.Context(), ev.Deliveries[0].ID)
		require.NoError(t, err)
		return d.State == client.StateSucceeded
	}, 10*time.Second, 20*time.Millisecond, "the delivery succeeds at its 4th attempt")
	require.Len(t, d.Attempts, 4)
	for _, a := range d.Attempts[1:] {
		late := a.StartedAt.Sub(a.ScheduledAt)
		t.Logf("attempt %d: due %s, started %s late", a.Number, a.ScheduledAt.Format(time.RFC3339Nano), late)
		require.GreaterOrEqual(t, late, time.Duration(0), "attempt %d started before it was due", a.Number)
		require.Less(t, late, poll/4, "attempt %d waited for the poll", a.Number)
	}
}

// The deliveries queue polls every second (the alarms' safety net), or
// every 50 ms through a transaction pooler, where River can't LISTEN and
// no alarm reaches it; a poll set explicitly stays.
func TestFetchPollIntervalDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Second, (&server.Config{}).WithDefaults().FetchPollInterval)
	require.Equal(t, 50*time.Millisecond, (&server.Config{DBPooler: server.PoolerTransaction}).WithDefaults().FetchPollInterval)
	require.Equal(t, 7*time.Millisecond, (&server.Config{DBPooler: server.PoolerTransaction, FetchPollInterval: 7 * time.Millisecond}).WithDefaults().FetchPollInterval)
}

// Events accepted one after another by an API-only process are each
// fetched at once by a worker-only one whose poll is a minute away: the
// API's River client announces every insert (River's limit is one insert
// notification per FetchCooldown per client; at River's default, 100 ms,
// the events after the first within it waited for the poll).
func TestAPIOnlyInsertsEachAnnounced(t *testing.T) {
	t.Parallel()
	key := keyring.Generate()
	api := testserver.Start(t, func(c *server.Config) { c.API, c.Worker, c.EncryptionKey = true, false, key })
	testserver.Start(t, func(c *server.Config) {
		c.DatabaseURL = api.Pool().Config().ConnString()
		c.EncryptionKey = key
		c.API, c.Worker = false, true
		c.FetchPollInterval = time.Minute
	})
	b := &traceBundle{srv: api}
	recv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	b.createWebhook(t, "acct_split", recv.URL)
	const events = 5
	for range events {
		require.Equal(t, http.StatusAccepted, b.post(t, "/v1/events", `{"account_id":"acct_split","type":"order.created","data":{}}`, nil, nil))
	}
	recv.Wait(t, events, 20*time.Second)
}
