package store

// The API's and the dashboard's reads of deliveries: one with its
// attempts (GetDelivery), the filtered listing and its cursor
// (ListDeliveries).

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/ident"
)

// DeliveryStates are the states a delivery can be in, in the order the
// listing's per-state branches are written (see DeliveryListQuery).
var DeliveryStates = apitype.DeliveryStates

// stateLiterals are the states as SQL literals. The listing names the state
// as a constant, never a parameter, so that the planner can match the
// partial indexes on state (a parameter would hide the value from a cached
// generic plan).
var stateLiterals = map[string]string{
	StatePending:   "'pending'",
	StateSucceeded: "'succeeded'",
	StateDead:      "'dead'",
	StateCancelled: "'cancelled'",
	StatePaused:    "'paused'",
}

// Delivery is a deliveries row, with its attempts and replays when loaded
// by GetDelivery.
type Delivery struct {
	ID            string
	EventID       string
	WebhookID     string
	AccountID     string
	EventType     string
	State         string
	Attempts      int
	Generation    int
	NextAttemptAt *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    *time.Time
	// Test marks a test send (POST /v1/webhooks/{id}/test).
	Test        bool
	AttemptList []AttemptRecord
	Replays     []ReplayRecord
}

const deliveryColumns = `d.id, d.event_id, d.webhook_id, d.account_id, d.event_type, d.state, d.attempts, d.generation, d.next_attempt_at, d.created_at, d.updated_at, d.finished_at, d.test`

func scanDelivery(row pgx.Row) (*Delivery, error) {
	d := &Delivery{}
	err := row.Scan(&d.ID, &d.EventID, &d.WebhookID, &d.AccountID, &d.EventType, &d.State, &d.Attempts, &d.Generation, &d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.FinishedAt, &d.Test)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return d, err
}

const deliveryGet = `SELECT ` + deliveryColumns + `, d.part_day FROM deliveries d WHERE d.id = $1 AND d.part_day BETWEEN $2 AND $3`

const deliveryAttempts = `
SELECT number, generation, counted, scheduled_at, started_at, duration_us, status_code, error_kind, error_message, response_excerpt, signature_t
FROM attempt_log WHERE delivery_id = $1 AND part_day = $2 ORDER BY id`

// GetDelivery returns delivery id with all its attempts and replays, or
// ErrNotFound. From a pool they are read on one snapshot (a read-only
// repeatable-read transaction, its BEGIN sent with the first read), so an
// attempt recorded meanwhile shows with the delivery's state after it or
// not at all; from a transaction, on that transaction's.
func GetDelivery(ctx context.Context, db DB, id string) (*Delivery, error) {
	pool, ok := db.(*pgxpool.Pool)
	if !ok {
		return getDelivery(ctx, db, id)
	}
	tx, err := beginPipelinedWith(ctx, pool, "begin isolation level repeatable read read only")
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only: nothing to keep
	return getDelivery(ctx, tx, id)
}

func getDelivery(ctx context.Context, db DB, id string) (*Delivery, error) {
	d := &Delivery{}
	var partDay time.Time
	err := byID(id, func(lo, hi time.Time) error {
		return db.QueryRow(ctx, deliveryGet, id, lo, hi).Scan(&d.ID, &d.EventID, &d.WebhookID, &d.AccountID, &d.EventType, &d.State, &d.Attempts, &d.Generation, &d.NextAttemptAt, &d.CreatedAt, &d.UpdatedAt, &d.FinishedAt, &d.Test, &partDay)
	})
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, deliveryAttempts, id, partDay)
	if err != nil {
		return nil, err
	}
	d.AttemptList, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (AttemptRecord, error) {
		var a AttemptRecord
		var us int64
		err := row.Scan(&a.Number, &a.Generation, &a.Counted, &a.ScheduledAt, &a.StartedAt, &us, &a.StatusCode, &a.ErrorKind, &a.ErrorMessage, &a.ResponseExcerpt, &a.SignatureT)
		a.Duration = time.Duration(us) * time.Microsecond
		return a, err
	})
	if err != nil {
		return nil, err
	}
	d.Replays, err = deliveryReplays(ctx, db, id)
	return d, err
}

// DeliveryFilter selects deliveries. Empty fields match every delivery.
type DeliveryFilter struct {
	AccountID string
	WebhookID string
	// State is one of DeliveryStates, or empty for all.
	State     string
	EventType string
	EventID   string
	// CreatedAfter and CreatedBefore bound created_at, the delivery's
	// creation time, as a half-open range: CreatedAfter <= created_at <
	// CreatedBefore.
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	// ExceptAccount leaves that account's deliveries out (the internal
	// notification account's, from a listing of every account).
	ExceptAccount string
}

// DeliveryCursor is a position in a listing: the listing continues with
// the deliveries older than it. Deliveries are listed newest first by
// (created_at, id); ids are UUIDv7 and break ties between the deliveries of
// one event, which share created_at. New deliveries sort before every
// cursor already handed out, so they never shift the pages after it.
type DeliveryCursor struct {
	CreatedAt time.Time
	ID        string
}

