package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mono/webhookd/internal/ident"
)

// PartitionedTables are the tables partitioned by day (migration 5), in the
// order their partitions are created and dropped.
var PartitionedTables = []string{"events", "deliveries", "attempts"}

// minDay and maxDay bound part_day for an identifier that carries no time.
var (
	minDay = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDay = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// Day returns t's UTC date at midnight.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// idDays returns the range of days in which the row with identifier id was
// put: the day its UUIDv7 was made, give or take one for clocks that differ
// between processes and the database. A row moved by retention is in a later
// day (see byID).
func idDays(id string) (lo, hi time.Time) {
	t, ok := ident.Time(id)
	if !ok {
		return minDay, maxDay
	}
	day := Day(t)
	return day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)
}

// byID runs a lookup of the row with identifier id, first in the day
// partitions its id names (one to three partitions: the hot path), then, if
// that finds nothing, in every partition from that day on, where retention
// may have moved it. query gets the range of days to search and returns
// pgx.ErrNoRows or ErrNotFound when it finds nothing; byID returns
// ErrNotFound then.
func byID(id string, query func(lo, hi time.Time) error) error {
	lo, hi := idDays(id)
	err := query(lo, hi)
	if isNotFound(err) && hi != maxDay {
		err = query(lo, maxDay)
	}
	if isNotFound(err) {
		return ErrNotFound
	}
	return err
}

func isNotFound(err error) bool {
	return errors.Is(err, pgx.ErrNoRows) || errors.Is(err, ErrNotFound)
}

// PartitionName is table's partition for day (deliveries_p20261207).
func PartitionName(table string, day time.Time) string {
	return table + "_p" + day.Format("20060102")
}

var partitionNameRE = regexp.MustCompile(`^(?:events|deliveries|attempts)_p([0-9]{8})$`)

