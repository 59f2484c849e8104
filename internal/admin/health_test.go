package admin_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/migrations"
)

// newAPI is the API alone (no workers) on pool, whatever its schema, for
// tests that need a database server.New would refuse or a logger of their
// own.
func newAPI(t *testing.T, pool *pgxpool.Pool, logger *zap.Logger) *admin.API {
	t.Helper()
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	api, err := admin.New(pool, enqueuer, keys, &admin.Config{BootstrapAdminKey: adminKey, Logger: logger})
	require.NoError(t, err)
	return api
}

// emptyDatabase creates a database with no migrations at all, dropped when
// the test ends, and returns a pool on it.
func emptyDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testdb.BaseURL())
	require.NoError(t, err, "PostgreSQL must be running (see internal/testdb)")
	defer conn.Close(ctx)

	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := testdb.DatabasePrefix + "empty_" + hex.EncodeToString(b)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), testdb.BaseURL())
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		require.NoError(t, err)
	})

	cfg, err := pgxpool.ParseConfig(testdb.BaseURL())
	require.NoError(t, err)
	cfg.ConnConfig.Database = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // registered last, so it runs before the DROP
	return pool
}

type readyBody struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
}

// readyz calls GET /readyz without a key on an API over pool.
func readyz(t *testing.T, pool *pgxpool.Pool) (int, readyBody) {
	t.Helper()
	srv := httptest.NewServer(newAPI(t, pool, nil).Handler())
	defer srv.Close()
	b := &testBundle{baseURL: srv.URL, client: srv.Client()}
	resp := b.do(t, request{method: http.MethodGet, path: "/readyz", auth: noAuth})
	var out readyBody
	jsonBody(t, resp, resp.status, &out)
	return resp.status, out
}

func TestReadyz(t *testing.T) {
	t.Parallel()

	t.Run("Ready", func(t *testing.T) {
		t.Parallel()

		status, out := readyz(t, testdb.New(t))
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, readyBody{Status: "ready"}, out)
	})

	t.Run("NotMigrated", func(t *testing.T) {
		t.Parallel()

		status, out := readyz(t, emptyDatabase(t))
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, "not_ready", out.Status)
		require.Len(t, out.Reasons, 2)
		require.Contains(t, out.Reasons[0], migrations.VersionTable)
		require.Contains(t, out.Reasons[0], "webhookd migrate")
		require.Contains(t, out.Reasons[1], "river_migration")
	})

	t.Run("SchemaBehind", func(t *testing.T) {
		t.Parallel()

		pool := testdb.New(t)
		_, err := pool.Exec(context.Background(), "UPDATE "+migrations.VersionTable+" SET version = version - 1")
		require.NoError(t, err)
		status, out := readyz(t, pool)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, "not_ready", out.Status)
		require.Len(t, out.Reasons, 1)
		require.Contains(t, out.Reasons[0], fmt.Sprintf("at version %d, this webhookd needs %d", migrations.Latest()-1, migrations.Latest()))
		require.Contains(t, out.Reasons[0], "webhookd migrate")

		// River's schema is checked too.
		_, err = pool.Exec(context.Background(), "DELETE FROM river_migration WHERE version = (SELECT max(version) FROM river_migration)")
		require.NoError(t, err)
		status, out = readyz(t, pool)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Len(t, out.Reasons, 2)
		require.Contains(t, out.Reasons[1], "River's schema is at version")
	})

	t.Run("DatabaseDown", func(t *testing.T) {
		t.Parallel()

		// Nothing listens on port 1; the reason must not leak the
		// connection details.
		pool, err := pgxpool.New(context.Background(), "postgres://secretuser:secretpass@127.0.0.1:1/secretdb?connect_timeout=1")
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		start := time.Now()
		status, out := readyz(t, pool)
		require.Less(t, time.Since(start), admin.ReadyTimeout+time.Second)
		require.Equal(t, http.StatusServiceUnavailable, status)
		require.Equal(t, "not_ready", out.Status)
		require.Len(t, out.Reasons, 1)
		require.Contains(t, out.Reasons[0], "can't be reached")
		for _, secret := range []string{"secretuser", "secretpass", "secretdb", "127.0.0.1"} {
			require.NotContains(t, out.Reasons[0], secret)
		}
	})
}
