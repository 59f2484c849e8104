package testdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// SharedPrefix starts the name of the database Tx's transactions run
	// in, webhookd_shared_<the template's hash>.
	SharedPrefix = "webhookd_shared_"

	// sharedLockKey is the advisory lock that keeps the shared database's
	// day partitions from being created under a test's transaction: each
	// transaction holds it shared, ensureDays exclusively.
	sharedLockKey int64 = 0x7765_6268_6b73_6872 // "webhkshr"

	// sharedMaxConns bounds the connections each test process opens to the
	// shared database (one per running test; more tests wait for one).
	sharedMaxConns = 4
)

// shared is the per-process pool on the shared database, opened by the first
// Tx and never closed (its connections end with the process).
var shared struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

// Tx returns a transaction on a database shared by every test, rolled back
// when the test ends, for tests of functions that take a store.DB (a pool,
// a connection or a pgx.Tx) and run on one session. It costs a BEGIN where
// New costs a CREATE DATABASE.
//
// The database is webhookd_shared_<hash of the migrations>, cloned once
// from the template (by the first test that needs it, in any process) and
// left in place like the template; each process makes sure it has the day
// partitions of yesterday, today and tomorrow, as New does. Nothing a test
// does through the transaction is ever seen by another test. So:
//
//   - never commit it (Tx's cleanup fails the test if it was ended early:
//     committed rows would stay for every later test, in every later run);
//     a function under test that begins its own transaction gets a
//     savepoint, and its commit releases it;
//   - now() is the transaction's start for the whole test;
//   - sequences (attempt ids, River's job ids) are not rolled back: don't
//     assert their values;
//   - rows with the same key (a webhook id, a URL of an account) as another
//     running test's wait for that test to end: give a test's rows ids of
//     its own.
//
// Tests that can't use it take New: those that need
//   - partition DDL (creating, attaching or dropping a day's partition), or
//     planner statistics of a table of their own: DDL in one test's
//     transaction would lock a table every other test uses, and a plan
//     depends on what the whole database holds;
//   - FOR UPDATE SKIP LOCKED, several sessions, or lock timing
//     (lock_timeout, a statement waiting for another's lock): one
//     transaction is one session, and no other session sees its rows to
//     lock or wait for;
//   - several goroutines on the database at once (a pgx.Tx serves one at
//     a time: the metrics collectors, which Prometheus runs in parallel);
//   - the pool itself (its size, prewarming, its settings), River (a
//     client, its jobs' commits and notifications), LISTEN/NOTIFY, or a
//     server: all of these commit or open sessions of their own.
func Tx(t testing.TB) pgx.Tx {
	t.Helper()
	shared.once.Do(func() { shared.pool, shared.err = openShared() })
	if shared.err != nil {
		t.Fatalf("testdb: %v", shared.err)
	}

	// Begin waits for a connection while sharedMaxConns tests hold them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := shared.pool.Begin(ctx)
	if err != nil {
		t.Fatalf("testdb: error beginning a transaction on the shared database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := tx.Rollback(ctx); err != nil {
			if errors.Is(err, pgx.ErrTxClosed) {
				t.Errorf("testdb: the test ended its shared transaction itself (if it committed, its rows stay in %s for every later test)", sharedName())
				return
			}
			t.Errorf("testdb: error rolling back the shared transaction: %v", err)
		}
	})
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", sharedLockKey); err != nil {
		t.Fatalf("testdb: error locking the shared database's partitions: %v", err)
	}
	return tx
}

// sharedName returns the name of the shared database for the migrations
// compiled into this binary.
func sharedName() string {
	return SharedPrefix + strings.TrimPrefix(TemplateName(), TemplatePrefix)
}

// openShared makes sure the shared database exists, with today's
// partitions, and opens this process's pool on it.
func openShared() (*pgxpool.Pool, error) {
	base := BaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), templateTimeout)
	defer cancel()

	admin, err := connect(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("can't reach PostgreSQL at %s: %w\n%s", redact(base), err, howToStart)
	}
	defer admin.Close(context.Background())

	template.once.Do(func() {
		template.name, template.err = ensureTemplate(ctx, admin, base)
	})
	if template.err != nil {
		return nil, fmt.Errorf("error preparing template database on %s: %w", redact(base), template.err)
	}

	name := sharedName()
	if err := ensureShared(ctx, admin, name, template.name); err != nil {
		return nil, err
	}
	dbURL, err := withDatabase(base, name)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("error parsing URL of %s: %w", name, err)
	}
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	cfg.MaxConns = sharedMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("error connecting to %s: %w", name, err)
	}

	// The day partitions, made while no test's transaction is open (each
	// holds sharedLockKey shared): a partition's creation locks the
	// default partition that a transaction may be writing to.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("error connecting to %s: %w", name, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", sharedLockKey); err != nil {
		pool.Close()
		return nil, fmt.Errorf("error locking %s's partitions: %w", name, err)
	}
	err = ensureDays(ctx, dbURL)
	if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", sharedLockKey); uerr != nil && err == nil {
		err = fmt.Errorf("error unlocking %s's partitions: %w", name, uerr)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// ensureShared clones the template into the shared database unless it
// exists. admin is connected to the base database.
func ensureShared(ctx context.Context, admin *pgx.Conn, name, tmpl string) error {
	// The template's lock: one process creates it, the others find it.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("error taking template lock: %w", err)
	}
	defer func() {
		_, _ = admin.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLockKey)
	}()
	exists, err := databaseExists(ctx, admin, name)
	if err != nil || exists {
		return err
	}
	return createDatabase(ctx, admin, name, tmpl)
}
