// Package testdb gives each test its own PostgreSQL database, with every
// migration (ours and River's) already applied, and drops it when the test
// ends (New, NewURL); or, for a test of store functions on one session, a
// transaction on a database all tests share, rolled back when the test ends
// (Tx, which says which tests may not use it).
//
// The server is the one named by TEST_DATABASE_URL, else DATABASE_URL, else
// postgres://postgres@127.0.0.1:5432/postgres. The role needs CREATEDB.
// `make test` sets TEST_DATABASE_URL, starting a throwaway server if none is
// running. A server that can't be reached fails the test; it is never skipped.
//
// Databases are cloned from a template, webhookd_tmpl_<hash of the
// migrations>, which the first test of a process builds (or finds built by an
// earlier run), so a test pays for a CREATE DATABASE, not for the migrations.
// A change to any migration gives a new template name; old templates are left
// in place and can be dropped by hand.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mono/webhookd/migrations"
)

const (
	// DefaultURL is the server tried when neither TEST_DATABASE_URL nor
	// DATABASE_URL is set.
	DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

	// DatabasePrefix starts the name of every per-test database.
	DatabasePrefix = "webhookd_test_"

	// TemplatePrefix starts the name of every template database.
	TemplatePrefix = "webhookd_tmpl_"

	// templateLockKey is the pg_advisory_lock key that serialises template
	// builds across test processes (go test runs packages in parallel).
	templateLockKey int64 = 0x7765_6268_6b74_6d70 // "webhktmp"

	// connectTimeout bounds each connection attempt to the server.
	connectTimeout = 5 * time.Second

	// templateTimeout bounds building the template.
	templateTimeout = 3 * time.Minute

	// createAttempts is how many times CREATE DATABASE is tried when the
	// template is busy (SQLSTATE 55006).
	createAttempts = 10
)

// howToStart is appended to every can't-connect failure.
const howToStart = `Start PostgreSQL with one of:
  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  make test    (runs the tests against a throwaway cluster if none is running)
or point TEST_DATABASE_URL at a server whose role may CREATE DATABASE.`

// template is the per-process cache of the template database: built once,
// then cloned by every test. A process-wide value because the template is a
// process-wide (indeed server-wide) resource.
var template struct {
	once sync.Once
	name string
	err  error
}

// New returns a pool connected to a fresh, fully migrated database of its own.
// The pool is closed and the database dropped when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()

	dbURL := NewURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("testdb: error connecting to test database: %v", err)
	}
	// Registered after NewURL's cleanup, so it runs before the DROP.
	t.Cleanup(pool.Close)
	return pool
}

// NewURL creates a fresh, fully migrated database and returns its connection
// URL, for tests that hand the database to a subprocess or build their own
// pool. The database is dropped when the test ends; close every connection
// to it before then or they are terminated.
func NewURL(t testing.TB) string {
	t.Helper()

	base := BaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), templateTimeout)
	defer cancel()

	admin, err := connect(ctx, base)
	if err != nil {
		t.Fatalf("testdb: can't reach PostgreSQL at %s: %v\n%s", redact(base), err, howToStart)
	}
	defer admin.Close(context.Background())

	template.once.Do(func() {
		template.name, template.err = ensureTemplate(ctx, admin, base)
	})
	if template.err != nil {
		t.Fatalf("testdb: error preparing template database on %s: %v", redact(base), template.err)
	}

	name := DatabasePrefix + randomHex(8)
	if err := createDatabase(ctx, admin, name, template.name); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(base, name); err != nil {
			t.Errorf("testdb: %v", err)
		}
	})

	dbURL, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	if err := ensureDays(ctx, dbURL); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return dbURL
}

// ensureDays gives a new database the day partitions of yesterday, today
// and tomorrow (UTC), whatever day its template was built on: otherwise a
// test run past midnight puts today's rows in the default partitions, and
// a server starting in the test moves them out while the test works on
// them. The day after tomorrow is left to the server's retention job, so
// that tests can still see it create one.
func ensureDays(ctx context.Context, dbURL string) error {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `SELECT webhookd_ensure_partition(t, (now() AT TIME ZONE 'UTC')::date + g)
FROM unnest(ARRAY['events', 'deliveries', 'attempts']) AS t, generate_series(-1, 1) AS g`)
	if err != nil {
		return fmt.Errorf("error creating the day partitions: %w", err)
	}
	return nil
}

