package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// River's insert notification, as River sends it for a queue when it
// inserts an available job: on channel <schema>.river_insert (the schema
// of the search path, as River's own listener takes it), payload
// {"queue": "<queue>"}. Every process's producer of that queue fetches on
// it (within its fetch cooldown). webhookd sends it itself when a job
// River knows nothing about comes due (engine.Wakes), and in the
// statements that make a job available at once (the FIFO wakes).
const (
	riverInsertChannel = `concat(current_schema(), '.river_insert')`
	notifyQueue        = `SELECT pg_notify(` + riverInsertChannel + `, json_build_object('queue', $1::text)::text)`
	// notifyWoken ends a statement whose CTE woke names the delivery jobs it
	// made available: it sends the deliveries queue's insert notification
	// (at commit) when there is one, and returns how many there are.
	notifyWoken = `, sent AS (
    SELECT pg_notify(` + riverInsertChannel + `, '{"queue": "deliveries"}') FROM (SELECT FROM woke LIMIT 1) w
)
SELECT (SELECT count(*) FROM woke), (SELECT count(*) FROM sent)`
)

// execWake runs a statement ending in notifyWoken and returns how many
// jobs it woke.
func execWake(ctx context.Context, db DB, sql string, args ...any) (int64, error) {
	var woken, sent int64
	err := db.QueryRow(ctx, sql, args...).Scan(&woken, &sent)
	return woken, err
}

// wakeWaiting makes available at $2 up to $4 jobs of webhook $1's due
// pending deliveries (outside a FIFO line) that wait snoozed beyond $3,
// the oldest deliveries first: the webhook's pending deliveries found
// through deliveries_webhook_state_idx, each job by River's primary key.
var wakeWaiting = `
WITH waiting AS (
    SELECT d.state, d.job_id FROM deliveries d
    JOIN river_job rj ON rj.id = d.job_id
    WHERE d.webhook_id = $1 AND d.state = 'pending' AND d.fifo_seq IS NULL
      AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $2)
      AND rj.state IN ('available', 'scheduled') AND rj.scheduled_at > $3
    ORDER BY d.created_at, d.id
    LIMIT $4
), ` + wakeJobsOf("waiting", "$2")

// WakeWaiting wakes up to limit jobs of webhookID's due pending deliveries
// that wait snoozed until after beyond, oldest first, making them
// available now (a saturated webhook's backlog, waiting for its turns,
// when the endpoint has recovered: engine.Worker). It returns how many it
// woke.
func WakeWaiting(ctx context.Context, db DB, webhookID string, now, beyond time.Time, limit int) (int64, error) {
	return execWake(ctx, db, wakeWaiting, webhookID, now, beyond, limit)
}

// NotifyQueue sends River's insert notification for queue: every process
// working it fetches (engine.Wakes).
func NotifyQueue(ctx context.Context, db DB, queue string) error {
	_, err := db.Exec(ctx, notifyQueue, queue)
	return err
}

// dueSoon lists the distinct times at which available jobs of queue $1 come
// due within the next $2 (River's scheduler makes a job waiting on a retry
// or a snooze available up to 5 s ahead, and fetches only due ones): one
// short index range of River's fetch index per priority.
const dueSoon = `
SELECT DISTINCT scheduled_at FROM river_job
WHERE state = 'available' AND queue = $1 AND priority = ANY('{1,2,3,4}'::smallint[])
  AND scheduled_at > now() AND scheduled_at <= now() + $2::interval
ORDER BY scheduled_at
LIMIT $3`

// DueSoon returns up to limit distinct times at which available jobs of
// queue come due within the next within, soonest first.
func DueSoon(ctx context.Context, db DB, queue string, within time.Duration, limit int) ([]time.Time, error) {
	rows, err := db.Query(ctx, dueSoon, queue, within, limit)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("error listing jobs coming due: %w", err)
	}
	return out, nil
}
