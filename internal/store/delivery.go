package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/ident"
)

// Target is everything the worker needs for one attempt, loaded in one query.
type Target struct {
	DeliveryID    string
	State         string
	Attempts      int
	Generation    int
	GenAttempts   int
	NextAttemptAt *time.Time
	JobID         *int64
	EventID       string
	AccountID     string
	WebhookID     string
	Body          []byte
	URL           string
	SecretCipher  []byte
	SecretKeyID   string
	WebhookGone   bool
	EventType     string
	CreatedAt     time.Time
	// PartDay is the day partition the delivery (and its event and
	// attempts) live in.
	PartDay time.Time
	// HeadersCipher and HeadersKeyID are the webhook's encrypted custom
	// headers (nil: none).
	HeadersCipher []byte
	HeadersKeyID  *string
	// Traceparent is the producer's W3C traceparent, if it gave one.
	Traceparent *string
	// PreviousSecretCipher (with its key id and expiry) is the webhook's
	// secret before its last rotation, nil when there is none.
	PreviousSecretCipher    []byte
	PreviousSecretKeyID     *string
	PreviousSecretExpiresAt *time.Time
	// Paused says the webhook is paused: nothing is sent.
	Paused bool
	// SignatureScheme and OnGone are the webhook's (store.SchemeMono...,
	// store.OnGoneRetry...).
	SignatureScheme string
	OnGone          string
	// TLSCipher (under TLSKeyID) is the webhook's encrypted client
	// certificate and key, TLSCABundle its CA bundle; nil when none.
	TLSCipher   []byte
	TLSKeyID    *string
	TLSCABundle *string
	// RateLimit is the webhook's rate_limit_per_second (nil: none), and
	// ThrottleSlot the start slot the delivery was given under it, if any
	// (dispatcher/throttle.go); it holds only while it equals NextAttemptAt.
	RateLimit    *int
	ThrottleSlot *time.Time
	// FIFOSeq is the delivery's place in its FIFO webhook's line, nil
	// when it is unordered (internal/store/fifo.go).
	FIFOSeq *int64
}

// targetColumns are everything a delivery attempt needs, from the delivery
// d, its event e and its webhook w, which targetJoins joins to d.
const targetColumns = `
SELECT d.id, d.state, d.attempts, d.generation, d.gen_attempts, d.next_attempt_at, d.job_id,
       d.event_id, d.account_id, d.webhook_id, e.body, w.url_normalized, w.secret_ciphertext, w.secret_key_id,
       w.deleted_at IS NOT NULL, d.event_type, d.created_at, d.part_day, w.headers_ciphertext, w.headers_key_id, e.traceparent,
       w.previous_secret_ciphertext, w.previous_secret_key_id, w.previous_secret_expires_at, w.paused_at IS NOT NULL,
       w.signature_scheme, w.on_gone, w.tls_ciphertext, w.tls_key_id, w.tls_ca_bundle,
       w.rate_limit_per_second, d.throttle_slot, d.fifo_seq`

const targetJoins = `
JOIN events e ON e.id = d.event_id AND e.part_day = d.part_day
JOIN webhooks w ON w.id = d.webhook_id`

const targetGet = targetColumns + `
FROM deliveries d` + targetJoins + `
WHERE d.id = $1 AND d.part_day BETWEEN $2 AND $3`

// scanTarget scans one row of targetGet or targetGetMany.
func scanTarget(row pgx.Row) (*Target, error) {
	t := &Target{}
	err := row.Scan(&t.DeliveryID, &t.State, &t.Attempts, &t.Generation, &t.GenAttempts, &t.NextAttemptAt, &t.JobID,
		&t.EventID, &t.AccountID, &t.WebhookID, &t.Body, &t.URL, &t.SecretCipher, &t.SecretKeyID, &t.WebhookGone,
		&t.EventType, &t.CreatedAt, &t.PartDay, &t.HeadersCipher, &t.HeadersKeyID, &t.Traceparent,
		&t.PreviousSecretCipher, &t.PreviousSecretKeyID, &t.PreviousSecretExpiresAt, &t.Paused,
		&t.SignatureScheme, &t.OnGone, &t.TLSCipher, &t.TLSKeyID, &t.TLSCABundle,
		&t.RateLimit, &t.ThrottleSlot, &t.FIFOSeq)
	return t, err
}

