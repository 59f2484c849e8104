package store

import (
	"context"
	"time"

	"github.com/mono/webhookd/internal/ident"
)

// What the dashboard reads beyond the API's own queries, through admin's
// operations (admin.API.ListDeliveryAttempts).

const deliveriesAttempts = `
SELECT d.id, d.account_id, a.number, a.generation, a.counted, a.scheduled_at, a.started_at, a.duration_us, a.status_code,
       a.error_kind, a.error_message, substring(a.response_excerpt FROM 1 FOR $2), a.signature_t
FROM deliveries d
-- The ids are named on attempt_log's side too: a join condition alone is
-- not pushed into the view's branches (a union branch with a WHERE can't
-- be planned as part of the join), so it would read every attempt; a
-- condition on the view is, and each branch reads its key.
LEFT JOIN attempt_log a ON a.delivery_id = d.id AND a.delivery_id = ANY($1) AND a.part_day >= $3
WHERE d.id = ANY($1) AND d.part_day >= $3 ORDER BY d.id, a.id`

// DeliveryAttempts is a delivery's account and attempts, oldest first, as
// DeliveriesAttempts reads them.
type DeliveryAttempts struct {
	AccountID string
	Attempts  []AttemptRecord
}

// DeliveriesAttempts returns the account and attempts of each of
// deliveryIDs (one page of a listing) in one query, with response excerpts
// cut to excerptMax bytes. An unknown delivery has no entry; one without
// attempts has an entry with none. Only the day partitions from the oldest
// delivery's id on are read (attempts share their delivery's day, which
// only ever moves forward).
func DeliveriesAttempts(ctx context.Context, db DB, deliveryIDs []string, excerptMax int) (map[string]*DeliveryAttempts, error) {
	from := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	for _, id := range deliveryIDs {
		t, ok := ident.Time(id)
		if !ok {
			from = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
			break
		}
		if day := Day(t).AddDate(0, 0, -1); day.Before(from) {
			from = day
		}
	}
	rows, err := db.Query(ctx, deliveriesAttempts, deliveryIDs, excerptMax, from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]*DeliveryAttempts, len(deliveryIDs))
	for rows.Next() {
		var (
			id, accountID        string
			number, generation   *int
			counted              *bool
			scheduledAt, started *time.Time
			us, signatureT       *int64
			a                    AttemptRecord
		)
		if err := rows.Scan(&id, &accountID, &number, &generation, &counted, &scheduledAt, &started, &us, &a.StatusCode,
			&a.ErrorKind, &a.ErrorMessage, &a.ResponseExcerpt, &signatureT); err != nil {
			return nil, err
		}
		d := out[id]
		if d == nil {
			d = &DeliveryAttempts{AccountID: accountID}
			out[id] = d
		}
		if number == nil {
			continue // no attempt: the left join's row of the delivery alone
		}
		a.Number, a.Generation, a.Counted, a.ScheduledAt, a.StartedAt = *number, *generation, *counted, *scheduledAt, *started
		a.Duration, a.SignatureT = time.Duration(*us)*time.Microsecond, *signatureT
		d.Attempts = append(d.Attempts, a)
	}
	return out, rows.Err()
}

// DeleteExpiredSessions deletes the dashboard sessions expired at now and
// reports how many. Sign-in and the hourly retention pass both call it, so
// expired sessions don't pile up when nobody signs in.
func DeleteExpiredSessions(ctx context.Context, db DB, now time.Time) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM dashboard_sessions WHERE expires_at <= $1`, now)
	return tag.RowsAffected(), err
}
