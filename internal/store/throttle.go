package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// A webhook's rate limit (webhooks.rate_limit_per_second) is kept in
// webhook_throttle, one row per limited webhook, never on webhooks (enqueue
// reads those rows without locks): next_at is the first start time not
// reserved yet, last_start the last start claimed. Reserving a slot and
// claiming a start are one short statement each on that row (HOT updates:
// no indexed column changes), so a limited webhook costs two of them per
// attempt and every other webhook none.

// Rate limit bounds (webhooks.rate_limit_per_second).
const (
	RateLimitMin = 1
	RateLimitMax = 100
)

// RateInterval is the spacing of a limit of perSecond attempt starts per
// second (burst 1): 1 s / perSecond, in whole microseconds (PostgreSQL's
// precision), rounded up so N of them never fall within one second.
func RateInterval(perSecond int) time.Duration {
	us := (1_000_000 + perSecond - 1) / perSecond
	return time.Duration(us) * time.Microsecond
}

// SlotInterval is the spacing of the start slots reserved under a limit of
// perSecond: RateInterval plus 5%, rounded up to a microsecond. Starts are
// claimed RateInterval apart, so when a job runs late (and every start
// after it must wait for it) the claims catch up on the slots at 5% of
// real time instead of falling further behind with each late job, as they
// did with equal spacings (in a 400 s backlog, some ended more than 2 s
// behind their slots). A backlog drains at about 0.95 × perSecond.
func SlotInterval(perSecond int) time.Duration {
	us := (1_050_000 + perSecond - 1) / perSecond
	return time.Duration(us) * time.Microsecond
}

// throttleReserve takes webhook $1's next slot at or after $2 (a new row's
// first slot is $2), and no earlier than an interval after the last start
// given (when starts run behind their slots, a new slot goes after them),
// when it is no later than $4 (NULL: whenever it is), and moves next_at on
// by the interval $3 (µs). No row comes back when the next slot is later
// than $4.
const throttleReserve = `
INSERT INTO webhook_throttle AS t (webhook_id, interval_us, next_at, last_start)
VALUES ($1, $3::bigint, $2::timestamptz + $3::bigint * interval '1 microsecond', '-infinity')
ON CONFLICT (webhook_id) DO UPDATE SET
    interval_us = $3::bigint,
    next_at = greatest(t.next_at, $2::timestamptz, t.last_start + $3::bigint * interval '1 microsecond') + $3::bigint * interval '1 microsecond'
WHERE $4::timestamptz IS NULL OR greatest(t.next_at, t.last_start + $3::bigint * interval '1 microsecond') <= $4::timestamptz
RETURNING next_at - $3::bigint * interval '1 microsecond'`

const throttleNext = `SELECT greatest(next_at, last_start + interval_us * interval '1 microsecond') FROM webhook_throttle WHERE webhook_id = $1`

// ErrNoSlotSoon means ReserveSlot found no slot free by its latest time.
var ErrNoSlotSoon = errors.New("no slot free soon enough")

// ReserveSlot reserves webhookID's next start slot at or after now, for a
// limit spaced interval apart, and returns it. With latest not zero it
// reserves only a slot no later than latest, and otherwise reserves
// nothing and returns ErrNoSlotSoon with the next slot's time.
func ReserveSlot(ctx context.Context, db DB, webhookID string, interval time.Duration, now, latest time.Time) (time.Time, error) {
	var bound *time.Time
	if !latest.IsZero() {
		bound = &latest
	}
	var slot time.Time
	err := db.QueryRow(ctx, throttleReserve, webhookID, now, interval.Microseconds(), bound).Scan(&slot)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := db.QueryRow(ctx, throttleNext, webhookID).Scan(&slot); err != nil {
			return time.Time{}, err
		}
		return slot, ErrNoSlotSoon
	}
	return slot, err
}

// throttleClaim gives webhook $1 the attempt start at $2 or, when the last
// start given is less than the interval $3 (µs) before $2, the one an
// interval after it, if that is no later than $4: a row (the start) comes
// back only when this statement gave it. Starts given are at least an
// interval apart, each to one claim, in the order the claims come.
const throttleClaim = `
UPDATE webhook_throttle SET last_start = greatest(last_start + $3::bigint * interval '1 microsecond', $2::timestamptz)
WHERE webhook_id = $1 AND last_start + $3::bigint * interval '1 microsecond' <= $4::timestamptz
RETURNING last_start`

// throttleLastStart reads the last start claimed, or makes the webhook's
// row with this start claimed when it has none (no reservation made it).
const throttleLastStart = `
WITH made AS (
    INSERT INTO webhook_throttle (webhook_id, interval_us, next_at, last_start)
    VALUES ($1, $3::bigint, $2::timestamptz, $2::timestamptz)
    ON CONFLICT (webhook_id) DO NOTHING
    RETURNING last_start
)
SELECT last_start, true FROM made
UNION ALL
SELECT last_start, false FROM webhook_throttle WHERE webhook_id = $1`