// GetTarget loads delivery id with its event body and webhook, or ErrNotFound.
func GetTarget(ctx context.Context, db DB, id string) (*Target, error) {
	var t *Target
	err := byID(id, func(lo, hi time.Time) (err error) {
		t, err = scanTarget(db.QueryRow(ctx, targetGet, id, lo, hi))
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// targetGetMany looks each id up on its own, by key (it runs on a
// ByKeyPool: see there).
const targetGetMany = targetColumns + `
FROM unnest($1::text[]) AS i(id)
CROSS JOIN LATERAL (
    SELECT * FROM deliveries d WHERE d.id = i.id AND d.part_day BETWEEN $2 AND $3 LIMIT 1
) d` + targetJoins + `
WHERE e.part_day BETWEEN $2 AND $3`

// GetTargets loads many deliveries at once, as GetTarget does one: one
// query over the day partitions their ids name. The result has one entry
// per id, in order (the same *Target for an id given twice); a delivery
// not found there (moved by retention, or gone) is looked for by GetTarget
// and left nil when that finds nothing either.
func GetTargets(ctx context.Context, db DB, ids []string) ([]*Target, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	lo, hi := maxDay, minDay
	for _, id := range ids {
		l, h := idDays(id)
		lo, hi = minTime(lo, l), maxTime(hi, h)
	}
	rows, err := db.Query(ctx, targetGetMany, ids, lo, hi)
	if err != nil {
		return nil, err
	}
	found := make(map[string]*Target, len(ids))
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		found[t.DeliveryID] = t
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]*Target, len(ids))
	for i, id := range ids {
		t, ok := found[id]
		if !ok {
			t, err = GetTarget(ctx, db, id)
			if errors.Is(err, ErrNotFound) {
				found[id] = nil
				continue
			}
			if err != nil {
				return nil, err
			}
			found[id] = t
		}
		out[i] = t
	}
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// AttemptRecord is one attempt as recorded.
type AttemptRecord struct {
	Number          int
	Generation      int
	Counted         bool
	ScheduledAt     time.Time
	StartedAt       time.Time
	Duration        time.Duration
	StatusCode      *int
	ErrorKind       *string
	ErrorMessage    *string
	ResponseExcerpt []byte
	SignatureT      int64
}

// Outcome is the state change an attempt causes.
type Outcome struct {
	// State is the delivery's state after the attempt.
	State string
	// NextAttemptAt is when the next attempt is due (pending only).
	NextAttemptAt *time.Time
	// Now is when the attempt ended.
	Now time.Time
}

// attemptRecordSQL is attemptRecordMany with dayMatch, which finds the
// delivery in its day partition (%[1]s).
const attemptRecordSQL = `
WITH input AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::date[], $4::int[], $5::bigint[], $6::text[], $7::bool[],
                         $8::timestamptz[], $9::timestamptz[], $10::int[], $11::int[], $12::timestamptz[], $13::timestamptz[],
                         $14::bigint[], $15::int[], $16::text[], $17::text[], $18::bytea[], $19::bigint[])
        AS i(ord, id, part_day, seen_attempts, job_id, state, counted, next_attempt_at, now, number, generation,
             scheduled_at, started_at, duration_us, status_code, error_kind, error_message, response_excerpt, signature_t)
), located AS MATERIALIZED (
    -- Each attempt's delivery, looked up on its own (a lateral subquery
    -- runs once per attempt, by index), then updated by its row address.
    SELECT i.*, x.tableoid AS part, x.ctid AS tid, x.part_day AS found_day
    FROM input i
    CROSS JOIN LATERAL (
        SELECT d.tableoid, d.ctid, d.part_day FROM deliveries d
        WHERE d.id = i.id AND d.part_day %[1]s AND d.attempts = i.seen_attempts AND d.job_id = i.job_id AND d.state = 'pending'
        LIMIT 1
    ) x
), delivery AS (
    UPDATE deliveries d SET
        attempts = d.attempts + CASE WHEN l.counted THEN 1 ELSE 0 END,
        gen_attempts = d.gen_attempts + CASE WHEN l.counted THEN 1 ELSE 0 END,
        state = l.state,
        next_attempt_at = l.next_attempt_at,
        finished_at = CASE WHEN l.state = 'pending' THEN NULL ELSE l.now END,
        updated_at = l.now
    FROM located l
    -- The guard again: a row changed since it was located (another run,
    -- a replay) is re-checked here and skipped.
    WHERE d.tableoid = l.part AND d.ctid = l.tid
      AND d.attempts = l.seen_attempts AND d.job_id = l.job_id AND d.state = 'pending'
    RETURNING l.ord, l.found_day
), recorded AS (
    INSERT INTO attempts (delivery_id, number, generation, counted, scheduled_at, started_at, duration_us,
                          status_code, error_kind, error_message, response_excerpt, signature_t, part_day)
    SELECT i.id, i.number, i.generation, i.counted, i.scheduled_at, i.started_at, i.duration_us,
           i.status_code, i.error_kind, i.error_message, i.response_excerpt, i.signature_t, delivery.found_day
    FROM input i JOIN delivery USING (ord)
    ORDER BY i.ord
)
SELECT ord FROM delivery`

// attemptRecordMany records a batch, each delivery looked up in the day
// partition it was loaded from; attemptRecordMoved looks in that day and
// every later one, where a delivery may have moved since (see
// RecordAttempts). Either way the attempt goes into the partition of the
// day where the delivery is.
var (
	attemptRecordMany  = fmt.Sprintf(attemptRecordSQL, "= i.part_day")
	attemptRecordMoved = fmt.Sprintf(attemptRecordSQL, ">= i.part_day")
)

// Recording is one attempt to record with RecordAttempts: the delivery as
// loaded, the running job, the attempt and its outcome.
type Recording struct {
	Target  *Target
	JobID   int64
	Attempt *AttemptRecord
	Outcome *Outcome
}

// RecordAttempts records many attempts and the states they lead to in one
// statement (one commit). Each is guarded by the attempt count seen before
// sending (Target.Attempts), its day partition and the responsible job:
// when another run has recorded meanwhile, retention has moved the
// delivery, or it is no longer pending, that one changes nothing and
// recorded[i] is false. Two recordings for one delivery record at most one.
// Each attempt goes into its delivery's day partition.
func RecordAttempts(ctx context.Context, db DB, rs []Recording) ([]bool, error) {
	recorded, err := recordAttempts(ctx, db, rs, attemptRecordMany)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.SerializationFailure {
		// A row of the batch moved to another day's partition while the
		// statement waited for it (retention moving kept rows forward):
		// nothing was recorded; once more, looking from each day on.
		recorded, err = recordAttempts(ctx, db, rs, attemptRecordMoved)
	}
	if err != nil {
		return nil, err
	}
	// A delivery whose row moved while it was being sent (its day's
	// partition created, taking the day's rows out of the default
	// partition; retention moving kept rows forward) is skipped by the
	// update, which saw the old row go. Looked up again, by key from its
	// day on, it is found where it went, and its guard decides as before;
	// otherwise the attempt would go unrecorded and the delivery be sent
	// again. The others fail their guard again (another run recorded).
	var again []Recording
	var at []int
	for i, ok := range recorded {
		if !ok {
			again, at = append(again, rs[i]), append(at, i)
		}
	}
	if len(again) == 0 {
		return recorded, nil
	}
	retried, err := recordAttempts(ctx, db, again, attemptRecordMoved)
	if err != nil {
		// The first statement committed: report what it recorded.
		return recorded, nil
	}
	for j, ok := range retried {
		recorded[at[j]] = ok
	}
	return recorded, nil
}

func recordAttempts(ctx context.Context, db DB, rs []Recording, statement string) (recorded []bool, err error) {
	n := len(rs)
	if n == 0 {
		return nil, nil
	}
	var (
		ord         = make([]int32, n)
		ids         = make([]string, n)
		days        = make([]time.Time, n)
		seen        = make([]int32, n)
		jobs        = make([]int64, n)
		states      = make([]string, n)
		counted     = make([]bool, n)
		next        = make([]*time.Time, n)
		now         = make([]time.Time, n)
		numbers     = make([]int32, n)
		generations = make([]int32, n)
		scheduled   = make([]time.Time, n)
		started     = make([]time.Time, n)
		durations   = make([]int64, n)
		statuses    = make([]*int32, n)
		kinds       = make([]*string, n)
		messages    = make([]*string, n)
		excerpts    = make([][]byte, n)
		signatureTs = make([]int64, n)
	)
	for i, r := range rs {
		ord[i] = int32(i)
		ids[i], days[i], seen[i], jobs[i] = r.Target.DeliveryID, r.Target.PartDay, int32(r.Target.Attempts), r.JobID
		states[i], counted[i], next[i], now[i] = r.Outcome.State, r.Attempt.Counted, r.Outcome.NextAttemptAt, r.Outcome.Now
		numbers[i], generations[i] = int32(r.Attempt.Number), int32(r.Attempt.Generation)
		scheduled[i], started[i], durations[i] = r.Attempt.ScheduledAt, r.Attempt.StartedAt, r.Attempt.Duration.Microseconds()
		if r.Attempt.StatusCode != nil {
			s := int32(*r.Attempt.StatusCode)
			statuses[i] = &s
		}
		kinds[i], messages[i], excerpts[i], signatureTs[i] = r.Attempt.ErrorKind, r.Attempt.ErrorMessage, r.Attempt.ResponseExcerpt, r.Attempt.SignatureT
	}
	args := []any{ord, ids, days, seen, jobs, states, counted, next, now, numbers, generations,
		scheduled, started, durations, statuses, kinds, messages, excerpts, signatureTs}
	recorded = make([]bool, n)
	record := func(q DB) error {
		rows, err := q.Query(ctx, statement, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var i int32
			if err := rows.Scan(&i); err != nil {
				rows.Close()
				return err
			}
			recorded[i] = true
		}
		return rows.Err()
	}
	if p, ok := db.(*ByKeyPool); ok {
		// Its sessions plan by key already: one statement, which is
		// atomic on its own.
		err = record(p)
	} else {
		err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, byKeyOnly); err != nil {
				return err
			}
			return record(tx)
		})
	}
	if err != nil {
		return nil, err
	}
	return recorded, nil
}

