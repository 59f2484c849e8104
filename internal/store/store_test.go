package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// Deleting a paused webhook cancels its paused deliveries as it cancels
// its pending ones, and leaves its finished ones and other webhooks' alone.
func TestDeleteWebhookCancelsPausedDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.Tx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"wh_deleted", "wh_kept"} {
		insertWebhook(t, db, id, now)
		require.NoError(t, PauseWebhook(ctx, db, id, "", PauseManual, nil, now))
	}
	insertDeliveries(t, db, "wh_deleted", StatePaused, 3)
	insertDeliveries(t, db, "wh_deleted", StatePending, 1)
	insertDeliveries(t, db, "wh_deleted", StateSucceeded, 1)
	insertDeliveries(t, db, "wh_kept", StatePaused, 2)

	deletedAt := now.Add(time.Minute)
	cancelled, err := DeleteWebhook(ctx, db, "wh_deleted", "acct_s", deletedAt)
	require.NoError(t, err)
	require.EqualValues(t, 4, cancelled, "three paused and one pending")

	require.Equal(t, map[string]int{StateCancelled: 4, StateSucceeded: 1}, deliveryStates(t, db, "wh_deleted"))
	require.Equal(t, map[string]int{StatePaused: 2}, deliveryStates(t, db, "wh_kept"))
	requireCancelledAt(t, db, "wh_deleted", deletedAt)
}

// requireCancelledAt checks that each cancelled delivery of webhookID was
// finished (and last updated) at at, with no next attempt.
func requireCancelledAt(t *testing.T, db DB, webhookID string, at time.Time) {
	t.Helper()
	var wrong int
	require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*) FROM deliveries
WHERE webhook_id = $1 AND state = 'cancelled'
  AND (finished_at IS DISTINCT FROM $2 OR updated_at IS DISTINCT FROM $2 OR next_attempt_at IS NOT NULL)`, webhookID, at).Scan(&wrong))
	require.Zero(t, wrong, "cancelled deliveries of %s not finished at %s with no next attempt", webhookID, at)
}

// insertWebhook inserts a live webhook id to https://example.com/<id>.
func insertWebhook(t *testing.T, db DB, id string, now time.Time) {
	t.Helper()
	require.NoError(t, InsertWebhook(context.Background(), db, &Webhook{ID: id, AccountID: "acct_s", URL: "https://example.com/" + id,
		URLNormalized: "https://example.com/" + id, SecretCiphertext: []byte("x"), SecretKeyID: "k", CreatedAt: now}))
}

// insertDeliveries inserts n deliveries of webhookID in state, due an hour
// ago, with ids made of the webhook, the state and a number.
func insertDeliveries(t *testing.T, db DB, webhookID, state string, n int) {
	t.Helper()
	_, err := db.Exec(context.Background(), `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, next_attempt_at, finished_at)
SELECT $1 || '_' || $2 || g, 'evt_s', $1, 'acct_s', 'ping', $2, now() - interval '1 hour',
       CASE WHEN $2 IN ('succeeded', 'dead', 'cancelled') THEN now() END
FROM generate_series(1, $3) g`, webhookID, state, n)
	require.NoError(t, err)
}

// deliveryStates counts webhookID's deliveries by state.
func deliveryStates(t *testing.T, db DB, webhookID string) map[string]int {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT state, count(*) FROM deliveries WHERE webhook_id = $1 GROUP BY state`, webhookID)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			state string
			n     int
		)
		require.NoError(t, rows.Scan(&state, &n))
		out[state] = n
	}
	require.NoError(t, rows.Err())
	return out
}
