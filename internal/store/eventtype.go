package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrDuplicateEventType means the catalogue already has the event type.
var ErrDuplicateEventType = errors.New("the event type is already registered")

// EventType is an event_types row: one entry of the event catalogue.
type EventType struct {
	Type        string
	Description string
	// Schema is the JSON Schema of the event's data, compacted JSON.
	Schema []byte
	// Example is an example of the event's data, compacted JSON.
	Example []byte
	// Validate makes enqueue refuse data that does not match Schema.
	Validate     bool
	DeprecatedAt *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const eventTypeColumns = `type, description, schema::text, example::text, validate, deprecated_at, created_at, updated_at`

func scanEventType(row pgx.Row) (*EventType, error) {
	et := &EventType{}
	var schema, example string
	err := row.Scan(&et.Type, &et.Description, &schema, &example, &et.Validate, &et.DeprecatedAt, &et.CreatedAt, &et.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	et.Schema, et.Example = []byte(schema), []byte(example)
	return et, err
}

const eventTypeInsert = `
INSERT INTO event_types (type, description, schema, example, validate, created_at, updated_at)
VALUES ($1, $2, $3::text::json, $4::text::json, $5, $6, $6)`

// InsertEventType registers et (CreatedAt is used for both times). A type
// already registered gives ErrDuplicateEventType.
func InsertEventType(ctx context.Context, db DB, et *EventType) error {
	_, err := db.Exec(ctx, eventTypeInsert, et.Type, et.Description, string(et.Schema), string(et.Example), et.Validate, et.CreatedAt)
	if IsUniqueViolation(err) {
		return ErrDuplicateEventType
	}
	return err
}

const eventTypeGet = `SELECT ` + eventTypeColumns + ` FROM event_types WHERE type = $1`

// GetEventType returns the event type, or ErrNotFound.
func GetEventType(ctx context.Context, db DB, eventType string) (*EventType, error) {
	return scanEventType(db.QueryRow(ctx, eventTypeGet, eventType))
}

const eventTypeGetForUpdate = eventTypeGet + ` FOR UPDATE`

// GetEventTypeForUpdate is GetEventType, locking the row until tx ends.
func GetEventTypeForUpdate(ctx context.Context, tx pgx.Tx, eventType string) (*EventType, error) {
	return scanEventType(tx.QueryRow(ctx, eventTypeGetForUpdate, eventType))
}

const eventTypeList = `SELECT ` + eventTypeColumns + ` FROM event_types ORDER BY type`

// ListEventTypes returns the whole catalogue, by type name.
func ListEventTypes(ctx context.Context, db DB) ([]*EventType, error) {
	return queryEventTypes(ctx, db, eventTypeList)
}

const eventTypeListValidated = `SELECT ` + eventTypeColumns + ` FROM event_types WHERE validate ORDER BY type`

// ListValidatedEventTypes returns the event types whose data enqueue
// validates (usually none, or a few).
func ListValidatedEventTypes(ctx context.Context, db DB) ([]*EventType, error) {
	return queryEventTypes(ctx, db, eventTypeListValidated)
}

func queryEventTypes(ctx context.Context, db DB, query string) ([]*EventType, error) {
	rows, err := db.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*EventType
	for rows.Next() {
		et, err := scanEventType(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, et)
	}
	return out, rows.Err()
}

const eventTypeUpdate = `
UPDATE event_types
SET description = $2, schema = $3::text::json, example = $4::text::json, validate = $5, deprecated_at = $6, updated_at = $7
WHERE type = $1`

// UpdateEventType writes every field of et but CreatedAt, or returns
// ErrNotFound.
func UpdateEventType(ctx context.Context, db DB, et *EventType) error {
	tag, err := db.Exec(ctx, eventTypeUpdate, et.Type, et.Description, string(et.Schema), string(et.Example), et.Validate, et.DeprecatedAt, et.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