// EnsurePartitions creates the day partitions of every partitioned table for
// each day from from to to (inclusive) that lacks one, moving rows of those
// days out of the default partitions. It returns how many partitions it
// created. It is safe to call concurrently (an advisory lock serialises it).
//
// Each partition is created in its own short transaction: attaching one
// locks its parent's default partition exclusively (to check that no row
// of the day is left in it), and a transaction holding that lock on one
// table while waiting for another could deadlock with the hot path.
//
// That lock is taken first, and it gives way: every statement on the hot
// path (whose cached plans lock every partition) queues behind a waiting
// exclusive lock, so one long query holding the default partition would
// otherwise stall deliveries and the API for as long as the wait. Each try
// waits at most half of PostgreSQL's deadlock_timeout (at most 200 ms),
// then lets go; tries repeat 50 ms apart for up to lockTimeout (0 means
// 5 s). A partition that exists already costs one catalogue lookup and no
// lock.
func EnsurePartitions(ctx context.Context, db DB, from, to time.Time, lockTimeout time.Duration) (created int, err error) {
	if lockTimeout <= 0 {
		lockTimeout = 5 * time.Second
	}
	tryTimeout, err := lockTryTimeout(ctx, db)
	if err != nil {
		return 0, err
	}
	from, to = Day(from), Day(to)
	for day := from; !day.After(to); day = day.AddDate(0, 0, 1) {
		for _, table := range PartitionedTables {
			name := PartitionName(table, day)
			create := func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(webhookd_partitions_lock())`); err != nil {
					return err
				}
				var exists bool
				if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
					return err
				}
				if exists {
					return nil
				}
				if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", max(tryTimeout.Milliseconds(), 1))); err != nil {
					return err
				}
				// Locked before its rows of the day move out, so that no
				// insert can put one back before the ATTACH checks.
				if _, err := tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier{table + "_default"}.Sanitize()+` IN ACCESS EXCLUSIVE MODE`); err != nil {
					return err
				}
				var made bool
				if err := tx.QueryRow(ctx, `SELECT webhookd_ensure_partition($1, $2)`, table, day).Scan(&made); err != nil {
					return err
				}
				if made {
					created++
				}
				return nil
			}
			if err := retryLockTimeouts(ctx, db, lockTimeout, create); err != nil {
				return created, fmt.Errorf("error creating partition %s: %w", name, err)
			}
		}
	}
	return created, nil
}

// PartitionDays lists the days that have a partition of any partitioned
// table, oldest first.
func PartitionDays(ctx context.Context, db DB) ([]time.Time, error) {
	rows, err := db.Query(ctx, `
SELECT c.relname
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
JOIN pg_namespace n ON n.oid = p.relnamespace AND n.nspname = current_schema()
WHERE p.relname = ANY($1)`, PartitionedTables)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var days []time.Time
	for _, name := range names {
		m := partitionNameRE.FindStringSubmatch(name)
		if m == nil {
			continue // the default partitions
		}
		day, err := time.Parse("20060102", m[1])
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", name, err)
		}
		if !slices.ContainsFunc(days, day.Equal) {
			days = append(days, day)
		}
	}
	slices.SortFunc(days, time.Time.Compare)
	return days, nil
}

// Retirement is what retiring one day did.
type Retirement struct {
	Day time.Time
	// MovedDeliveries, MovedEvents and MovedAttempts are the rows still
	// within their retention, moved forward to another day.
	MovedDeliveries, MovedEvents, MovedAttempts int64
	// DroppedDeliveries is how many deliveries went with the dropped
	// partitions (PostgreSQL's estimate when it has analysed the
	// partition, otherwise an exact count).
	DroppedDeliveries int64
}

// RetirePolicy says which rows of a retiring day are kept, and where to.
type RetirePolicy struct {
	// To is the day kept rows move to (today). It must have partitions.
	To time.Time
	// FinishedBefore: succeeded and cancelled deliveries finished before it
	// are dropped (now − WEBHOOKD_RETENTION).
	FinishedBefore time.Time
	// DeadBefore: dead deliveries that died before it are dropped
	// (now − WEBHOOKD_DEAD_RETENTION).
	DeadBefore time.Time
	// LockTimeout bounds the wait for the locks dropping partitions takes;
	// 0 means 5 s. A day that can't get them is retried by the next run.
	LockTimeout time.Duration
}

// retireMove moves, from day $1 to day $2, the deliveries still within
// their retention (pending and paused ones always, unless their webhook is
// deleted; succeeded and cancelled ones finished at or after $3; dead ones
// at or after $4), with their attempts and events: a delivery, its
// attempts and its event always share a day. %s narrows which rows are
// looked at.
//
// A pending or paused delivery of a deleted webhook (abandoned: see
// CancelAbandoned) stays behind and goes with the day: nothing would ever
// send it, and moving it would keep it for ever. Only pending and paused
// rows consult webhooks (the planner reads its deleted rows once).
const retireMove = `
WITH moved AS (
    UPDATE deliveries SET part_day = $2
    WHERE part_day = $1 %s
      AND NOT ((state IN ('succeeded', 'cancelled') AND coalesce(finished_at, 'infinity') < $3)
            OR (state = 'dead' AND coalesce(finished_at, 'infinity') < $4
                -- a dead head blocking a live FIFO webhook's line is kept
                AND (fifo_seq IS NULL OR EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id AND w.deleted_at IS NOT NULL))))
      AND (state NOT IN ('pending', 'paused')
           OR NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id AND w.deleted_at IS NOT NULL))
    RETURNING id, event_id
), moved_attempts AS (
    UPDATE attempts SET part_day = $2
    WHERE part_day = $1 AND delivery_id IN (SELECT id FROM moved)
    RETURNING 1
), moved_events AS (
    UPDATE events SET part_day = $2
    WHERE part_day = $1 AND id IN (SELECT event_id FROM moved)
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM moved_attempts), (SELECT count(*) FROM moved_events)`

// RetireDay applies retention to day in two transactions.
//
// The first, which takes no lock stronger than an UPDATE's, reads the whole
// day: it moves the rows still within their retention to p.To and deletes
// the idempotency keys of the day's events that stay behind.
//
// The second drops the day's partitions. Dropping a partition locks its
// parent exclusively, so it locks events, deliveries and attempts at once.
// Statements on the hot path take those tables in other orders (the batched
// load reads deliveries, then events), so each try waits for the locks less
// than PostgreSQL's deadlock_timeout and gives way, rather than let a
// deadlock abort a delivery or an API request; tries repeat for up to
// p.LockTimeout. The transaction is kept short: it moves
// again only what a replay may have made pending (or dead anew) since the
// first, found through the partial indexes on those states, deletes the
// replay history of the deliveries that go, and drops the partitions. A day
// without partitions is a no-op.
func RetireDay(ctx context.Context, db DB, day time.Time, p *RetirePolicy) (*Retirement, error) {
	day = Day(day)
	r := &Retirement{Day: day}
	lockTimeout := p.LockTimeout
	if lockTimeout <= 0 {
		lockTimeout = 5 * time.Second
	}
	deliveriesName := PartitionName("deliveries", day)
	deliveries := pgx.Identifier{deliveriesName}.Sanitize()
	events := pgx.Identifier{PartitionName("events", day)}.Sanitize()
	// begin starts each transaction and reports which of the day's
	// partitions of deliveries and events exist.
	begin := func(tx pgx.Tx) (hasDeliveries, hasEvents bool, err error) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(webhookd_partitions_lock())`); err != nil {
			return false, false, err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())); err != nil {
			return false, false, err
		}
		err = tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL`,
			deliveriesName, PartitionName("events", day)).Scan(&hasDeliveries, &hasEvents)
		return hasDeliveries, hasEvents, err
	}
	move := func(tx pgx.Tx, narrow string) error {
		var d, a, e int64
		if err := tx.QueryRow(ctx, fmt.Sprintf(retireMove, narrow), day, Day(p.To), p.FinishedBefore, p.DeadBefore).Scan(&d, &a, &e); err != nil {
			return fmt.Errorf("error moving kept rows out of %s: %w", day.Format(time.DateOnly), err)
		}
		r.MovedDeliveries, r.MovedAttempts, r.MovedEvents = r.MovedDeliveries+d, r.MovedAttempts+a, r.MovedEvents+e
		return nil
	}

	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		hasDeliveries, hasEvents, err := begin(tx)
		if err != nil {
			return err
		}
		if hasDeliveries {
			if err := move(tx, ""); err != nil {
				return err
			}
		}
		if !hasEvents {
			return nil
		}
		if _, err := tx.Exec(ctx, `