// ClaimStart gives webhookID an attempt start (microseconds): now when the
// last start given is at least interval earlier, else the start an
// interval after that one, if it is no later than latest (ok false
// otherwise, and start is the earliest one a claim could be given). The
// caller starts its attempt at start, not before. Starts given so are at
// least interval apart, whatever process claims them, so no second holds
// more than 1 s / interval of them; claims that come together are given
// consecutive starts in the order they come, none refused for another's
// (a claim with latest = now is the plain test: now or nothing).
func ClaimStart(ctx context.Context, db DB, webhookID string, interval time.Duration, now, latest time.Time) (start time.Time, ok bool, err error) {
	now = now.Truncate(time.Microsecond)
	err = db.QueryRow(ctx, throttleClaim, webhookID, now, interval.Microseconds(), latest).Scan(&start)
	if err == nil {
		return start, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, err
	}
	var (
		last time.Time
		made bool
	)
	if err := db.QueryRow(ctx, throttleLastStart, webhookID, now, interval.Microseconds()).Scan(&last, &made); err != nil {
		return time.Time{}, false, err
	}
	if made {
		return now, true, nil
	}
	return last.Add(interval), false, nil
}

// throttleReserveMany reserves $4[i] consecutive slots of webhook $1[i]
// (interval $3[i] µs) at or after $2 (and at least an interval after the
// last start given, as throttleReserve), rows locked in webhook order (so two
// processes' batches can't deadlock), and returns next_at after it.
const throttleReserveMany = `
INSERT INTO webhook_throttle AS t (webhook_id, interval_us, next_at, last_start)
SELECT r.webhook_id, r.interval_us, $2::timestamptz + r.n * r.interval_us * interval '1 microsecond', '-infinity'
FROM unnest($1::text[], $3::bigint[], $4::integer[]) AS r(webhook_id, interval_us, n)
ORDER BY r.webhook_id
ON CONFLICT (webhook_id) DO UPDATE SET
    interval_us = excluded.interval_us,
    next_at = greatest(t.next_at, $2::timestamptz, t.last_start + excluded.interval_us * interval '1 microsecond') + (excluded.next_at - $2::timestamptz)
RETURNING webhook_id, next_at`

// SlotRequest asks for one start slot of a webhook whose limit spaces
// starts Interval apart.
type SlotRequest struct {
	WebhookID string
	Interval  time.Duration
}

// ReserveSlots reserves one slot for each request, at or after now, in one
// statement: the requests for one webhook get consecutive slots, in order.
func ReserveSlots(ctx context.Context, db DB, reqs []SlotRequest, now time.Time) ([]time.Time, error) {
	runs := make(map[string]SlotRun)
	idx := make(map[string][]int)
	for i, r := range reqs {
		runs[r.WebhookID] = SlotRun{Interval: r.Interval, N: runs[r.WebhookID].N + 1}
		idx[r.WebhookID] = append(idx[r.WebhookID], i)
	}
	firsts, err := reserveRuns(ctx, db, throttleReserveMany, runs, now)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, len(reqs))
	for id, first := range firsts {
		for k, i := range idx[id] {
			out[i] = first.Add(time.Duration(k) * runs[id].Interval)
		}
	}
	return out, nil
}

// SlotRun asks for N consecutive start slots of a webhook whose limit
// spaces starts Interval apart.
type SlotRun struct {
	Interval time.Duration
	N        int
}

// reserveRuns runs query (throttleReserveMany or throttleReserveIntake:
// $1 webhook ids, $2 now, $3 intervals in µs, $4 counts; rows of webhook
// id and next_at after) for runs, and returns the first slot of each
// webhook it reserved for.
func reserveRuns(ctx context.Context, db DB, query string, runs map[string]SlotRun, now time.Time) (map[string]time.Time, error) {
	now = now.Truncate(time.Microsecond)
	ids := make([]string, 0, len(runs))
	intervals, counts := make([]int64, 0, len(runs)), make([]int32, 0, len(runs))
	for id, r := range runs {
		ids, intervals, counts = append(ids, id), append(intervals, r.Interval.Microseconds()), append(counts, int32(r.N))
	}
	rows, err := db.Query(ctx, query, ids, now, intervals, counts)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]time.Time, len(ids))
	for rows.Next() {
		var (
			id   string
			next time.Time
		)
		if err := rows.Scan(&id, &next); err != nil {
			return nil, err
		}
		r := runs[id]
		out[id] = next.Add(-time.Duration(r.N) * r.Interval)
	}
	return out, rows.Err()
}

