package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// The stranded paused deliveries are those of live webhooks that are not
// paused (any number of them, each named once); a paused webhook's are
// not, nor an unpaused webhook's pending ones, nor a deleted webhook's.
func TestStrandedPausedWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.Tx(t)
	now := time.Now()
	webhook := func(id string, paused bool) {
		insertWebhook(t, db, id, now)
		if paused {
			require.NoError(t, PauseWebhook(ctx, db, id, "", PauseManual, nil, now))
		}
	}
	webhook("wh_a_paused", true)
	insertDeliveries(t, db, "wh_a_paused", "paused", 5)
	webhook("wh_b", false)
	insertDeliveries(t, db, "wh_b", "paused", 3)
	webhook("wh_c", false)
	insertDeliveries(t, db, "wh_c", "pending", 4)
	webhook("wh_d", false)
	insertDeliveries(t, db, "wh_d", "paused", 1)
	webhook("wh_e_paused", true)
	webhook("wh_f_deleted", false)
	insertDeliveries(t, db, "wh_f_deleted", "paused", 2)
	// Deleted without its deliveries cancelled (as a delete before schema
	// version 11 left a paused webhook's).
	_, err := db.Exec(ctx, `UPDATE webhooks SET deleted_at = now() WHERE id = 'wh_f_deleted'`)
	require.NoError(t, err)

	got, err := StrandedPausedWebhooks(ctx, db, 100)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"wh_b", "wh_d"}, got)

	got, err = StrandedPausedWebhooks(ctx, db, 1)
	require.NoError(t, err)
	require.Len(t, got, 1, "the limit holds")
}
