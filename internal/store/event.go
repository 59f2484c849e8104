package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mono/webhookd/internal/ident"
)

// NewEvent is an accepted event with its deliveries.
type NewEvent struct {
	ID             string
	AccountID      string
	Type           string
	Body           []byte
	OccurredAt     time.Time
	IdempotencyKey *string
	CreatedAt      time.Time
	// Traceparent is the producer's W3C traceparent, if given.
	Traceparent *string
	// Deliveries, WebhookIDs and JobIDs are parallel: one delivery per live
	// webhook, each with the River job responsible for it; a job id of 0
	// makes a paused delivery (its webhook is paused) with no job.
	DeliveryIDs []string
	WebhookIDs  []string
	JobIDs      []int64
	// FIFOSeqs, parallel to them when not nil, are the deliveries' places
	// in their FIFO webhooks' lines (0: unordered; internal/store/fifo.go).
	FIFOSeqs []int64
	// Slots, parallel to them when not nil, are the start slots reserved
	// for deliveries to rate-limited webhooks (nil: none), each its
	// delivery's due time (internal/store/throttle.go).
	Slots []*time.Time
}

// eventsInsertSQL is InsertEvents' statement: %s is where LeasedJobs' CTE
// goes when there are some.
const eventsInsertSQL = `
WITH event AS (
    INSERT INTO events (id, account_id, type, body, occurred_at, idempotency_key, created_at, part_day, traceparent)
    SELECT e.id, e.account_id, e.type, e.body, e.occurred_at, e.idempotency_key, e.created_at, e.part_day, e.traceparent
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[], $6::text[], $7::timestamptz[], $15::date[], $17::text[])
        AS e (id, account_id, type, body, occurred_at, idempotency_key, created_at, part_day, traceparent)
)%s
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, next_attempt_at, created_at, updated_at, part_day, state, fifo_seq, throttle_slot)
SELECT d.id, d.event_id, d.webhook_id, d.account_id, d.event_type, nullif(d.job_id, 0), coalesce(d.slot, d.created_at), d.created_at, d.created_at, d.part_day,
       CASE WHEN d.job_id = 0 THEN 'paused' ELSE 'pending' END, nullif(d.fifo_seq, 0), d.slot
FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::timestamptz[], $16::date[], $18::bigint[], $19::timestamptz[])
    AS d (id, event_id, webhook_id, account_id, event_type, job_id, created_at, part_day, fifo_seq, slot)`

var (
	eventsInsert     = fmt.Sprintf(eventsInsertSQL, "")
	eventsJobsInsert = fmt.Sprintf(eventsInsertSQL, leasedJobsInsert)
	// With a check of the webhook versions the fan-out used
	// (WebhookVersions): the events' insert reads no row unless it passes,
	// and when it doesn't the statement fails (SQLSTATE WHK01).
	eventsInsertChecked     = checkedEventsInsert(eventsInsert, 20)
	eventsJobsInsertChecked = checkedEventsInsert(eventsJobsInsert, 27)
)

// checkedEventsInsert is statement with webhookd_webhooks_unchanged($n,
// $n+1) as a condition of its events' insert, evaluated once (an
// uncorrelated subquery) before any row is written.
func checkedEventsInsert(statement string, n int) string {
	const from = `AS e (id, account_id, type, body, occurred_at, idempotency_key, created_at, part_day, traceparent)`
	if !strings.Contains(statement, from) {
		panic("store: the events' insert has changed; checkedEventsInsert can't place its check")
	}
	return strings.Replace(statement, from, from+fmt.Sprintf(`
    WHERE (SELECT webhookd_webhooks_unchanged($%d::text[], $%d::bigint[]))`, n, n+1), 1)
}

// WebhookVersions are the versions (webhook_versions) of the accounts whose
// webhooks an insert fanned its events out to from memory, not from a read
// in its transaction: InsertEventsWithJobs fails with ErrWebhooksChanged,
// having stored nothing, when one is no longer current.
type WebhookVersions struct {
	Accounts []string
	Versions []int64
}

// webhooksChangedCode is the SQLSTATE webhookd_webhooks_unchanged raises
// (migration 29).
const webhooksChangedCode = "WHK01"

