package store

import (
	"context"
	"time"

	"github.com/mono/webhookd/internal/ident"
)

// What the dashboard reads beyond the API's own queries.

const deliveriesAttempts = `
SELECT delivery_id, number, generation, counted, scheduled_at, started_at, duration_us, status_code,
       error_kind, error_message, substring(response_excerpt FROM 1 FOR $2), signature_t
FROM attempts WHERE delivery_id = ANY($1) AND part_day >= $3 ORDER BY delivery_id, id`

// DeliveriesAttempts returns the attempts of each of deliveryIDs (one page
// of a listing), oldest first, in one query, with response excerpts cut to
// excerptMax bytes. A delivery without attempts has no entry. Only the day
// partitions from the oldest delivery's id on are read (attempts share
// their delivery's day, which only ever moves forward).
func DeliveriesAttempts(ctx context.Context, db DB, deliveryIDs []string, excerptMax int) (map[string][]AttemptRecord, error) {
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
	out := make(map[string][]AttemptRecord, len(deliveryIDs))
	for rows.Next() {
		var (
			id string
			a  AttemptRecord
			us int64
		)
		if err := rows.Scan(&id, &a.Number, &a.Generation, &a.Counted, &a.ScheduledAt, &a.StartedAt, &us, &a.StatusCode,
			&a.ErrorKind, &a.ErrorMessage, &a.ResponseExcerpt, &a.SignatureT); err != nil {
			return nil, err
		}
		a.Duration = time.Duration(us) * time.Microsecond
		out[id] = append(out[id], a)
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
