package store

import (
	"github.com/mono/webhookd/apitype"

	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ordered (FIFO) delivery per webhook (webhooks.ordering = 'fifo'): the
// order is the sequence enqueue gives each delivery under the webhook's
// webhook_fifo row lock (deliveries.fifo_seq), so commit order per webhook.
// A FIFO webhook's line is its deliveries with a fifo_seq in state pending,
// paused or dead, and its head the lowest of them: only the head is sent
// (internal/engine/fifo.go), and a dead head blocks the line until it is
// replayed or skipped. See docs/architecture.md, "FIFO webhooks".

// Webhook orderings (webhooks.ordering).
const (
	OrderingNone = apitype.OrderingNone
	OrderingFIFO = apitype.OrderingFIFO
)

// fifoTake takes $2[i] sequence numbers of FIFO webhook $1[i], locking the
// webhook_fifo rows in webhook id order (two enqueues fanning out to
// several FIFO webhooks can't deadlock) until the transaction ends, and
// returns the first number taken of each. A webhook with no row (not FIFO,
// or switched off meanwhile: the DELETE waited for our lock or we for its)
// takes none.
const fifoTake = `
WITH want AS (
    SELECT * FROM unnest($1::text[], $2::bigint[]) AS w(webhook_id, n)
), locked AS (
    SELECT f.webhook_id FROM webhook_fifo f JOIN want w USING (webhook_id)
    ORDER BY f.webhook_id FOR UPDATE OF f
)
UPDATE webhook_fifo f SET next_seq = f.next_seq + w.n
FROM want w JOIN locked l USING (webhook_id)
WHERE f.webhook_id = w.webhook_id
RETURNING f.webhook_id, f.next_seq - w.n + 1`

// TakeFIFOSeqs takes counts[id] consecutive sequence numbers of each FIFO
// webhook id, in db (the producer's transaction, which holds each webhook's
// lock until it ends: enqueues to one FIFO webhook are serialised), and
// returns the first of each. A webhook that is not FIFO is missing from the
// result.
func TakeFIFOSeqs(ctx context.Context, db DB, counts map[string]int) (map[string]int64, error) {
	ids, ns := make([]string, 0, len(counts)), make([]int64, 0, len(counts))
	for id, n := range counts {
		ids, ns = append(ids, id), append(ns, int64(n))
	}
	rows, err := db.Query(ctx, fifoTake, ids, ns)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	first := make(map[string]int64, len(ids))
	for rows.Next() {
		var (
			id  string
			seq int64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		first[id] = seq
	}
	return first, rows.Err()
}

// fifoLine is webhook $1's line (uses deliveries_fifo_line_idx).
const fifoLine = `
SELECT id, part_day, state, fifo_seq, job_id, next_attempt_at FROM deliveries
WHERE webhook_id = $1 AND fifo_seq IS NOT NULL AND state IN ('pending', 'paused', 'dead')`

const fifoHead = fifoLine + `
ORDER BY fifo_seq LIMIT 1`

// FIFOHead is the head of a FIFO webhook's line: the delivery with the
// lowest fifo_seq in state pending, paused or dead.
type FIFOHead struct {
	DeliveryID string
	State      string
	Seq        int64
	// NextAttemptAt is when the head is next attempted (a pending head
	// waiting for a retry: in the future), nil when not set.
	NextAttemptAt *time.Time
}

// GetFIFOHead returns webhookID's head, or nil when its line is empty.
func GetFIFOHead(ctx context.Context, db DB, webhookID string) (*FIFOHead, error) {
	var (
		h     FIFOHead
		day   time.Time
		jobID *int64
	)
	err := db.QueryRow(ctx, fifoHead, webhookID).Scan(&h.DeliveryID, &day, &h.State, &h.Seq, &jobID, &h.NextAttemptAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// fifoWake makes the job of webhook $1's head available at once (as River's
// JobRetry does), when the head is pending and its job waits snoozed —
// scheduled, or available with a scheduled_at ahead (River's snoozes
// within its scheduler interval, 5 s, are so): the delivery its
// predecessor's success (or a skip) made the head goes out on the queue's
// next fetch, which River's insert notification (sent at commit when a job
// was woken) starts at once, instead of at its job's next check.
var fifoWake = `
WITH head AS (` + fifoHead + `), ` + wakeJobsOf("head", "$2")

// wakeJobsOf is the CTE woke, which makes the jobs of the pending
// deliveries of from (its state and job_id) available at now (a statement
// parameter) when they wait snoozed (see fifoWake), and the end of the
// statement, notifyWoken.
func wakeJobsOf(from, now string) string {
	return `woke AS (
    UPDATE river_job j SET state = 'available', scheduled_at = ` + now + `
    FROM ` + from + `
    WHERE ` + from + `.state = 'pending' AND j.id = ` + from + `.job_id
      AND j.state IN ('available', 'scheduled', 'retryable') AND j.scheduled_at > ` + now + `
    RETURNING j.id
)` + notifyWoken
}

// fifoWakeDue wakes, for every live FIFO webhook, its head's job when the
// head is pending and due ($1) but its job waits snoozed beyond that: a
// wake that was lost (a crash between a success's recording and its wake,
// or a job that was running when it was woken). One probe of
// deliveries_fifo_line_idx per FIFO webhook, as CountFIFOBlocked.
var fifoWakeDue = `
WITH head AS (
    SELECT h.state, h.job_id FROM webhook_fifo f
    JOIN webhooks w ON w.id = f.webhook_id AND w.deleted_at IS NULL
    CROSS JOIN LATERAL (
        SELECT d.state, d.job_id, d.next_attempt_at FROM deliveries d
        WHERE d.webhook_id = f.webhook_id AND d.fifo_seq IS NOT NULL AND d.state IN ('pending', 'paused', 'dead')
        ORDER BY d.fifo_seq LIMIT 1) h
    WHERE h.next_attempt_at IS NULL OR h.next_attempt_at <= $1
), ` + wakeJobsOf("head", "$1")

// WakeDueFIFOHeads wakes the job of every FIFO line's head that is due but
// waits snoozed (see fifoWakeDue): the reconciler's bound on how late a lost
// wake leaves a line. It returns how many it woke.
func WakeDueFIFOHeads(ctx context.Context, db DB, now time.Time) (int64, error) {
	return execWake(ctx, db, fifoWakeDue, now)
}

// WakeFIFOHead wakes the job of webhookID's head (see fifoWake); it reports
// whether there was one to wake.
func WakeFIFOHead(ctx context.Context, db DB, webhookID string, now time.Time) (bool, error) {
	n, err := execWake(ctx, db, fifoWake, webhookID, now)
	return n > 0, err
}

// fifoStatus is webhook $1's head and how many deliveries wait behind it.
const fifoStatus = `
WITH line AS (` + fifoLine + `)
SELECT h.id, h.state, (SELECT count(*) FROM line) - 1
FROM (SELECT id, state FROM line ORDER BY fifo_seq LIMIT 1) h`

// FIFOStatus is a FIFO webhook's line as the API shows it.
type FIFOStatus struct {
	// BlockedBy is the dead head that blocks the line, nil when none.
	BlockedBy *string
	// Waiting is how many deliveries of the line wait behind its head.
	Waiting int64
}

// GetFIFOStatus returns webhookID's line status (zero when its line is
// empty).
func GetFIFOStatus(ctx context.Context, db DB, webhookID string) (*FIFOStatus, error) {
	var (
		id, state string
		s         FIFOStatus
	)
	err := db.QueryRow(ctx, fifoStatus, webhookID).Scan(&id, &state, &s.Waiting)
	if errors.Is(err, pgx.ErrNoRows) {
		return &s, nil
	}
	if err != nil {
		return nil, err
	}
	if state == StateDead {
		s.BlockedBy = &id
	}
	return &s, nil
}

// fifoSkip takes webhook $1's head out of its line when it is delivery $2
// and dead: it stays dead (replayable, then outside the order) and the next
// delivery becomes the head. The head's row is locked, so a replay racing
// the skip either flips it first (the skip matches nothing) or waits.
const fifoSkip = `
WITH head AS (` + fifoHead + ` FOR UPDATE)
UPDATE deliveries d SET fifo_seq = NULL, updated_at = $3
FROM head
WHERE d.id = head.id AND d.part_day = head.part_day AND d.id = $2 AND d.state = 'dead'
RETURNING d.id`

// ErrNotBlocking means a skip named a delivery that is not the dead head
// blocking its webhook's line (the API answers 409).
var ErrNotBlocking = errors.New("the delivery is not the dead head blocking the webhook's line")

// SkipFIFOHead takes the dead head deliveryID out of webhookID's line and
// wakes the next head's job, in db (a transaction, so both or neither).
// ErrNotBlocking when deliveryID is not the dead head.
func SkipFIFOHead(ctx context.Context, db DB, webhookID, deliveryID string, now time.Time) error {
	var id string
	err := db.QueryRow(ctx, fifoSkip, webhookID, deliveryID, now).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotBlocking
	}
	if err != nil {
		return err
	}
	_, err = WakeFIFOHead(ctx, db, webhookID, now)
	return err
}

const (
	webhookSetOrdering = `
UPDATE webhooks SET ordering = $2 WHERE id = $1 AND ordering <> $2 AND deleted_at IS NULL RETURNING id`
	fifoStart = `INSERT INTO webhook_fifo (webhook_id) VALUES ($1) ON CONFLICT (webhook_id) DO NOTHING`
	// fifoStop deletes the row (waiting for enqueues holding it), then
	// takes every delivery out of the line and wakes the pending ones' jobs.
	fifoStop = `DELETE FROM webhook_fifo WHERE webhook_id = $1`
)

var fifoFree = `
WITH freed AS (
    UPDATE deliveries SET fifo_seq = NULL, updated_at = $2
    WHERE webhook_id = $1 AND fifo_seq IS NOT NULL AND state IN ('pending', 'paused', 'dead')
    RETURNING state, job_id
), ` + wakeJobsOf("freed", "$2")

// SetOrdering switches live webhook id to ordering (OrderingNone or
// OrderingFIFO), in db, which must be a transaction. To fifo: deliveries
// enqueued from then on are ordered; those already pending keep no place
// in the line and go out as they come. To none: every delivery leaves the
// line and the pending ones' jobs are woken, so they go out at once,
// unordered; a dead head stays dead (replayable). Setting the ordering a
// webhook has already changes nothing.
func SetOrdering(ctx context.Context, db DB, id, ordering string, now time.Time) error {
	var got string
	err := db.QueryRow(ctx, webhookSetOrdering, id, ordering).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if ordering == OrderingFIFO {
		_, err = db.Exec(ctx, fifoStart, id)
		return err
	}
	if _, err := db.Exec(ctx, fifoStop, id); err != nil {
		return err
	}
	_, err = execWake(ctx, db, fifoFree, id, now)
	return err
}

// fifoBlocked counts the live FIFO webhooks (a webhook_fifo row exists
// exactly while a webhook is FIFO) whose head is dead: one index probe of
// deliveries_fifo_line_idx per FIFO webhook.
const fifoBlocked = `
SELECT count(*) FROM webhook_fifo f
JOIN webhooks w ON w.id = f.webhook_id AND w.deleted_at IS NULL
CROSS JOIN LATERAL (` + fifoLineOf + `) h
WHERE h.state = 'dead'`

// fifoLineOf is the head of the line of the webhook f.webhook_id.
const fifoLineOf = `
SELECT state FROM deliveries d
WHERE d.webhook_id = f.webhook_id AND d.fifo_seq IS NOT NULL AND d.state IN ('pending', 'paused', 'dead')
ORDER BY d.fifo_seq LIMIT 1`

// CountFIFOBlocked is how many FIFO webhooks have their line blocked by a
// dead head (fifo.blocked_by), for webhookd_fifo_blocked_webhooks.
func CountFIFOBlocked(ctx context.Context, db DB) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, fifoBlocked).Scan(&n)
	return n, err
}
