// Package migrations holds webhookd's schema as embedded SQL and applies it,
// together with River's own migrations, to a PostgreSQL database.
//
// Our migrations are applied with github.com/jackc/tern/v2 (version table
// webhookd_schema_version); River's tables are created with rivermigrate,
// never copied. Applying them twice is a no-op.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table in which tern records our schema version.
const VersionTable = "webhookd_schema_version"

// Result says what Migrate applied.
type Result struct {
	// RiverVersions are the River migration versions applied by this run.
	RiverVersions []int
	// FromVersion and ToVersion are our schema versions before and after.
	FromVersion, ToVersion int32
}

// Migrate applies River's migrations and then ours. It is safe to run
// concurrently (both migrators take advisory locks) and a no-op when the
// database is current.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := MigrateWithResult(ctx, pool)
	return err
}

// MigrateWithResult is Migrate returning what it applied.
func MigrateWithResult(ctx context.Context, pool *pgxpool.Pool) (*Result, error) {
	res := &Result{}

	riverMigrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("error creating River migrator: %w", err)
	}
	riverRes, err := riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("error applying River migrations: %w", err)
	}
	for _, v := range riverRes.Versions {
		res.RiverVersions = append(res.RiverVersions, v.Version)
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("error acquiring connection for migrations: %w", err)
	}
	defer conn.Release()

	migrator, err := migrate.NewMigrator(ctx, conn.Conn(), VersionTable)
	if err != nil {
		return nil, fmt.Errorf("error creating migrator: %w", err)
	}
	if err := migrator.LoadMigrations(files); err != nil {
		return nil, fmt.Errorf("error loading migrations: %w", err)
	}
	if res.FromVersion, err = migrator.GetCurrentVersion(ctx); err != nil {
		return nil, fmt.Errorf("error reading schema version: %w", err)
	}
	if err := migrator.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("error applying migrations: %w", err)
	}
	if res.ToVersion, err = migrator.GetCurrentVersion(ctx); err != nil {
		return nil, fmt.Errorf("error reading schema version: %w", err)
	}
	return res, nil
}

// Latest is the highest schema version embedded in this binary.
func Latest() int32 {
	names, _ := fs.Glob(files, "*.sql")
	return int32(len(names))
}

// Fingerprint is a hash of every embedded migration (ours and River's
// version count), so a test template database built from an older schema is
// never reused.
func Fingerprint() string {
	names, _ := fs.Glob(files, "*.sql")
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		b, _ := files.ReadFile(name)
		h.Write([]byte(name))
		h.Write(b)
	}
	riverMigrator, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err == nil {
		for _, m := range riverMigrator.AllVersions() {
			fmt.Fprintf(h, "river:%d:%s", m.Version, m.SQLUp)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
