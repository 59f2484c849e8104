package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/signer"
)

// replayBatchView is a bulk replay as the API shows it.
type replayBatchView struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Total    int    `json:"total"`
	Replayed int    `json:"replayed"`
	Skipped  int    `json:"skipped"`
	Filter   struct {
		AccountID     string     `json:"account_id"`
		WebhookID     *string    `json:"webhook_id"`
		State         string     `json:"state"`
		CreatedAfter  *time.Time `json:"created_after"`
		CreatedBefore *time.Time `json:"created_before"`
	} `json:"filter"`
	KeyID      *string    `json:"key_id"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// startFastServer is startServer with private networks allowed and the
// retry schedule at 0.0001 scale: ten failed attempts take about 3 s.
func startFastServer(t *testing.T, modify func(*server.Config)) *testBundle {
	t.Helper()
	signals := newTestSignals()
	srv := testserver.Start(t, func(c *server.Config) {
		c.BootstrapAdminKey = adminKey
		c.RetryScale = 0.0001
		c.MaxWorkers = 50
		c.TestSignals = signals
		if modify != nil {
			modify(c)
		}
	})
	return &testBundle{srv: srv.Server, pool: srv.Pool(), keys: srv.Keys, baseURL: srv.BaseURL, client: &http.Client{Timeout: 10 * time.Second}, signals: signals}
}

func (b *testBundle) getDelivery(t *testing.T, id string) *apitype.Delivery {
	t.Helper()
	var d apitype.Delivery
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + id}), http.StatusOK, &d)
	return &d
}

// waitDeliveryState waits, through the API, until delivery id is in state.
func (b *testBundle) waitDeliveryState(t *testing.T, id, state string) *apitype.Delivery {
	t.Helper()
	var d *apitype.Delivery
	testwait.For(t, 15*time.Second, func() (bool, string) {
		d = b.getDelivery(t, id)
		return d.State == state, fmt.Sprintf("delivery %s is %s, not %s", id, d.State, state)
	})
	return d
}

// waitBatchDone waits for the bulk replay worker's signal that batch id is
// done (remembering the other batches it hears of), then reads it through
// GET /v1/replays/{id}.
func (b *testBundle) waitBatchDone(t *testing.T, id string) *replayBatchView {
	t.Helper()
	b.batchesMu.Lock()
	if b.batchesDone == nil {
		b.batchesDone = map[string]bool{}
	}
	for !b.batchesDone[id] {
		b.batchesDone[b.signals.ReplayBatch.Done.WaitOrTimeout(t)] = true
	}
	b.batchesMu.Unlock()
	var v replayBatchView
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/replays/" + id}), http.StatusOK, &v)
	require.Equal(t, store.ReplayBatchDone, v.State, "bulk replay %s: %+v", id, v)
	require.NotNil(t, v.FinishedAt)
	require.Equal(t, v.Total, v.Replayed+v.Skipped)
	return &v
}

// A delivery dies against a failing receiver; replayed once the receiver is
// healthy, it arrives with the same body and Mono-Event-Id and a fresh
// signature that verifies, as attempt 11 of generation 2, with generation
// 1's ten attempts and the replay (key, time, state) on record. A succeeded
// delivery can be replayed too.
func TestReplayEndToEnd(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, nil)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	hook := b.createWebhook(t, "acct_replay", rcv.URL+"/hook")
	key := b.createKey(t, "account", "acct_replay")

	var ev apitype.Enqueued
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_replay","type":"payment.failed","data":{"amount":"12.50","note":"<&>"}}`}),
		http.StatusAccepted, &ev)
	require.Len(t, ev.Deliveries, 1)
	id := ev.Deliveries[0].ID

	dead := b.waitDeliveryState(t, id, store.StateDead)
	require.Len(t, dead.Attempts, 10)
	require.Equal(t, 1, dead.Generation)
	require.Empty(t, dead.Replays)
	first := rcv.Requests()
	require.Len(t, first, 10)

	rcv.SetRespond(testreceiver.Status(http.StatusOK))
	replayedAt := time.Now()
	var accepted apitype.Delivery
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/" + id + "/replay", auth: bearer(key.Key)}), http.StatusAccepted, &accepted)
	require.Equal(t, store.StatePending, accepted.State)
	require.Equal(t, 2, accepted.Generation)
	require.Nil(t, accepted.FinishedAt)
	require.NotNil(t, accepted.NextAttemptAt)
	require.Len(t, accepted.Attempts, 10, "history kept")
	require.Len(t, accepted.Replays, 1)

	d := b.waitDeliveryState(t, id, store.StateSucceeded)
	reqs := rcv.Wait(t, 11, 5*time.Second)
	require.Len(t, reqs, 11)
	again := reqs[10]
	require.Equal(t, string(first[0].Body), string(again.Body), "same body, byte for byte")
	require.Equal(t, ev.ID, again.Header.Get("Mono-Event-Id"))
	require.NoError(t, signer.Verify(again.Header.Get(signer.Header), again.Body, hook.Secret, time.Now(), 0))
	sig, err := signer.Parse(again.Header.Get(signer.Header))
	require.NoError(t, err)
	require.GreaterOrEqual(t, sig.Timestamp.Unix(), replayedAt.Unix(), "signed at the replayed attempt")

	require.Equal(t, 2, d.Generation)
	require.Equal(t, 11, d.AttemptCount)
	require.Len(t, d.Attempts, 11)
	for i, at := range d.Attempts {
		require.Equal(t, i+1, at.Number)
		if i < 10 {
			require.Equal(t, 1, at.Generation)
			require.Equal(t, http.StatusInternalServerError, *at.StatusCode)
		} else {
			require.Equal(t, 2, at.Generation)
			require.Equal(t, http.StatusOK, *at.StatusCode)
		}
	}
	require.Equal(t, sig.Timestamp.Unix(), d.Attempts[10].SignatureT, "the t sent is recorded with attempt 11")
	require.Len(t, d.Replays, 1)
	rp := d.Replays[0]
	require.Equal(t, 2, rp.Generation)
	require.Equal(t, store.StateDead, rp.FromState)
	require.NotNil(t, rp.KeyID)
	require.Equal(t, key.ID, *rp.KeyID)
	require.Nil(t, rp.BatchID)
	require.WithinDuration(t, replayedAt, rp.CreatedAt, 5*time.Second)

	// A succeeded delivery replays too (with the bootstrap key: no key id).
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/" + id + "/replay"}), http.StatusAccepted, &accepted)
	require.Equal(t, 3, accepted.Generation)
	d = b.waitDeliveryState(t, id, store.StateSucceeded)
	reqs = rcv.Wait(t, 12, 5*time.Second)
	require.Equal(t, string(first[0].Body), string(reqs[11].Body))
	require.NoError(t, signer.Verify(reqs[11].Header.Get(signer.Header), reqs[11].Body, hook.Secret, time.Now(), 0))
	require.Len(t, d.Replays, 2)
	require.Equal(t, store.StateSucceeded, d.Replays[1].FromState)
	require.Equal(t, 3, d.Replays[1].Generation)
	require.Nil(t, d.Replays[1].KeyID)

	waitAccountSettled(t, b.pool, "acct_replay", 10*time.Second)
	require.Equal(t, 12, rcv.Count(), "nothing more")
}

