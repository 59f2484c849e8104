package store

import (
	"context"
	"time"
)

// An abandoned delivery is a pending or paused one whose webhook is
// deleted. Deleting a webhook cancels its deliveries (DeleteWebhook), but
// an enqueue that read the webhook just before the delete committed can
// still add some, and a delete before schema version 11 left the paused
// ones. Nothing would ever finish a paused one (it has no job), so the
// reconciler cancels them: the paused ones it finds with
// AbandonedPausedWebhooks, the pending ones as its walk meets them
// (OrphanSlice.Abandoned), both with CancelAbandoned. Retention drops the
// abandoned deliveries of a day it retires instead of moving them forward
// (RetireDay).

// abandonedPaused lists the deleted webhooks among pausedHooks.
const abandonedPaused = pausedHooks + `
SELECT h.webhook_id
FROM hooks h JOIN webhooks w ON w.id = h.webhook_id
WHERE w.deleted_at IS NOT NULL
LIMIT $1`

// AbandonedPausedWebhooks lists up to limit deleted webhooks that have
// paused deliveries, looking at each webhook with paused deliveries once
// (not at each delivery).
func AbandonedPausedWebhooks(ctx context.Context, db DB, limit int) ([]string, error) {
	return webhookIDs(ctx, db, abandonedPaused, limit)
}

// abandonedCancel cancels up to $2 of webhook $1's pending and paused
// deliveries, found through the (webhook_id, state, created_at, id) index
// of each partition, if the webhook is deleted. The states are checked
// again as each row is updated, so a delivery that finished meanwhile is
// left as it is.
const abandonedCancel = `
WITH doomed AS (
    SELECT d.id, d.part_day FROM deliveries d
    WHERE d.webhook_id = $1 AND d.state IN ('pending', 'paused')
      AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = $1 AND w.deleted_at IS NOT NULL)
    LIMIT $2
)
UPDATE deliveries d SET state = 'cancelled', next_attempt_at = NULL, finished_at = $3, updated_at = $3
FROM doomed
WHERE d.id = doomed.id AND d.part_day = doomed.part_day AND d.state IN ('pending', 'paused')`

// CancelAbandoned cancels up to limit pending or paused deliveries of
// webhook webhookID, as DeleteWebhook does, if the webhook is deleted
// (nothing otherwise), and returns how many it cancelled. A pending one's
// job then finishes without sending.
func CancelAbandoned(ctx context.Context, db DB, webhookID string, limit int, now time.Time) (int64, error) {
	tag, err := db.Exec(ctx, abandonedCancel, webhookID, limit, now)
	return tag.RowsAffected(), err
}
