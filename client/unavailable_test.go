package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
)

// While the database is away the API answers 503 database_unavailable
// with Retry-After: 2 (admin's TestDatabaseUnavailable stops a real one).
// The client retries it with the same idempotency key, no sooner than
// Retry-After asks even when its own backoff is shorter, and returns the
// event once it is accepted.
func TestClientRetriesDatabaseUnavailable(t *testing.T) {
	t.Parallel()

	var (
		mu    sync.Mutex
		times []time.Time
		keys  []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			IdempotencyKey string `json:"idempotency_key"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		times = append(times, time.Now())
		keys = append(keys, ev.IdempotencyKey)
		n := len(times)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":"database_unavailable","message":"the database is unavailable"}}`)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"id":"evt_01","deliveries":[]}`)
	}))
	t.Cleanup(srv.Close)

	c, err := client.New(srv.URL, "key", &client.Config{RetryInitialInterval: time.Millisecond})
	require.NoError(t, err)
	ev, err := c.SendEvent(context.Background(), &client.EventParams{AccountID: "acct_1", Type: "order.created", Data: map[string]int{"n": 1}})
	require.NoError(t, err)
	require.Equal(t, "evt_01", ev.ID)
	require.False(t, ev.Repeat)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, times, 2)
	require.GreaterOrEqual(t, times[1].Sub(times[0]), 900*time.Millisecond, "retried before Retry-After")
	require.NotEmpty(t, keys[0])
	require.Equal(t, keys[0], keys[1], "the retry reuses the idempotency key")
}