const deliveryCancel = `
UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = $3, updated_at = $3
WHERE id = $1 AND job_id = $2 AND state = 'pending'`

// CancelDelivery cancels the pending delivery id if job jobID is responsible
// for it, reporting whether it did.
func CancelDelivery(ctx context.Context, db DB, id string, jobID int64, now time.Time) (bool, error) {
	tag, err := db.Exec(ctx, deliveryCancel, id, jobID, now)
	return tag.RowsAffected() == 1, err
}

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
FROM attempts WHERE delivery_id = $1 AND part_day = $2 ORDER BY id`

// GetDelivery returns delivery id with all its attempts and replays, or
// ErrNotFound.
func GetDelivery(ctx context.Context, db DB, id string) (*Delivery, error) {
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
//   - an event type uses (account_id, event_type, created_at, id, state,
//     webhook_id), whose trailing columns filter inside the index; callers
//     pass the webhook's account with a webhook id so that it can;
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

// orphansOf completes a query whose CTE slice holds pending deliveries
// (id, job_id, webhook_id): it returns how many the slice holds, the
// largest job id among them, those whose webhook is live and whose job is
// finished, discarded, cancelled or missing (or that have none), and the
// deleted webhooks of the others, looked up once each.
const orphansOf = `
, abandoned AS (
    SELECT w.id FROM webhooks w
    WHERE w.id IN (SELECT webhook_id FROM slice) AND w.deleted_at IS NOT NULL
), orphans AS (
    SELECT s.id, s.job_id
    FROM slice s
    LEFT JOIN river_job j ON j.id = s.job_id
    WHERE (j.id IS NULL OR j.state IN ('completed', 'discarded', 'cancelled'))
      AND s.webhook_id NOT IN (SELECT id FROM abandoned)
)
SELECT (SELECT count(*) FROM slice), coalesce((SELECT max(job_id) FROM slice), 0),
       coalesce(array_agg(id ORDER BY job_id, id), '{}'), coalesce(array_agg(job_id ORDER BY job_id, id), '{}'),
       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM abandoned)