// IsWebhooksChanged says whether err is an insert's check of
// WebhookVersions failing: an account's webhooks changed after they were
// read, and the transaction must be rolled back and tried again with the
// webhooks read afresh.
func IsWebhooksChanged(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == webhooksChangedCode
}

// InsertEvents inserts the events and all their deliveries in one
// statement, however many there are. An event and its deliveries go into
// the day partition of the event's id (the UTC day of its UUIDv7), so that
// a lookup by id finds them in one partition and the two always share one.
// In a PipelinedTx the statement is queued: it goes with the transaction's
// next statement or its COMMIT, which returns its error.
func InsertEvents(ctx context.Context, db DB, events []*NewEvent) error {
	return InsertEventsWithJobs(ctx, db, events, nil)
}

// InsertEventsWithJobs is InsertEvents, writing jobs (nil or none: no
// job) into River's table in the same statement.
func InsertEventsWithJobs(ctx context.Context, db DB, events []*NewEvent, jobs *LeasedJobs) error {
	return InsertEventsChecked(ctx, db, events, jobs, nil)
}

// InsertEventsChecked is InsertEventsWithJobs, checking versions (nil or
// none: no check) in the same statement: when an account's webhooks changed
// since versions were read, the statement fails with an error
// IsWebhooksChanged knows, and stores nothing.
func InsertEventsChecked(ctx context.Context, db DB, events []*NewEvent, jobs *LeasedJobs, versions *WebhookVersions) error {
	n := len(events)
	var (
		ids, accounts, types = make([]string, n), make([]string, n), make([]string, n)
		bodies               = make([][]byte, n)
		occurred, created    = make([]time.Time, n), make([]time.Time, n)
		keys, traces         = make([]*string, n), make([]*string, n)

		dIDs, dEvents, dWebhooks, dAccounts, dTypes []string
		dJobs, dSeqs                                []int64
		dCreated, days, dDays                       []time.Time
		dSlots                                      []*time.Time
	)
	for i, ev := range events {
		ids[i], accounts[i], types[i], bodies[i] = ev.ID, ev.AccountID, ev.Type, ev.Body
		occurred[i], created[i], keys[i], traces[i] = ev.OccurredAt, ev.CreatedAt, ev.IdempotencyKey, ev.Traceparent
		day := eventDay(ev)
		days = append(days, day)
		for j, id := range ev.DeliveryIDs {
			dIDs, dEvents, dWebhooks = append(dIDs, id), append(dEvents, ev.ID), append(dWebhooks, ev.WebhookIDs[j])
			dAccounts, dTypes = append(dAccounts, ev.AccountID), append(dTypes, ev.Type)
			dJobs, dCreated, dDays = append(dJobs, ev.JobIDs[j]), append(dCreated, ev.CreatedAt), append(dDays, day)
			var seq int64
			if ev.FIFOSeqs != nil {
				seq = ev.FIFOSeqs[j]
			}
			dSeqs = append(dSeqs, seq)
			var slot *time.Time
			if ev.Slots != nil {
				slot = ev.Slots[j]
			}
			dSlots = append(dSlots, slot)
		}
	}
	args := []any{ids, accounts, types, bodies, occurred, keys, created,
		dIDs, dEvents, dWebhooks, dAccounts, dTypes, dJobs, dCreated, days, dDays, traces, dSeqs, dSlots}
	statement, checked := eventsInsert, eventsInsertChecked
	if jobs != nil && len(jobs.IDs) > 0 {
		statement, checked = eventsJobsInsert, eventsJobsInsertChecked
		args = append(args, jobs.Kind, jobs.MaxAttempts, jobs.Priorities, jobs.Queue, jobs.ScheduledAt, jobs.IDs, jobs.Deliveries)
	}
	if versions != nil && len(versions.Accounts) > 0 {
		statement = checked
		args = append(args, versions.Accounts, versions.Versions)
	}
	if tx, ok := db.(*PipelinedTx); ok {
		// Sent with the transaction's next statement or its COMMIT, whose
		// error is this one's too.
		tx.Queue(statement, args...)
		return nil
	}
	_, err := db.Exec(ctx, statement, args...)
	return err
}

