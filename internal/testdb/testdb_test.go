package testdb

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		pool *pgxpool.Pool
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{pool: New(t)}
	}

	tableExists := func(t *testing.T, pool *pgxpool.Pool, table string) bool {
		t.Helper()
		var name *string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT to_regclass($1)::text", table).Scan(&name))
		return name != nil
	}

	t.Run("MigrationsApplied", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		require.True(t, tableExists(t, bundle.pool, "river_job"), "River's tables")
		require.True(t, tableExists(t, bundle.pool, "deliveries"), "our tables")

		var dbName string
		require.NoError(t, bundle.pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&dbName))
		require.True(t, strings.HasPrefix(dbName, DatabasePrefix), dbName)
	})

	t.Run("Isolated", func(t *testing.T) {
		t.Parallel()
		a, b := setup(t), setup(t)

		_, err := a.pool.Exec(t.Context(), "CREATE TABLE only_in_a (id int)")
		require.NoError(t, err)

		require.True(t, tableExists(t, a.pool, "only_in_a"))
		require.False(t, tableExists(t, b.pool, "only_in_a"))
	})

	t.Run("DroppedAfterTest", func(t *testing.T) {
		t.Parallel()

		var name string
		t.Run("Inner", func(t *testing.T) {
			pool := New(t)
			require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name))
		})

		admin, err := pgx.Connect(t.Context(), BaseURL())
		require.NoError(t, err)
		defer admin.Close(context.Background())
		exists, err := databaseExists(t.Context(), admin, name)
		require.NoError(t, err)
		require.False(t, exists, "database %s outlived its test", name)
	})

	t.Run("NewURL", func(t *testing.T) {
		t.Parallel()

		dbURL := NewURL(t)
		conn, err := pgx.Connect(t.Context(), dbURL)
		require.NoError(t, err)
		// Left open on purpose: the DROP ... WITH (FORCE) in cleanup ends it.
		var n int
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM river_job").Scan(&n))
		require.Zero(t, n)
	})

	t.Run("TemplateBuilt", func(t *testing.T) {
		t.Parallel()
		_ = setup(t)

		admin, err := pgx.Connect(t.Context(), BaseURL())
		require.NoError(t, err)
		defer admin.Close(context.Background())

		var allowConn bool
		require.NoError(t, admin.QueryRow(t.Context(),
			"SELECT datallowconn FROM pg_database WHERE datname = $1", TemplateName()).Scan(&allowConn))
		require.False(t, allowConn, "nobody may connect to the template")

		exists, err := databaseExists(t.Context(), admin, TemplateName()+"_build")
		require.NoError(t, err)
		require.False(t, exists, "the build database is renamed, not left behind")
	})
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name, in, want string
	}{
		{"URL", "postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/db1?sslmode=disable"},
		{"URLNoPath", "postgresql://h", "postgresql://h/db1"},
		{"KeywordValue", "host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=db1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := withDatabase(tt.in, "db1")
			require.NoError(t, err)
			require.Equal(t, tt.want, got)

			cfg, err := pgx.ParseConfig(got)
			require.NoError(t, err)
			require.Equal(t, "db1", cfg.Database)
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()

	require.Equal(t, "postgres://u:xxxxx@h/db", redact("postgres://u:secret@h/db"))
	require.Equal(t, DefaultURL, redact(DefaultURL))
	require.NotContains(t, redact("host=h password=secret"), "secret")
}

func TestTx(t *testing.T) {
	t.Parallel()

	// count counts the webhooks with id, as db sees them.
	count := func(t *testing.T, db interface {
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}, id string) int {
		t.Helper()
		var n int
		require.NoError(t, db.QueryRow(t.Context(), "SELECT count(*) FROM webhooks WHERE id = $1", id).Scan(&n))
		return n
	}
	insert := func(t *testing.T, tx pgx.Tx, id string) {
		t.Helper()
		_, err := tx.Exec(t.Context(), `INSERT INTO webhooks (id, account_id, url, url_normalized, secret_ciphertext, secret_key_id)
VALUES ($1, 'acct_tx', 'https://example.com/' || $1, 'https://example.com/' || $1, 'x', 'k')`, id)
		require.NoError(t, err)
	}

	t.Run("SharedDatabase", func(t *testing.T) {
		t.Parallel()
		tx := Tx(t)
		var dbName string
		require.NoError(t, tx.QueryRow(t.Context(), "SELECT current_database()").Scan(&dbName))
		require.Equal(t, sharedName(), dbName)
		require.True(t, strings.HasPrefix(dbName, SharedPrefix), dbName)

		var partitions int
		require.NoError(t, tx.QueryRow(t.Context(), `SELECT count(*) FROM unnest(ARRAY['events', 'deliveries', 'attempts']) AS t,
  generate_series(-1, 1) AS g
WHERE to_regclass(t || '_p' || to_char((now() AT TIME ZONE 'UTC')::date + g, 'YYYYMMDD')) IS NOT NULL`).Scan(&partitions))
		require.Equal(t, 9, partitions, "yesterday's, today's and tomorrow's partitions")
	})

	t.Run("RolledBack", func(t *testing.T) {
		t.Parallel()
		id := "wh_tx_" + randomHex(8)
		t.Run("Inner", func(t *testing.T) {
			tx := Tx(t)
			insert(t, tx, id)
			require.Equal(t, 1, count(t, tx, id))
		})
		require.Zero(t, count(t, Tx(t), id), "the inner test's row outlived it")
	})

	t.Run("Isolated", func(t *testing.T) {
		t.Parallel()
		a, b := Tx(t), Tx(t)
		id := "wh_tx_" + randomHex(8)
		insert(t, a, id)
		require.Equal(t, 1, count(t, a, id))
		require.Zero(t, count(t, b, id), "another test's transaction sees the row")
	})
}