// Two replays of one dead delivery sent at once: one 202, one 409, one new
// job, one request at the receiver.
func TestReplayConcurrent(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, nil)
	// The receiver holds each replayed attempt until both replay requests
	// of the round have been answered, so the delivery is still pending
	// when the second one arrives (a replay after it succeeded would be a
	// new, legitimate replay).
	var gateMu sync.Mutex
	gate := make(chan struct{})
	rcv := testreceiver.New(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		gateMu.Lock()
		g := gate
		gateMu.Unlock()
		select {
		case <-g:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	hook := b.createWebhook(t, "acct_race", rcv.URL+"/hook")

	const rounds = 5
	var rows []seedRow
	for i := 0; i < rounds; i++ {
		rows = append(rows, seedRow{id: ident.New(ident.Delivery), eventID: ident.New(ident.Event), webhookID: hook.ID, accountID: "acct_race",
			eventType: "order.created", state: store.StateDead, createdAt: time.Now().Add(-time.Hour).Truncate(time.Microsecond)})
	}
	seedDeliveries(t, b, rows)

	for _, row := range rows {
		start := make(chan struct{})
		results := make([]*response, 2)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/" + row.id + "/replay"})
			}()
		}
		close(start)
		wg.Wait()

		statuses := []int{results[0].status, results[1].status}
		require.ElementsMatch(t, []int{http.StatusAccepted, http.StatusConflict}, statuses, "bodies: %s / %s", results[0].body, results[1].body)
		for _, r := range results {
			if r.status == http.StatusConflict {
				requireError(t, r, http.StatusConflict, "delivery_pending", "")
			}
		}
		var jobs int
		require.NoError(t, b.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM river_job WHERE kind = 'webhookd.delivery' AND args->>'delivery_id' = $1", row.id).Scan(&jobs))
		require.Equal(t, 1, jobs, "queued once")
		gateMu.Lock()
		close(gate)
		gate = make(chan struct{})
		gateMu.Unlock()
	}
	gateMu.Lock()
	close(gate) // every attempt may now finish
	gateMu.Unlock()

	waitAccountSettled(t, b.pool, "acct_race", 10*time.Second)
	require.Equal(t, rounds, rcv.Count(), "each delivered once")
	perEvent := map[string]int{}
	for _, r := range rcv.Requests() {
		perEvent[r.Header.Get("Mono-Event-Id")]++
	}
	for _, row := range rows {
		require.Equal(t, 1, perEvent[row.eventID])
		d := b.getDelivery(t, row.id)
		require.Equal(t, 2, d.Generation)
		require.Len(t, d.Replays, 1)
	}
}