// NewDeliveryTarget is the Target that GetTargets loads for ev's delivery
// j once InsertEvents has inserted it (its job ev.JobIDs[j]), made without
// the load: the delivery and event as inserted, and webhook, the Target of
// its webhook as LiveWebhooksWithTargets read it in the same transaction.
// Times are to the microsecond, as stored.
func NewDeliveryTarget(ev *NewEvent, j int, webhook *Target) *Target {
	t := *webhook
	created := ev.CreatedAt.Truncate(time.Microsecond)
	next := created
	if ev.Slots != nil && ev.Slots[j] != nil {
		slot := ev.Slots[j].Truncate(time.Microsecond)
		next, t.ThrottleSlot = slot, &slot
	}
	t.DeliveryID, t.State, t.Attempts, t.Generation, t.GenAttempts = ev.DeliveryIDs[j], StatePending, 0, 1, 0
	t.NextAttemptAt, t.EventID, t.AccountID, t.WebhookID = &next, ev.ID, ev.AccountID, ev.WebhookIDs[j]
	if ev.JobIDs[j] != 0 {
		job := ev.JobIDs[j]
		t.JobID = &job
	}
	if ev.FIFOSeqs != nil && ev.FIFOSeqs[j] != 0 {
		seq := ev.FIFOSeqs[j]
		t.FIFOSeq = &seq
	}
	t.Body, t.EventType, t.CreatedAt, t.PartDay, t.Traceparent = ev.Body, ev.Type, created, eventDay(ev), ev.Traceparent
	return &t
}

// eventDay is the day partition of ev and its deliveries: the UTC day of
// its id's UUIDv7, or of its creation for an id without a time.
func eventDay(ev *NewEvent) time.Time {
	if t, ok := ident.Time(ev.ID); ok {
		return Day(t)
	}
	return Day(ev.CreatedAt)
}

// IdempotencyClaim is an idempotency key recorded for an event: the same key
// with another request hash is a conflict.
type IdempotencyClaim struct {
	AccountID   string
	Key         string
	RequestHash []byte
	EventID     string
}

const idempotencyClaim = `
INSERT INTO idempotency_keys (account_id, key, request_hash, event_id, created_at)
SELECT c.account_id, c.key, c.request_hash, c.event_id, $5
FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) WITH ORDINALITY AS c (account_id, key, request_hash, event_id, n)
ORDER BY c.n
ON CONFLICT (account_id, key) DO NOTHING
RETURNING account_id, key`

const idempotencyGet = `
SELECT k.account_id, k.key, k.request_hash, k.event_id
FROM idempotency_keys k
JOIN unnest($1::text[], $2::text[]) AS c (account_id, key) ON k.account_id = c.account_id AND k.key = c.key`

type idempotencyRef struct{ accountID, key string }

// ClaimIdempotencyKeys records every claim whose key is free, in one
// statement. For each key already taken (by a committed transaction; a
// concurrent one is waited for) it returns the stored claim, by index into
// claims. The keys of one call must be distinct. They are claimed in a fixed
// order, so two transactions claiming overlapping keys can't deadlock.
func ClaimIdempotencyKeys(ctx context.Context, db DB, claims []IdempotencyClaim, now time.Time) (taken map[int]IdempotencyClaim, err error) {
	sorted := slices.Clone(claims)
	slices.SortFunc(sorted, func(a, b IdempotencyClaim) int {
		return cmp.Or(cmp.Compare(a.AccountID, b.AccountID), cmp.Compare(a.Key, b.Key))
	})
	var (
		accounts = make([]string, len(sorted))
		keys     = make([]string, len(sorted))
		hashes   = make([][]byte, len(sorted))
		eventIDs = make([]string, len(sorted))
	)
	for i, c := range sorted {
		accounts[i], keys[i], hashes[i], eventIDs[i] = c.AccountID, c.Key, c.RequestHash, c.EventID
	}
	rows, err := db.Query(ctx, idempotencyClaim, accounts, keys, hashes, eventIDs, now)
	if err != nil {
		return nil, err
	}
	claimed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (idempotencyRef, error) {
		var r idempotencyRef
		return r, row.Scan(&r.accountID, &r.key)
	})
	if err != nil {
		return nil, err
	}
	if len(claimed) == len(claims) {
		return nil, nil
	}

	isClaimed := make(map[idempotencyRef]bool, len(claimed))
	for _, r := range claimed {
		isClaimed[r] = true
	}
	index := make(map[idempotencyRef]int, len(claims)-len(claimed))
	accounts, keys = accounts[:0], keys[:0]
	for i, c := range claims {
		if r := (idempotencyRef{c.AccountID, c.Key}); !isClaimed[r] {
			index[r] = i
			accounts, keys = append(accounts, c.AccountID), append(keys, c.Key)
		}
	}
	rows, err = db.Query(ctx, idempotencyGet, accounts, keys)
	if err != nil {
		return nil, err
	}
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (IdempotencyClaim, error) {
		var c IdempotencyClaim
		return c, row.Scan(&c.AccountID, &c.Key, &c.RequestHash, &c.EventID)
	})
	if err != nil {
		return nil, err
	}
	taken = make(map[int]IdempotencyClaim, len(stored))
	for _, c := range stored {
		taken[index[idempotencyRef{c.AccountID, c.Key}]] = c
	}
	if len(taken) != len(index) {
		return nil, errors.New("idempotency key neither claimed nor found")
	}
	return taken, nil
}

