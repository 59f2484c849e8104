package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/pgcluster"
	"github.com/mono/webhookd/internal/server"
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
		// and gets its event in once the database is back.
		c, err := client.New(base, key, &client.Config{MaxRetries: 10})
		require.NoError(t, err)
		done := make(chan error, 1)
		started := time.Now()
		go func() {
			_, err := c.SendEvent(ctx, &client.EventParams{AccountID: "acct_unavailable", Type: "order.created", Data: map[string]int{"n": 0}})
			done <- err
		}()
		time.Sleep(1500 * time.Millisecond)
		require.NoError(t, cluster.Resume(ctx))
		select {
		case err := <-done:
			require.NoError(t, err)
			require.GreaterOrEqual(t, time.Since(started), 1500*time.Millisecond)
		case <-time.After(30 * time.Second):
			t.Fatal("the client's retries did not get the event in within 30 s of the restart")
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
		require.Eventually(t, func() bool {
			status, _, _ := post("/v1/events")
			return status == http.StatusServiceUnavailable
		}, 10*time.Second, 50*time.Millisecond)
		requireUnavailable("/v1/events")
		requireUnavailable("/v1/events/batch")

		conn, err := db.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		for _, sql := range []string{`SET default_transaction_read_only = off`, `ALTER SYSTEM RESET default_transaction_read_only`, `SELECT pg_reload_conf()`} {
			_, err = conn.Exec(ctx, sql)
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool {
			status, _, _ := post("/v1/events")
			return status == http.StatusAccepted
		}, 10*time.Second, 50*time.Millisecond)
	})
}