DELETE FROM idempotency_keys k USING `+events+` e
WHERE e.idempotency_key IS NOT NULL AND k.account_id = e.account_id AND k.key = e.idempotency_key AND k.event_id = e.id`); err != nil {
			return fmt.Errorf("error deleting the idempotency keys of %s: %w", day.Format(time.DateOnly), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// The drop gives way. Its tries each wait for the locks at most
	// tryTimeout, under PostgreSQL's deadlock_timeout: a hot-path statement
	// holding one of the three tables while waiting for another that this
	// transaction already holds (the batched load reads deliveries, then
	// events) is then never the one a deadlock aborts. Tries repeat, a
	// moment apart, for up to lockTimeout.
	tryTimeout, err := lockTryTimeout(ctx, db)
	if err != nil {
		return nil, err
	}
	drop := func(tx pgx.Tx) error {
		hasDeliveries, _, err := begin(tx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", max(tryTimeout.Milliseconds(), 1))); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE events, deliveries, attempts IN ACCESS EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("error locking the partitioned tables to drop %s: %w", day.Format(time.DateOnly), err)
		}
		if hasDeliveries {
			if err := move(tx, `AND (state = 'pending' OR state = 'dead')`); err != nil {
				return err
			}
			var estimate float64
			if err := tx.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = $1::regclass`, deliveriesName).Scan(&estimate); err != nil {
				return err
			}
			if estimate >= 0 {
				r.DroppedDeliveries = int64(estimate)
			} else if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+deliveries).Scan(&r.DroppedDeliveries); err != nil {
				return err
			}
			for _, q := range []string{
				`DELETE FROM delivery_replays r USING ` + deliveries + ` d WHERE r.delivery_id = d.id`,
				`DELETE FROM replay_batch_items i USING ` + deliveries + ` d WHERE i.delivery_id = d.id`,
			} {
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("error deleting the replay history of %s: %w", day.Format(time.DateOnly), err)
				}
			}
		}
		for _, table := range slices.Backward(PartitionedTables) {
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{PartitionName(table, day)}.Sanitize()); err != nil {
				return fmt.Errorf("error dropping %s: %w", PartitionName(table, day), err)
			}
		}
		return nil
	}
	if err := retryLockTimeouts(ctx, db, lockTimeout, drop); err != nil {
		return nil, err
	}
	return r, nil
}

// tryPause is the pause between two tries to take locks that give way.
const tryPause = 50 * time.Millisecond

// retryLockTimeouts runs f in a transaction, again after tryPause each time
// it fails for a lock it could not get in time, for up to total.
func retryLockTimeouts(ctx context.Context, db DB, total time.Duration, f func(pgx.Tx) error) error {
	deadline := time.Now().Add(total)
	for {
		err := pgx.BeginFunc(ctx, db, f)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.LockNotAvailable || time.Now().Add(tryPause).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(tryPause):
		}
	}
}

// lockTryTimeout is how long one try of a lock that gives way waits: half
// the server's deadlock_timeout (1 s by default), at most 200 ms.
func lockTryTimeout(ctx context.Context, db DB) (time.Duration, error) {
	var ms float64
	if err := db.QueryRow(ctx, `SELECT extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000`).Scan(&ms); err != nil {
		return 0, fmt.Errorf("error reading deadlock_timeout: %w", err)
	}
	return max(min(time.Duration(ms/2*float64(time.Millisecond)), 200*time.Millisecond), time.Millisecond), nil
}
