package store

// The worker's hot path: loading a delivery with all an attempt needs
// (GetTargets), recording attempts and the states they lead to
// (RecordAttempts), cancelling a deleted webhook's delivery.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	// (internal/engine/throttle.go); it holds only while it equals NextAttemptAt.
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
                         $14::bigint[], $15::int[], $16::text[], $17::text[], $18::bytea[], $19::bigint[], $20::bool[])
        AS i(ord, id, part_day, seen_attempts, job_id, state, counted, next_attempt_at, now, number, generation,
             scheduled_at, started_at, duration_us, status_code, error_kind, error_message, response_excerpt, signature_t,
             delete_job)
), located AS MATERIALIZED (
    -- Each attempt's delivery, looked up on its own (a lateral subquery
    -- runs once per attempt, by index), then updated by its row address.
    -- inline: a first success, recorded in the delivery's ok_* columns
    -- instead of as a row of attempts (migration 30); a success after a
    -- replay finds them taken and is a row as before.
    SELECT i.*, x.tableoid AS part, x.ctid AS tid, x.part_day AS found_day,
           (i.state = 'succeeded' AND i.counted AND i.error_kind IS NULL AND x.ok_attempt_id IS NULL) AS inline
    FROM input i
    CROSS JOIN LATERAL (
        SELECT d.tableoid, d.ctid, d.part_day, d.ok_attempt_id FROM deliveries d
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
        updated_at = l.now,
        ok_attempt_id = CASE WHEN l.inline THEN nextval('attempt_ids') ELSE d.ok_attempt_id END,
        ok_number = CASE WHEN l.inline THEN l.number ELSE d.ok_number END,
        ok_generation = CASE WHEN l.inline THEN l.generation ELSE d.ok_generation END,
        ok_scheduled_at = CASE WHEN l.inline THEN l.scheduled_at ELSE d.ok_scheduled_at END,
        ok_started_at = CASE WHEN l.inline THEN l.started_at ELSE d.ok_started_at END,
        ok_duration_us = CASE WHEN l.inline THEN l.duration_us ELSE d.ok_duration_us END,
        ok_signature_t = CASE WHEN l.inline THEN l.signature_t ELSE d.ok_signature_t END,
        ok_status_code = CASE WHEN l.inline THEN l.status_code ELSE d.ok_status_code END,
        ok_response_excerpt = CASE WHEN l.inline THEN l.response_excerpt ELSE d.ok_response_excerpt END
    FROM located l
    -- The guard again: a row changed since it was located (another run,
    -- a replay) is re-checked here and skipped. part_day prunes the day
    -- partitions as each row comes, so its address is looked up in its
    -- own only (tableoid doesn't: every partition's was, ~3x the
    -- statement's time with 35 days' partitions).
    WHERE d.part_day = l.found_day AND d.tableoid = l.part AND d.ctid = l.tid
      AND d.attempts = l.seen_attempts AND d.job_id = l.job_id AND d.state = 'pending'
      AND (NOT l.inline OR d.ok_attempt_id IS NULL)
    -- Everything the attempt row needs comes back with the update: with
    -- hash joins off (byKeyOnly), joining the input to this CTE again by
    -- ord was a nested loop comparing every pair (a batch of 171: 29,070
    -- rows filtered, 8 ms).
    RETURNING l.ord, l.found_day, l.id, l.number, l.generation, l.counted,
              l.scheduled_at, l.started_at, l.duration_us, l.status_code, l.error_kind, l.error_message,
              l.response_excerpt, l.signature_t, l.job_id, l.state, l.delete_job, l.inline
), recorded AS (
    INSERT INTO attempts (delivery_id, number, generation, counted, scheduled_at, started_at, duration_us,
                          status_code, error_kind, error_message, response_excerpt, signature_t, part_day)
    SELECT id, number, generation, counted, scheduled_at, started_at, duration_us,
           status_code, error_kind, error_message, response_excerpt, signature_t, found_day
    FROM delivery
    WHERE NOT inline
    ORDER BY ord
), finished AS (
    -- The jobs of the deliveries this finishes, where asked (see
    -- Recording.DeleteJob): deleted by key whatever this statement's plan
    -- (migration 23). A CTE that modifies nothing runs only if read: the
    -- final SELECT reads its one row.
    SELECT webhookd_delete_finished_jobs(array_agg(job_id)) AS deleted
    FROM delivery WHERE delete_job AND state <> 'pending'
)
SELECT ord FROM delivery, finished`

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
	// DeleteJob deletes job JobID in the same statement when this attempt
	// finishes the delivery (succeeded or dead) and the job is still
	// running: River's completer then finds no row to mark completed
	// (WEBHOOKD_KEEP_FINISHED_JOBS; migration 23).
	DeleteJob bool
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
		return recorded, nil //nolint:nilerr // the first statement committed: what it recorded is the answer
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
		deleteJobs  = make([]bool, n)
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
		deleteJobs[i] = r.DeleteJob
	}
	args := []any{ord, ids, days, seen, jobs, states, counted, next, now, numbers, generations,
		scheduled, started, durations, statuses, kinds, messages, excerpts, signatureTs, deleteJobs}
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