// 1,000 dead deliveries; two bulk replays of them sent at once
// deliver each exactly once between them. Then a replay of what is dead
// finds nothing, and a replay of one webhook's succeeded deliveries sends
// each of those once more.
func TestBulkReplay(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, nil)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hookA := b.createWebhook(t, "acct_bulk", rcv.URL+"/a")
	hookB := b.createWebhook(t, "acct_bulk", rcv.URL+"/b")

	// 500 events, each to both webhooks: 1,000 dead deliveries, stored
	// as such (TestReplayEndToEnd makes one die for real; ten thousand
	// failed attempts here would only slow the suite down).
	const events = 500
	ctx := context.Background()
	eventIDs := map[string]bool{}
	var rows []seedRow
	for i := 0; i < events; i++ {
		eventID := ident.New(ident.Event)
		eventIDs[eventID] = true
		for _, h := range []*apitype.Webhook{hookA, hookB} {
			rows = append(rows, seedRow{id: ident.New(ident.Delivery), eventID: eventID, webhookID: h.ID, accountID: "acct_bulk",
				eventType: "order.created", state: store.StateDead, createdAt: time.Now().Add(-time.Hour).Truncate(time.Microsecond)})
		}
	}
	seedDeliveries(t, b, rows)

	mark := rcv.Count()

	// Twice at once.
	start := make(chan struct{})
	batches := make([]replayBatchView, 2)
	var wg sync.WaitGroup
	for i := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp := b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay", body: `{"account_id":"acct_bulk"}`})
			jsonBody(t, resp, http.StatusAccepted, &batches[i])
		}()
	}
	close(start)
	wg.Wait()
	replayed := 0
	for i, batch := range batches {
		require.True(t, ident.Valid(engine.ReplayBatchPrefix, batch.ID), batch.ID)
		require.Equal(t, 2*events, batch.Total, "each request fixes every dead delivery")
		require.Equal(t, "acct_bulk", batch.Filter.AccountID)
		require.Equal(t, store.StateDead, batch.Filter.State)
		done := b.waitBatchDone(t, batch.ID)
		replayed += done.Replayed
		batches[i] = *done
	}
	require.Equal(t, 2*events, replayed, "between them, every delivery replayed once: %+v", batches)

	waitAccountSettled(t, b.pool, "acct_bulk", 20*time.Second)
	requests := rcv.Requests()[mark:]
	require.Len(t, requests, 2*events)
	seen := map[string]int{}
	for _, r := range requests {
		require.True(t, eventIDs[r.Header.Get("Mono-Event-Id")])
		seen[r.Path+" "+r.Header.Get("Mono-Event-Id")]++
	}
	require.Len(t, seen, 2*events)
	perPath := map[string]int{}
	for k, n := range seen {
		require.Equal(t, 1, n, "%s delivered %d times", k, n)
	}
	for _, r := range requests {
		perPath[r.Path]++
	}
	require.Equal(t, map[string]int{"/a": events, "/b": events}, perPath)
	require.Equal(t, rcv.URL+"/a", hookA.URL)

	// Nothing is dead any more: a bulk replay of dead ones takes none and
	// is done at once.
	var none replayBatchView
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay", body: `{"account_id":"acct_bulk"}`}), http.StatusAccepted, &none)
	require.Equal(t, 0, none.Total)
	require.Equal(t, store.ReplayBatchDone, none.State)

	// One webhook's succeeded deliveries, with an account key: each sent
	// once more, recorded against the batch and the key.
	key := b.createKey(t, "account", "acct_bulk")
	mark = rcv.Count()
	var one replayBatchView
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay", auth: bearer(key.Key),
		body: `{"webhook_id":"` + hookB.ID + `","state":"succeeded"}`}), http.StatusAccepted, &one)
	require.Equal(t, events, one.Total)
	require.Equal(t, hookB.ID, *one.Filter.WebhookID)
	require.Equal(t, key.ID, *one.KeyID)
	done := b.waitBatchDone(t, one.ID)
	require.Equal(t, events, done.Replayed)
	waitAccountSettled(t, b.pool, "acct_bulk", 20*time.Second)
	requests = rcv.Requests()[mark:]
	require.Len(t, requests, events)
	seen = map[string]int{}
	for _, r := range requests {
		require.Equal(t, "/b", r.Path)
		seen[r.Header.Get("Mono-Event-Id")]++
	}
	require.Len(t, seen, events)

	// The delivery's record names the batch and the key.
	var someB string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM deliveries WHERE webhook_id = $1 LIMIT 1", hookB.ID).Scan(&someB))
	d := b.getDelivery(t, someB)
	require.Equal(t, 3, d.Generation)
	require.Len(t, d.Replays, 2)
	require.Equal(t, one.ID, *d.Replays[1].BatchID)
	require.Equal(t, key.ID, *d.Replays[1].KeyID)
	require.Equal(t, store.StateSucceeded, d.Replays[1].FromState)

	// Another account's key can't see the batch.
	other := b.createKey(t, "account", "acct_other")
	requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/replays/" + one.ID, auth: bearer(other.Key)}), http.StatusNotFound, "not_found", "id")
}

// The single replay takes no options: an empty body or {} is fine, anything
// else is refused and nothing is replayed.
func TestReplayBody(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, nil)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook := b.createWebhook(t, "acct_body", rcv.URL+"/hook")
	row := seedRow{id: ident.New(ident.Delivery), eventID: ident.New(ident.Event), webhookID: hook.ID, accountID: "acct_body",
		eventType: "order.created", state: store.StateDead, createdAt: time.Now().Add(-time.Hour).Truncate(time.Microsecond)}
	seedDeliveries(t, b, []seedRow{row})

	path := "/v1/deliveries/" + row.id + "/replay"
	requireError(t, b.do(t, request{method: http.MethodPost, path: path, body: `{"force":true}`}), http.StatusBadRequest, "unknown_field", "force")
	requireError(t, b.do(t, request{method: http.MethodPost, path: path, body: `not json`}), http.StatusBadRequest, "invalid_json", "")
	require.Zero(t, rcv.Count())
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: path, body: `{}`}).status)
}
