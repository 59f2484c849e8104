package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/pgcluster"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/migrations"
)

// While the database is away — stopped, or read-only as a standby being
// promoted is — every route that needs it answers 503
// database_unavailable with Retry-After, never 500; the Go client waits
// and retries; once the database is back, the same requests are accepted.
// The database is a throwaway cluster of the test's own, really stopped.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	cluster, err := pgcluster.Start(ctx, &pgcluster.Config{Logf: t.Logf})
	require.NoError(t, err, "this test needs the PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })

	db, err := pgxpool.New(ctx, cluster.URL()+"&pool_max_conns=2")
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, migrations.Migrate(ctx, db))

	const key = "unavailable-admin-key-0123456789"
	srv, err := server.New(ctx, &server.Config{
		DatabaseURL:          cluster.URL() + "&connect_timeout=2",
		Addr:                 "127.0.0.1:0",
		EncryptionKey:        keyring.Generate(),
		BootstrapAdminKey:    key,
		AllowPrivateNetworks: true,
		API:                  true,
		DBMaxConns:           4,
		ShutdownTimeout:      2 * time.Second,
	}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	base := "http://" + srv.Addr()

	n := 0
	post := func(path string) (int, http.Header, map[string]map[string]string) {
		t.Helper()
		n++
		ev := fmt.Sprintf(`{"account_id":"acct_unavailable","type":"order.created","data":{"n":%d},"idempotency_key":"k-%d"}`, n, n)
		body := ev
		if path == "/v1/events/batch" {
			body = `{"events":[` + ev + `]}`
		}
		req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewBufferString(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]map[string]string
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, resp.Header, out
	}
	requireUnavailable := func(path string) {
		t.Helper()
		status, h, out := post(path)
		require.Equal(t, http.StatusServiceUnavailable, status, "%s: %v", path, out)
		require.Equal(t, "database_unavailable", out["error"]["code"])
		require.Equal(t, "2", h.Get("Retry-After"))
	}

	status, _, out := post("/v1/events")
	require.Equal(t, http.StatusAccepted, status, "%v", out)

	t.Run("Stopped", func(t *testing.T) {
		require.NoError(t, cluster.Halt(ctx))
		// The pool's connections were cut by the shutdown and new ones
		// are refused: both are 503, on every try.
		for range 3 {
			requireUnavailable("/v1/events")
			requireUnavailable("/v1/events/batch")
		}

		// The Go client retries the 503s, waiting as Retry-After asks,
		// and gets its event in once the database is back (brought back
		// when the client has had its first 503).
		answers := &answerLog{first503: make(chan struct{})}
		c, err := client.New(base, key, &client.Config{MaxRetries: 10, HTTPClient: &http.Client{Transport: answers}})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := c.SendEvent(ctx, &client.EventParams{AccountID: "acct_unavailable", Type: "order.created", Data: map[string]int{"n": 0}})
			done <- err
		}()
		waitClosed(t, answers.first503, "503 to the client")
		require.NoError(t, cluster.Resume(ctx))
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("the client's retries did not get the event in within 30 s of the restart")
		}
		got := answers.all()
		require.GreaterOrEqual(t, len(got), 2, "%+v", got)
		require.Equal(t, http.StatusServiceUnavailable, got[0].status)
		require.Equal(t, http.StatusAccepted, got[len(got)-1].status)
		for i := 1; i < len(got); i++ {
			if got[i-1].status == http.StatusServiceUnavailable {
				require.GreaterOrEqual(t, got[i].start.Sub(got[i-1].end), 2*time.Second, "attempt %d came sooner than the Retry-After of the 503 before it", i+1)
			}
		}

		status, _, out := post("/v1/events")
		require.Equal(t, http.StatusAccepted, status, "%v", out)
		status, _, out = post("/v1/events/batch")
		require.Equal(t, http.StatusAccepted, status, "%v", out)
	})

	t.Run("ReadOnly", func(t *testing.T) {
		// What a standby being promoted answers: 25006 on every write.
		_, err := db.Exec(ctx, `ALTER SYSTEM SET default_transaction_read_only = on`)
		require.NoError(t, err)
		_, err = db.Exec(ctx, `SELECT pg_reload_conf()`)
		require.NoError(t, err)
		testwait.For(t, 10*time.Second, func() (bool, string) {
			status, _, out := post("/v1/events")
			return status == http.StatusServiceUnavailable, fmt.Sprintf("%d %v", status, out)
		})
		requireUnavailable("/v1/events")
		requireUnavailable("/v1/events/batch")

		conn, err := db.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		for _, sql := range []string{`SET default_transaction_read_only = off`, `ALTER SYSTEM RESET default_transaction_read_only`, `SELECT pg_reload_conf()`} {
			_, err = conn.Exec(ctx, sql)
			require.NoError(t, err)
		}
		testwait.For(t, 10*time.Second, func() (bool, string) {
			status, _, out := post("/v1/events")
			return status == http.StatusAccepted, fmt.Sprintf("%d %v", status, out)
		})
	})
}

// answerLog is a transport that records when each attempt was sent and
// answered, and with what status, and closes first503 at the first 503.
type answerLog struct {
	mu       sync.Mutex
	answers  []answer
	first503 chan struct{}
	once     sync.Once
}

type answer struct {
	start, end time.Time
	status     int // 0: no answer
}

func (l *answerLog) RoundTrip(r *http.Request) (*http.Response, error) {
	a := answer{start: time.Now()}
	resp, err := http.DefaultTransport.RoundTrip(r)
	a.end = time.Now()
	if err == nil {
		a.status = resp.StatusCode
	}
	l.mu.Lock()
	l.answers = append(l.answers, a)
	l.mu.Unlock()
	if a.status == http.StatusServiceUnavailable {
		l.once.Do(func() { close(l.first503) })
	}
	return resp, err
}

func (l *answerLog) all() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]answer(nil), l.answers...)
}