// BaseURL returns the URL of the server and database tests connect to for
// administration: TEST_DATABASE_URL, else DATABASE_URL, else DefaultURL.
func BaseURL() string {
	for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return DefaultURL
}

// TemplateName returns the name of the template database for the migrations
// compiled into this binary.
func TemplateName() string {
	sum := sha256.Sum256([]byte(migrations.Fingerprint()))
	return TemplatePrefix + hex.EncodeToString(sum[:])[:12]
}

// ensureTemplate makes sure the template database exists, building it if
// needed, and returns its name. admin is connected to the base database.
func ensureTemplate(ctx context.Context, admin *pgx.Conn, base string) (string, error) {
	name := TemplateName()

	// Advisory locks are per database: every process locks in the base one.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return "", fmt.Errorf("error taking template lock: %w", err)
	}
	defer func() {
		_, _ = admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLockKey)
	}()

	exists, err := databaseExists(ctx, admin, name)
	if err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}

	// Build under another name and rename at the end, so a build that dies
	// half-way never leaves a template that looks finished.
	build := name + "_build"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(build)+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("error dropping leftover %s: %w", build, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(build)); err != nil {
		return "", fmt.Errorf("error creating %s: %w", build, err)
	}
	if err := migrate(ctx, base, build); err != nil {
		return "", err
	}
	// Nobody may connect to the template from now on: CREATE DATABASE ...
	// TEMPLATE fails while anyone is connected to it.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident(build)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("error closing %s to connections: %w", build, err)
	}
	if err := retryInUse(ctx, func() error {
		_, err := admin.Exec(ctx, "ALTER DATABASE "+ident(build)+" RENAME TO "+ident(name))
		return err
	}); err != nil {
		return "", fmt.Errorf("error renaming %s to %s: %w", build, name, err)
	}
	return name, nil
}

// migrate applies every migration to database name on the base server.
func migrate(ctx context.Context, base, name string) error {
	dbURL, err := withDatabase(base, name)
	if err != nil {
		return err
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("error parsing URL of %s: %w", name, err)
	}
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("error connecting to %s: %w", name, err)
	}
	// Closing the pool closes its connections, so none is left on the
	// template when it is renamed and cloned.
	defer pool.Close()

	if err := migrations.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("error migrating %s: %w", name, err)
	}
	return nil
}

// createDatabase clones the template into a new database.
func createDatabase(ctx context.Context, admin *pgx.Conn, name, tmpl string) error {
	err := retryInUse(ctx, func() error {
		_, err := admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(tmpl))
		return err
	})
	if err != nil {
		return fmt.Errorf("error creating database %s from %s: %w", name, tmpl, err)
	}
	return nil
}

// dropDatabase drops a test database, terminating any session still in it.
// It uses a connection of its own: the test's context is gone by now.
func dropDatabase(base, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := connect(ctx, base)
	if err != nil {
		return fmt.Errorf("error connecting to drop database %s: %w", name, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("error dropping database %s: %w", name, err)
	}
	return nil
}

// databaseExists reports whether a database called name exists.
func databaseExists(ctx context.Context, admin *pgx.Conn, name string) (bool, error) {
	var exists bool
	err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("error looking up database %s: %w", name, err)
	}
	return exists, nil
}

// retryInUse runs f until it succeeds, fails with anything but
// object_in_use (55006: someone is connected to the database involved, often
// a backend that has not quite exited yet), or runs out of attempts.
func retryInUse(ctx context.Context, f func() error) error {
	var err error
	for attempt := 1; attempt <= createAttempts; attempt++ {
		err = f()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	return err
}

// connect opens a single connection with a bounded connect timeout.
func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("error parsing database URL: %w", err)
	}
	cfg.ConnectTimeout = connectTimeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("error connecting: %w", err)
	}
	return conn, nil
}

// withDatabase returns connString pointing at database name instead. It
// accepts both URLs and keyword/value strings ("host=... dbname=...").
func withDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", fmt.Errorf("error parsing database URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In a keyword/value string the last setting of a keyword wins.
	return connString + " dbname=" + name, nil
}

// redact hides the password in a database URL for messages.
func redact(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		if strings.Contains(connString, "password") {
			return "(connection string with password)"
		}
		return connString
	}
	return u.Redacted()
}

// ident quotes a database name for SQL.
func ident(name string) string {
	return pgx.Identifier{name}.Sanitize()
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
