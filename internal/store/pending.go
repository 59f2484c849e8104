package store

import (
	"context"
	"time"
)

// pendingStats counts pending deliveries and finds the earliest time one is
// due (its next attempt, or its creation before the first). It reads only
// pending rows, through the partial index deliveries_pending_job_idx. A
// delivery waiting in a FIFO webhook's line behind its head (internal/store/fifo.go)
// is not due until it is the head, so it counts but has no due time: a line
// held behind a retrying or dead head doesn't make the oldest-due gauge
// (WebhookdOldestDuePending) fire; its head's own due time still counts.
const pendingStats = `
SELECT count(*), min(coalesce(d.next_attempt_at, d.created_at)) FILTER (
    WHERE d.fifo_seq IS NULL OR d.fifo_seq = (
        SELECT h.fifo_seq FROM deliveries h
        WHERE h.webhook_id = d.webhook_id AND h.fifo_seq IS NOT NULL AND h.state IN ('pending', 'paused', 'dead')
        ORDER BY h.fifo_seq LIMIT 1))
FROM deliveries d
WHERE d.state = 'pending'`

// PendingStats is the pending backlog at one moment.
type PendingStats struct {
	// Count is how many deliveries are pending.
	Count int64
	// EarliestDue is the earliest due time of a pending delivery; nil when
	// none is pending. It may be in the future (nothing due yet).
	EarliestDue *time.Time
}

// GetPendingStats returns the pending backlog in one query.
func GetPendingStats(ctx context.Context, db DB) (*PendingStats, error) {
	s := &PendingStats{}
	if err := db.QueryRow(ctx, pendingStats).Scan(&s.Count, &s.EarliestDue); err != nil {
		return nil, err
	}
	return s, nil
}
