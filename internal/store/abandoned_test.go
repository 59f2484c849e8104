package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// Abandoned deliveries (pending or paused, of a deleted webhook) are found
// by webhook and cancelled at most limit at a time; a live webhook's are
// never cancelled, and a deleted webhook's finished ones are left alone.
// The orphan scans report a deleted webhook's pending deliveries as
// abandoned, not as orphans to re-queue.
func TestCancelAbandoned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.Tx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"wh_gone", "wh_gone_pending", "wh_live"} {
		insertWebhook(t, db, id, now)
	}
	insertDeliveries(t, db, "wh_gone", StatePaused, 3)
	insertDeliveries(t, db, "wh_gone", StatePending, 1)
	insertDeliveries(t, db, "wh_gone", StateDead, 1)
	insertDeliveries(t, db, "wh_gone_pending", StatePending, 2)
	insertDeliveries(t, db, "wh_live", StatePaused, 1)
	insertDeliveries(t, db, "wh_live", StatePending, 1)
	// Deleted as if an enqueue had added these as the delete committed.
	_, err := db.Exec(ctx, `UPDATE webhooks SET deleted_at = $1 WHERE id IN ('wh_gone', 'wh_gone_pending')`, now)
	require.NoError(t, err)

	got, err := AbandonedPausedWebhooks(ctx, db, 100)
	require.NoError(t, err)
	require.Equal(t, []string{"wh_gone"}, got, "the deleted webhook with paused deliveries")

	jobless, err := JoblessOrphans(ctx, db, 100)
	require.NoError(t, err)
	require.Equal(t, []Orphan{{DeliveryID: "wh_live_pending1"}}, jobless.Orphans, "a live webhook's jobless delivery is an orphan")
	require.Equal(t, []string{"wh_gone", "wh_gone_pending"}, jobless.Abandoned)
	require.Equal(t, 4, jobless.Checked)

	n, err := CancelAbandoned(ctx, db, "wh_live", 100, now)
	require.NoError(t, err)
	require.Zero(t, n, "a live webhook's deliveries are not abandoned")
	n, err = CancelAbandoned(ctx, db, "wh_gone", 3, now)
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "no more than the limit")
	n, err = CancelAbandoned(ctx, db, "wh_gone", 3, now)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the rest")
	n, err = CancelAbandoned(ctx, db, "wh_gone", 3, now)
	require.NoError(t, err)
	require.Zero(t, n)

	require.Equal(t, map[string]int{StateCancelled: 4, StateDead: 1}, deliveryStates(t, db, "wh_gone"))
	require.Equal(t, map[string]int{StatePending: 2}, deliveryStates(t, db, "wh_gone_pending"))
	require.Equal(t, map[string]int{StatePaused: 1, StatePending: 1}, deliveryStates(t, db, "wh_live"))
	requireCancelledAt(t, db, "wh_gone", now)
	got, err = AbandonedPausedWebhooks(ctx, db, 100)
	require.NoError(t, err)
	require.Empty(t, got)
}