FROM orphans`

// orphansScan checks one slice of the pending deliveries that have a job:
// up to $2 of them, in job id order, after job id $1 (through the partial
// index on pending deliveries' job ids, so a slice costs the same whatever
// the backlog).
const orphansScan = `
WITH slice AS MATERIALIZED (
    SELECT id, job_id, webhook_id FROM deliveries
    WHERE state = 'pending' AND job_id > $1
    ORDER BY job_id
    LIMIT $2
)` + orphansOf

// orphansJobless checks up to $1 pending deliveries that have no job at
// all.
const orphansJobless = `
WITH slice AS MATERIALIZED (
    SELECT id, job_id, webhook_id FROM deliveries
    WHERE state = 'pending' AND job_id IS NULL
    ORDER BY id
    LIMIT $1
)` + orphansOf

// Orphan is a pending delivery whose job is finished, discarded or missing.
type Orphan struct {
	DeliveryID string
	JobID      *int64
}

// OrphanSlice is what ScanOrphans or JoblessOrphans found in one slice.
type OrphanSlice struct {
	// Orphans are the slice's pending deliveries of live webhooks that no
	// live job serves.
	Orphans []Orphan
	// Abandoned are the deleted webhooks of the slice's other pending
	// deliveries (see CancelAbandoned).
	Abandoned []string
	// Checked is how many pending deliveries the slice held: fewer than
	// asked means the walk reached the end.
	Checked int
	// Last is the largest job id in the slice (0 if it was empty): the
	// next slice starts after it.
	Last int64
}

// ScanOrphans checks up to limit pending deliveries with a job, in job id
// order after job id after, for a job that is finished, discarded or
// missing, and for a deleted webhook.
func ScanOrphans(ctx context.Context, db DB, after int64, limit int) (*OrphanSlice, error) {
	return scanOrphanSlice(db.QueryRow(ctx, orphansScan, after, limit))
}

// JoblessOrphans checks up to limit pending deliveries that have no job:
// each is an orphan unless its webhook is deleted.
func JoblessOrphans(ctx context.Context, db DB, limit int) (*OrphanSlice, error) {
	return scanOrphanSlice(db.QueryRow(ctx, orphansJobless, limit))
}

func scanOrphanSlice(row pgx.Row) (*OrphanSlice, error) {
	var (
		out    OrphanSlice
		ids    []string
		jobIDs []*int64
	)
	if err := row.Scan(&out.Checked, &out.Last, &ids, &jobIDs, &out.Abandoned); err != nil {
		return nil, err
	}
	for i, id := range ids {
		out.Orphans = append(out.Orphans, Orphan{DeliveryID: id, JobID: jobIDs[i]})
	}
	return &out, nil
}

// Cursor reads the position saved under name; 0 if none was.
func Cursor(ctx context.Context, db DB, name string) (int64, error) {
	var pos int64
	err := db.QueryRow(ctx, `SELECT position FROM webhookd_cursors WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

