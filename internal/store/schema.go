package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mono/webhookd/migrations"
)

// ErrNotMigrated means a schema's version table does not exist: its
// migrations were never run on this database.
var ErrNotMigrated = errors.New("schema not migrated")

// SchemaBehindError is a schema older than this webhookd needs.
type SchemaBehindError struct {
	// Schema is "webhookd" or "River".
	Schema     string
	Have, Want int
}

func (e *SchemaBehindError) Error() string {
	name := "the webhookd schema"
	if e.Schema == "River" {
		name = "River's schema"
	}
	return fmt.Sprintf("%s is at version %d, this webhookd needs %d: run `webhookd migrate`", name, e.Have, e.Want)
}

const (
	schemaVersionQuery = `SELECT version FROM ` + migrations.VersionTable
	riverVersionQuery  = `SELECT coalesce(max(version), 0) FROM river_migration WHERE line = 'main'`
)

// CheckSchema checks webhookd's own schema on db: nil when it is at
// migrations.Latest() (or newer), ErrNotMigrated without its version
// table, a *SchemaBehindError when older, and any other error as it is.
// The server's start and GET /readyz both check with it.
func CheckSchema(ctx context.Context, db DB) error {
	var version int32
	err := db.QueryRow(ctx, schemaVersionQuery).Scan(&version)
	return checkVersion(err, "webhookd", int(version), int(migrations.Latest()))
}

// CheckRiverSchema checks River's schema (its main line) on db against
// want, the newest River migration this binary applies, as CheckSchema
// does.
func CheckRiverSchema(ctx context.Context, db DB, want int) error {
	var version int
	err := db.QueryRow(ctx, riverVersionQuery).Scan(&version)
	return checkVersion(err, "River", version, want)
}

func checkVersion(err error, schema string, have, want int) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return fmt.Errorf("%w: %w", ErrNotMigrated, err)
	case err != nil:
		return err
	case have < want:
		return &SchemaBehindError{Schema: schema, Have: have, Want: want}
	}
	return nil
}
