package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// The FIFO test: 2,000 events to a FIFO webhook whose receiver
// fails about 30% of attempts at random, three worker processes, one of
// them SIGKILLed mid-run. In the receiver's log (attempts are one at a
// time, so its order is theirs) every event's first success comes in
// strictly increasing line order, and no event is attempted before its
// predecessor's first success; nothing is lost (every delivery succeeded,
// and its recorded attempts agree).
//
// The receiver fails no event more than fifoMaxFailures times: ten failures
// in a row would kill a delivery and block the line behind it (0.3^10 ×
// 2,000: one run in 85), which TestFIFODeadHeadBlocks tests on purpose and
// this test is not about.
func TestFIFOThreeWorkersKill(t *testing.T) {
	t.Parallel()
	const batch = 100
	events := fifoTestEvents(t)
	var (
		mu       sync.Mutex
		seen     []fifoAttempt
		failures = map[string]int{}
	)
	recv := testreceiver.New(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Mono-Event-Id")
		mu.Lock()
		ok := rand.IntN(10) >= 3 || failures[id] >= fifoMaxFailures
		if !ok {
			failures[id]++
		}
		seen = append(seen, fifoAttempt{eventID: id, ok: ok})
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	dbURL, key := testdb.NewURL(t), keyring.Generate()
	env := serveEnv(dbURL, key, "WEBHOOKD_RETRY_SCALE=0.001", "WEBHOOKD_HTTP_TIMEOUT=2s", "WEBHOOKD_RECONCILE_INTERVAL=5s",
		"WEBHOOKD_LOG_LEVEL=info", "WEBHOOKD_DB_MAX_CONNS=6")
	api := startServeArgs(t, append(env, "WEBHOOKD_ROLES=api"), "-api")
	var workers []*process
	for range 3 {
		workers = append(workers, startServeArgs(t, env, "-worker"))
	}

	var hook struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, api.call(t, http.MethodPost, "/v1/webhooks",
		map[string]string{"account_id": "acct_fifo", "url": recv.URL + "/hook", "ordering": "fifo"}, &hook))
	for b := range events / batch {
		in := make([]map[string]any, batch)
		for i := range in {
			in[i] = map[string]any{"account_id": "acct_fifo", "type": "ping", "data": map[string]int{"n": b*batch + i}}
		}
		require.Equal(t, http.StatusAccepted, api.call(t, http.MethodPost, "/v1/events/batch", map[string]any{"events": in}, nil))
	}

	// Kill one worker once a quarter of the line has gone out.
	db, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	start := time.Now()
	testwait.For(t, 10*time.Minute, func() (bool, string) {
		n, state := fifoLineState(t, db, hook.ID)
		return n >= events/4, "a quarter of the line delivered: " + state
	})
	n, _ := fifoLineState(t, db, hook.ID)
	t.Logf("%d of %d delivered in %v; killing a worker", n, events, time.Since(start).Round(time.Second))
	workers[1].kill(t)
	killedAt := time.Now()
	testwait.For(t, 15*time.Minute, func() (bool, string) {
		n, state := fifoLineState(t, db, hook.ID)
		return n == events, "every delivery succeeded: " + state
	})
	t.Logf("%d deliveries in %v; the rest after the kill took %v", events, time.Since(start).Round(time.Second), time.Since(killedAt).Round(time.Second))

	// The line order is the deliveries' fifo_seq.
	rows, err := db.Query(context.Background(), `SELECT event_id FROM deliveries WHERE webhook_id = $1 ORDER BY fifo_seq`, hook.ID)
	require.NoError(t, err)
	var order []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		order = append(order, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, order, events)

	mu.Lock()
	log := append([]fifoAttempt(nil), seen...)
	mu.Unlock()
	requireFIFOOrder(t, log, order)

	// The recorded attempts agree: one success each, the others failures.
	var recorded, successes int
	require.NoError(t, db.QueryRow(context.Background(), `
SELECT count(*), count(*) FILTER (WHERE status_code BETWEEN 200 AND 299) FROM attempt_log WHERE counted`).Scan(&recorded, &successes))
	require.Equal(t, events, successes, "one recorded success per event")
	t.Logf("receiver saw %d requests; %d attempts recorded", len(log), recorded)
}

// fifoMaxFailures is the most attempts of one event that
// TestFIFOThreeWorkersKill's receiver fails (fewer than the schedule's ten).
const fifoMaxFailures = 4

// fifoLineState returns how many deliveries succeeded, and says so with
// the other states' counts and the line's head, for a wait that times out.
func fifoLineState(t *testing.T, db *pgxpool.Pool, webhookID string) (succeeded int, state string) {
	t.Helper()
	var byState, head string
	require.NoError(t, db.QueryRow(context.Background(), `
SELECT (SELECT count(*) FROM deliveries WHERE state = 'succeeded'),
       (SELECT coalesce(string_agg(state || ' ' || n, ', ' ORDER BY state), 'none')
          FROM (SELECT state, count(*) n FROM deliveries GROUP BY state) s),
       coalesce((SELECT format('%s (%s, attempt %s, next %s)', id, state, attempts, coalesce(next_attempt_at::text, '-'))
          FROM deliveries WHERE webhook_id = $1 AND fifo_seq IS NOT NULL AND state IN ('pending', 'paused', 'dead')
          ORDER BY fifo_seq LIMIT 1), 'none')`, webhookID).Scan(&succeeded, &byState, &head))
	return succeeded, "deliveries: " + byState + "; head: " + head
}

// fifoTestEvents is how many events TestFIFOThreeWorkersKill sends: the
// issue's 2,000, or WEBHOOKD_TEST_FIFO_EVENTS (a multiple of 100).
func fifoTestEvents(t *testing.T) int {
	t.Helper()
	v := os.Getenv("WEBHOOKD_TEST_FIFO_EVENTS")
	if v == "" {
		return 2000
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "WEBHOOKD_TEST_FIFO_EVENTS")
	require.True(t, n > 0 && n%100 == 0, "WEBHOOKD_TEST_FIFO_EVENTS must be a positive multiple of 100")
	return n
}

// fifoAttempt is one request a FIFO receiver saw.
type fifoAttempt struct {
	eventID string
	ok      bool
}

// requireFIFOOrder checks a receiver's log against order (event ids in
// line order): no event is attempted before its predecessor's first
// success, so first successes come in strictly increasing order, and every
// event succeeded. A request after an event's first success (a rescued
// attempt resent) is allowed only for that event or earlier ones.
func requireFIFOOrder(t *testing.T, log []fifoAttempt, order []string) {
	t.Helper()
	place := make(map[string]int, len(order))
	for i, id := range order {
		place[id] = i
	}
	done := -1 // the last place whose first success was seen
	for i, r := range log {
		p, ok := place[r.eventID]
		require.True(t, ok, "request %d: unknown event %s", i, r.eventID)
		require.LessOrEqual(t, p, done+1, "request %d: event %d attempted before event %d succeeded", i, p, done+1)
		if r.ok && p == done+1 {
			done = p
		}
	}
	require.Equal(t, len(order)-1, done, "every event succeeded, in order")
}