// SetCursor saves position under name.
func SetCursor(ctx context.Context, db DB, name string, position int64) error {
	_, err := db.Exec(ctx, `
INSERT INTO webhookd_cursors (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()`, name, position)
	return err
}

const deliveryAdopt = `
UPDATE deliveries SET job_id = $3, updated_at = now()
WHERE id = $1 AND state = 'pending' AND job_id IS NOT DISTINCT FROM $2`

// AdoptDelivery points the pending delivery id at job newJobID if oldJobID is
// still responsible for it, reporting whether it did.
func AdoptDelivery(ctx context.Context, db DB, id string, oldJobID *int64, newJobID int64) (bool, error) {
	tag, err := db.Exec(ctx, deliveryAdopt, id, oldJobID, newJobID)
	return tag.RowsAffected() == 1, err
}

const testDeliveryFinish = `
WITH delivery AS (
    UPDATE deliveries SET test = true, state = $3, attempts = 1, gen_attempts = 1, next_attempt_at = NULL,
        job_id = NULL, finished_at = $4, updated_at = $4
    WHERE id = $1 AND part_day = $2
    RETURNING id, part_day
)
INSERT INTO attempts (delivery_id, number, generation, counted, scheduled_at, started_at, duration_us,
                      status_code, error_kind, error_message, response_excerpt, signature_t, part_day)
SELECT id, 1, 1, true, $5, $5, $6, $7, $8, $9, $10, $11, part_day FROM delivery`

// InsertTestDelivery stores a test send that has been made: its event and
// its one delivery (ev, with one webhook and no job), finished in state
// after attempt a, marked as a test. It never has a job, so nothing retries
// it.
func InsertTestDelivery(ctx context.Context, db DB, ev *NewEvent, state string, a *AttemptRecord, finishedAt time.Time) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := InsertEvents(ctx, tx, []*NewEvent{ev}); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, testDeliveryFinish, ev.DeliveryIDs[0], eventDay(ev), state, finishedAt,
			a.StartedAt, a.Duration.Microseconds(), a.StatusCode, a.ErrorKind, a.ErrorMessage, a.ResponseExcerpt, a.SignatureT)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("test delivery not stored")
		}
		return nil
	})
}