// ErrInvalidCursor means a string is not a cursor made by
// DeliveryCursor.String.
var ErrInvalidCursor = errors.New("not a delivery cursor")

// maxCursorMicros is 9999-12-31T23:59:59.999999Z: a cursor from beyond
// that was not made by DeliveryCursor.String (and PostgreSQL would refuse
// it as out of range).
const maxCursorMicros = 253402300799999999

// String encodes the cursor as an opaque string, safe in a URL.
func (c DeliveryCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID))
}

// ParseDeliveryCursor decodes a cursor made by DeliveryCursor.String;
// anything else is ErrInvalidCursor.
func ParseDeliveryCursor(s string) (*DeliveryCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrInvalidCursor
	}
	micros, id, ok := strings.Cut(string(raw), ".")
	if !ok || !ident.Valid(ident.Delivery, id) {
		return nil, ErrInvalidCursor
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil || us < 0 || us > maxCursorMicros {
		return nil, ErrInvalidCursor
	}
	return &DeliveryCursor{CreatedAt: time.UnixMicro(us).UTC(), ID: id}, nil
}

// DeliveryListQuery returns the SQL and arguments ListDeliveries runs (the
// benchmark EXPLAINs them). It orders by (created_at, id) descending with
// the cursor as a keyset condition, which the composite indexes of
// migration 3 answer without sorting:
//
//   - a state, a time range and the cursor are index conditions of
//     (account_id, state, created_at, id) and (webhook_id, state, created_at, id);
//   - without a state, one branch per state is read from those indexes and
//     the branches are merged (UNION ALL under ORDER BY ... LIMIT becomes a
//     Merge Append), so the same two indexes serve "every state" too;
//   - an event type uses (account_id, event_type, created_at, id,
//     webhook_id), whose trailing column filters inside the index (callers
//     pass the webhook's account with a webhook id so that it can), each
//     branch's state checked in the row; or the branch reads the first
//     index above and checks the type, whichever the planner finds fewer
//     rows in (state is out of this index since migration 28, so that a
//     success does not split its pages);
//   - dead deliveries of every account use the partial index on them.
func DeliveryListQuery(f *DeliveryFilter, after *DeliveryCursor, limit int) (string, []any, error) {
	var (
		conds []string
		args  []any
	)
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.AccountID != "" {
		conds = append(conds, "d.account_id = "+param(f.AccountID))
	}
	if f.ExceptAccount != "" {
		conds = append(conds, "d.account_id <> "+param(f.ExceptAccount))
	}
	if f.WebhookID != "" {
		conds = append(conds, "d.webhook_id = "+param(f.WebhookID))
	}
	if f.EventType != "" {
		conds = append(conds, "d.event_type = "+param(f.EventType))
	}
	if f.EventID != "" {
		conds = append(conds, "d.event_id = "+param(f.EventID))
	}
	if f.CreatedAfter != nil {
		conds = append(conds, "d.created_at >= "+param(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		conds = append(conds, "d.created_at < "+param(*f.CreatedBefore))
	}
	if after != nil {
		conds = append(conds, "(d.created_at, d.id) < ("+param(after.CreatedAt)+"::timestamptz, "+param(after.ID)+"::text)")
	}
	limitParam := param(limit)

	states := DeliveryStates
	if f.State != "" {
		states = []string{f.State}
	}
	branches := make([]string, len(states))
	for i, state := range states {
		literal, ok := stateLiterals[state]
		if !ok {
			return "", nil, fmt.Errorf("unknown delivery state %q", state)
		}
		branches[i] = `SELECT ` + deliveryColumns + ` FROM deliveries d WHERE ` +
			strings.Join(append(slices.Clip(conds), "d.state = "+literal), " AND ") +
			` ORDER BY d.created_at DESC, d.id DESC LIMIT ` + limitParam
	}
	if len(branches) == 1 {
		return branches[0], args, nil
	}
	return `SELECT * FROM ((` + strings.Join(branches, ") UNION ALL (") + `)) d ORDER BY d.created_at DESC, d.id DESC LIMIT ` + limitParam, args, nil
}

// ListDeliveries returns up to limit deliveries matching f, newest first,
// starting after the cursor (nil for the first page). Attempts and replays
// are not loaded.
//
// The query is planned with its actual values on every call (pgx's exec
// mode, not a cached prepared statement): a generic plan can't see which
// event type or account is rare and would pick one index for all.
func ListDeliveries(ctx context.Context, db DB, f *DeliveryFilter, after *DeliveryCursor, limit int) ([]*Delivery, error) {
	query, args, err := DeliveryListQuery(f, after, limit)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, query, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*Delivery, 0, limit)
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

const webhookAccount = `SELECT account_id, deleted_at IS NULL FROM webhooks WHERE id = $1`

// WebhookAccount returns the account of webhook id, live or deleted, and
// whether it is live; ErrNotFound if there is no such webhook.
func WebhookAccount(ctx context.Context, db DB, id string) (accountID string, live bool, err error) {
	err = db.QueryRow(ctx, webhookAccount, id).Scan(&accountID, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, ErrNotFound
	}
	return accountID, live, err
}