// Event is an events row with its deliveries.
type Event struct {
	ID             string
	AccountID      string
	Type           string
	Body           []byte
	OccurredAt     time.Time
	IdempotencyKey *string
	CreatedAt      time.Time
	Deliveries     []EventDelivery
}

// EventDelivery is one delivery of an event, in short.
type EventDelivery struct {
	ID        string
	WebhookID string
	State     string
}

const eventColumns = `e.id, e.account_id, e.type, e.body, e.occurred_at, e.idempotency_key, e.created_at`

const eventGet = `SELECT ` + eventColumns + ` FROM events e WHERE e.id = $1 AND e.part_day BETWEEN $2 AND $3`

// GetEvent returns the event id with its deliveries, or ErrNotFound.
func GetEvent(ctx context.Context, db DB, id string) (*Event, error) {
	var e *Event
	err := byID(id, func(lo, hi time.Time) error {
		var err error
		e, err = getEvent(ctx, db, eventGet, id, lo, hi)
		return err
	})
	return e, err
}

const eventByIdempotencyKey = `
SELECT ` + eventColumns + `
FROM idempotency_keys k JOIN events e ON e.id = k.event_id
WHERE k.account_id = $1 AND k.key = $2`

// GetEventByIdempotencyKey returns the account's event accepted with
// idempotency key key, with its deliveries, or ErrNotFound. Keys are found
// for as long as they are kept (at least 24 hours).
func GetEventByIdempotencyKey(ctx context.Context, db DB, accountID, key string) (*Event, error) {
	return getEvent(ctx, db, eventByIdempotencyKey, accountID, key)
}

func getEvent(ctx context.Context, db DB, query string, args ...any) (*Event, error) {
	e := &Event{}
	err := db.QueryRow(ctx, query, args...).Scan(&e.ID, &e.AccountID, &e.Type, &e.Body, &e.OccurredAt, &e.IdempotencyKey, &e.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	deliveries, err := EventDeliveries(ctx, db, []string{e.ID})
	e.Deliveries = deliveries[e.ID]
	return e, err
}

const eventDeliveries = `
SELECT event_id, id, webhook_id, state FROM deliveries WHERE event_id = ANY($1) AND part_day >= $2 ORDER BY event_id, id`

// EventDeliveries returns the deliveries of each of eventIDs, oldest first.
// An event without deliveries has no entry.
func EventDeliveries(ctx context.Context, db DB, eventIDs []string) (map[string][]EventDelivery, error) {
	// A delivery lives in its event's day partition or, once moved by
	// retention, a later one: never before the oldest event's day.
	from := maxDay
	for _, id := range eventIDs {
		if lo, _ := idDays(id); lo.Before(from) {
			from = lo
		}
	}
	rows, err := db.Query(ctx, eventDeliveries, eventIDs, from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string][]EventDelivery)
	for rows.Next() {
		var (
			eventID string
			d       EventDelivery
		)
		if err := rows.Scan(&eventID, &d.ID, &d.WebhookID, &d.State); err != nil {
			return nil, err
		}
		out[eventID] = append(out[eventID], d)
	}
	return out, rows.Err()
}
