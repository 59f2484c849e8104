package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeathsHook writes, in tx, what must commit with deaths: recordings of one
// webhook's deliveries that tx has just recorded dead (see
// RecordAttemptsNotifying).
type DeathsHook func(ctx context.Context, tx pgx.Tx, deaths []Recording) error

// RecordAttemptsNotifying is RecordAttempts where the deaths of the batch
// commit together with what onDeaths writes about them (the delivery.dead
// notification). A batch without a death (the hot path), or a nil
// onDeaths, is RecordAttempts as it is: one statement. A batch with deaths
// is one transaction: the other attempts recorded first, in one statement,
// then each webhook's deaths under a savepoint of their own, recorded and
// handed to onDeaths. Should that fail for one webhook (onDeaths or the
// recording), its savepoint is rolled back: its deaths are not recorded
// (recorded[i] false, as when another run recorded first; the delivery
// stays pending, to be re-queued by the reconciler), nothing onDeaths
// wrote for them stays, and the rest of the batch commits. failed joins
// those errors; err is an error of the whole batch (nothing recorded).
func RecordAttemptsNotifying(ctx context.Context, db DB, rs []Recording, onDeaths DeathsHook) (recorded []bool, failed, err error) {
	var (
		live   []Recording
		liveAt []int
		dead   = map[string][]int{} // webhook id → indexes in rs
		order  []string
	)
	for i, r := range rs {
		if r.Outcome.State != StateDead {
			live, liveAt = append(live, r), append(liveAt, i)
			continue
		}
		if _, ok := dead[r.Target.WebhookID]; !ok {
			order = append(order, r.Target.WebhookID)
		}
		dead[r.Target.WebhookID] = append(dead[r.Target.WebhookID], i)
	}
	if onDeaths == nil || len(order) == 0 {
		recorded, err = RecordAttempts(ctx, db, rs)
		return recorded, nil, err
	}
	recorded = make([]bool, len(rs))
	var errs []error
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if len(live) > 0 {
			ok, err := RecordAttempts(ctx, tx, live)
			if err != nil {
				return err
			}
			for j, v := range ok {
				recorded[liveAt[j]] = v
			}
		}
		for _, webhookID := range order {
			at := dead[webhookID]
			group := make([]Recording, len(at))
			for j, i := range at {
				group[j] = rs[i]
			}
			var ok []bool
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				var err error
				if ok, err = RecordAttempts(ctx, sp, group); err != nil {
					return err
				}
				var deaths []Recording
				for j, v := range ok {
					if v {
						deaths = append(deaths, group[j])
					}
				}
				if len(deaths) == 0 {
					return nil
				}
				return onDeaths(ctx, sp, deaths)
			})
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				errs = append(errs, fmt.Errorf("error recording the deaths of webhook %s's deliveries: %w", webhookID, err))
				continue
			}
			for j, v := range ok {
				recorded[at[j]] = v
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return recorded, errors.Join(errs...), nil
}

// deadNoticeName is the webhookd_cursors row that holds when webhook
// webhookID's latest delivery.dead notification is sent (Unix
// microseconds): the row the notifications of its deaths lock.
func deadNoticeName(webhookID string) string { return "delivery_dead:" + webhookID }

// deadNoticeLock locks the row, creating it (position 0: none yet).
const deadNoticeLock = `
INSERT INTO webhookd_cursors (name, position, updated_at) VALUES ($1, 0, now())
ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
RETURNING position`

// LockDeadNotice locks, in tx, webhook webhookID's delivery.dead row, so
// that the deaths of its deliveries are told one transaction at a time,
// and returns when its latest notification is (or was) sent: zero when
// there has been none.
func LockDeadNotice(ctx context.Context, tx pgx.Tx, webhookID string) (time.Time, error) {
	var us int64
	if err := tx.QueryRow(ctx, deadNoticeLock, deadNoticeName(webhookID)).Scan(&us); err != nil {
		return time.Time{}, err
	}
	if us == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(us).UTC(), nil
}

// SetDeadNotice records, in tx (holding LockDeadNotice's lock), that
// webhook webhookID's latest delivery.dead notification is sent at sendAt.
func SetDeadNotice(ctx context.Context, tx pgx.Tx, webhookID string, sendAt time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE webhookd_cursors SET position = $2, updated_at = now() WHERE name = $1`,
		deadNoticeName(webhookID), sendAt.UnixMicro())
	return err
}

// LockEventBody locks event id and returns its body, or ErrNotFound.
func LockEventBody(ctx context.Context, tx pgx.Tx, id string) ([]byte, error) {
	var body []byte
	err := byID(id, func(lo, hi time.Time) error {
		return tx.QueryRow(ctx, `SELECT body FROM events WHERE id = $1 AND part_day BETWEEN $2 AND $3 FOR UPDATE`, id, lo, hi).Scan(&body)
	})
	return body, err
}

// SetNotSentEventBody replaces the body of event id, locked by
// LockEventBody, while none of its deliveries has made an attempt (it
// reports whether it did): a delivery.dead notification that is still
// gathering deaths before it is sent.
func SetNotSentEventBody(ctx context.Context, tx pgx.Tx, id string, body []byte) (bool, error) {
	var set bool
	err := byID(id, func(lo, hi time.Time) error {
		tag, err := tx.Exec(ctx, `
UPDATE events e SET body = $4 WHERE e.id = $1 AND e.part_day BETWEEN $2 AND $3
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.part_day = e.part_day AND d.attempts > 0)`, id, lo, hi, body)
		set = tag.RowsAffected() == 1
		if err == nil && !set {
			return pgx.ErrNoRows
		}
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return set, err
}

// DelayEventDeliveries makes the deliveries of event id first due at at.
func DelayEventDeliveries(ctx context.Context, tx pgx.Tx, id string, at time.Time) error {
	return byID(id, func(lo, hi time.Time) error {
		_, err := tx.Exec(ctx, `UPDATE deliveries SET next_attempt_at = $4 WHERE event_id = $1 AND part_day BETWEEN $2 AND $3`, id, lo, hi, at)
		return err
	})
}
