package store

import (
	"context"
	"time"
)

// pendingStats counts pending deliveries and finds the earliest time one is
// due (its next attempt, or its creation before the first). It reads only
// pending rows, through the partial index deliveries_pending_job_idx.
const pendingStats = `
SELECT count(*), min(coalesce(next_attempt_at, created_at))
FROM deliveries
WHERE state = 'pending'`

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