// deliveryHoldSlots moves pending deliveries' due times to their reserved
// slots (throttle_slot records that each was given one), each guarded by
// the job serving it, and raises those jobs to River's first priority
// (engine.PriorityNormal, 1), so that at its slot each is fetched
// ahead of any backlog (River fetches by priority, then scheduled_at: at
// the bulk priority a held job fell due behind every bulk job enqueued
// before its slot, and ran late). The job is running (this is its run):
// River's snooze that follows sets its state and time, not its priority.
const deliveryHoldSlots = `
WITH held AS (
    UPDATE deliveries d SET next_attempt_at = h.slot, throttle_slot = h.slot, updated_at = $5
    FROM unnest($1::text[], $2::date[], $3::bigint[], $4::timestamptz[]) AS h(id, part_day, job_id, slot)
    WHERE d.id = h.id AND d.part_day = h.part_day AND d.job_id = h.job_id AND d.state = 'pending'
    RETURNING d.id, d.job_id
), raised AS (
    UPDATE river_job j SET priority = 1 FROM held WHERE j.id = held.job_id AND j.priority > 1
)
SELECT id FROM held`

// SlotHold is a delivery given a later slot, with the job serving it.
type SlotHold struct {
	Target *Target
	JobID  int64
	Slot   time.Time
}

// HoldSlots makes each slot its pending delivery's due time, recording
// that it was given that slot, if the job given still serves it, in one
// statement; it returns the ids of those it moved. A throttled delivery is
// thus not due (for the oldest-due gauge and the retry lateness) before
// its slot.
func HoldSlots(ctx context.Context, db DB, holds []SlotHold, now time.Time) (map[string]bool, error) {
	ids, days, jobs, slots := make([]string, len(holds)), make([]time.Time, len(holds)), make([]int64, len(holds)), make([]time.Time, len(holds))
	for i, h := range holds {
		ids[i], days[i], jobs[i], slots[i] = h.Target.DeliveryID, h.Target.PartDay, h.JobID, h.Slot
	}
	rows, err := db.Query(ctx, deliveryHoldSlots, ids, days, jobs, slots, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	held := make(map[string]bool, len(holds))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		held[id] = true
	}
	return held, rows.Err()
}

// throttledBacklog counts the slots reserved after $1 across webhooks: the
// deliveries waiting for their slot (a slot reserved by a job that was
// then lost counts too, until its time passes).
const throttledBacklog = `
SELECT coalesce(sum(ceil(extract(epoch FROM next_at - $1::timestamptz) * 1000000 / interval_us) - 1), 0)::bigint
FROM webhook_throttle WHERE next_at > $1::timestamptz`

// CountThrottled is how many deliveries wait for a rate-limited slot after
// now, read from webhook_throttle (one row per limited webhook).
func CountThrottled(ctx context.Context, db DB, now time.Time) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, throttledBacklog, now).Scan(&n)
	return n, err
}

// throttleReserveIntake is throttleReserveMany for the intake, in the
// producer's transaction: it reserves $4[i] consecutive slots of webhook
// $1[i] (interval $3[i] µs) at or after $2, but never waits for a row
// another transaction holds (SKIP LOCKED: another producer's open
// transaction, a claim or a reservation in progress): such a webhook gets
// no row back, and its deliveries take their slots at their first run.
// The rows it moves stay locked until the transaction ends. A webhook with
// no row yet gets one (its first slot is $2).
const throttleReserveIntake = `
WITH req AS (
    SELECT * FROM unnest($1::text[], $3::bigint[], $4::integer[]) AS r(webhook_id, interval_us, n)
), moved AS (
    UPDATE webhook_throttle t SET
        interval_us = r.interval_us,
        next_at = greatest(t.next_at, $2::timestamptz, t.last_start + r.interval_us * interval '1 microsecond') + r.n * r.interval_us * interval '1 microsecond'
    FROM req r
    WHERE t.webhook_id = r.webhook_id AND t.webhook_id IN (
        SELECT l.webhook_id FROM webhook_throttle l WHERE l.webhook_id = ANY($1::text[]) ORDER BY l.webhook_id FOR UPDATE SKIP LOCKED)
    RETURNING t.webhook_id, t.next_at
), made AS (
    INSERT INTO webhook_throttle (webhook_id, interval_us, next_at, last_start)
    SELECT r.webhook_id, r.interval_us, $2::timestamptz + r.n * r.interval_us * interval '1 microsecond', '-infinity'
    FROM req r WHERE NOT EXISTS (SELECT 1 FROM webhook_throttle t WHERE t.webhook_id = r.webhook_id)
    ORDER BY r.webhook_id
    ON CONFLICT (webhook_id) DO NOTHING
    RETURNING webhook_id, next_at
)
SELECT webhook_id, next_at FROM moved UNION ALL SELECT webhook_id, next_at FROM made`

// ReserveIntakeSlots reserves, in tx (the enqueue's), the slots each
// webhook of runs asks for, at or after now, in one statement, and returns
// each one's first slot (the others follow it an Interval apart). A webhook
// whose throttle row another transaction holds is left out, without
// waiting: its deliveries reserve at their first run. The rows reserved
// stay locked until tx ends.
func ReserveIntakeSlots(ctx context.Context, tx DB, runs map[string]SlotRun, now time.Time) (map[string]time.Time, error) {
	return reserveRuns(ctx, tx, throttleReserveIntake, runs, now)
}
