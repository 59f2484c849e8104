package migrations_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// Migration 11 cancels the pending and paused deliveries of deleted
// webhooks that deleting left behind, in every day partition and the
// default one, finished now with no next attempt; it touches nothing else
// and running it again changes nothing.
func TestMigration11CancelsStrandedDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	sql, err := os.ReadFile("011_cancel_stranded_deliveries.sql")
	require.NoError(t, err)

	_, err = pool.Exec(ctx, `
INSERT INTO webhooks (id, account_id, url, url_normalized, secret_ciphertext, secret_key_id, deleted_at, paused_at, pause_reason)
VALUES ('wh_deleted_paused', 'acct_m', 'https://a.example/', 'https://a.example/', '\x00', 'k', now() - interval '1 day', now() - interval '2 days', 'manual'),
       ('wh_deleted', 'acct_m', 'https://b.example/', 'https://b.example/', '\x00', 'k', now() - interval '1 day', NULL, NULL),
       ('wh_live_paused', 'acct_m', 'https://c.example/', 'https://c.example/', '\x00', 'k', NULL, now(), 'manual')`)
	require.NoError(t, err)
	// Today's partition, and a day without one (the default partition).
	today := time.Now().UTC()
	for _, day := range []time.Time{today, today.AddDate(0, 0, -400)} {
		_, err = pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, next_attempt_at, finished_at, updated_at, part_day)
SELECT w || '_' || s || '_' || to_char($1::date, 'YYYYMMDD'), 'evt_m', w, 'acct_m', 'ping', s,
       CASE WHEN s IN ('pending', 'paused') THEN now() END, CASE WHEN s NOT IN ('pending', 'paused') THEN now() - interval '3 days' END,
       now() - interval '3 days', $1::date
FROM unnest(ARRAY['wh_deleted_paused', 'wh_deleted', 'wh_live_paused']) AS w,
     unnest(ARRAY['pending', 'paused', 'succeeded', 'dead', 'cancelled']) AS s`, day)
		require.NoError(t, err)
	}
	type row struct {
		State         string
		NextAttemptAt *time.Time
		FinishedAt    *time.Time
		UpdatedAt     time.Time
	}
	states := func() map[string]row {
		rows, err := pool.Query(ctx, `SELECT id, state, next_attempt_at, finished_at, updated_at FROM deliveries`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]row{}
		for rows.Next() {
			var (
				id string
				r  row
			)
			require.NoError(t, rows.Scan(&id, &r.State, &r.NextAttemptAt, &r.FinishedAt, &r.UpdatedAt))
			out[id] = r
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := states()
	require.Len(t, before, 30)
	var start time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT now()`).Scan(&start))

	_, err = pool.Exec(ctx, string(sql))
	require.NoError(t, err)
	after := states()
	cancelled := 0
	for id, b := range before {
		a := after[id]
		if strings.HasPrefix(id, "wh_live") || (b.State != "pending" && b.State != "paused") {
			require.Equal(t, b, a, "%s is left as it was", id)
			continue
		}
		cancelled++
		require.Equal(t, "cancelled", a.State, id)
		require.Nil(t, a.NextAttemptAt, id)
		require.NotNil(t, a.FinishedAt, id)
		require.False(t, a.FinishedAt.Before(start), "%s is finished when the migration ran", id)
		require.Equal(t, *a.FinishedAt, a.UpdatedAt, id)
	}
	require.Equal(t, 8, cancelled, "pending and paused, of both deleted webhooks, on both days")

	_, err = pool.Exec(ctx, string(sql))
	require.NoError(t, err, "running it again")
	require.Equal(t, after, states(), "running it again changes nothing")
}
