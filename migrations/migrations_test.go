package migrations_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/outbound"
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

// Migration 12 rewrites the message of every stored blocked_address attempt
// to outbound.BlockedMessage (which names no address or range), in every
// partition, and touches no other attempt; running it again changes
// nothing.
func TestMigration12ScrubsBlockedAddressMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	sql, err := os.ReadFile("012_blocked_address_message.sql")
	require.NoError(t, err)
	require.Contains(t, string(sql), "'"+outbound.BlockedMessage+"'", "the migration writes outbound.BlockedMessage")

	today := time.Now().UTC()
	for i, day := range []time.Time{today, today.AddDate(0, 0, -400)} {
		_, err = pool.Exec(ctx, `
INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, status_code, error_kind, error_message, signature_t, part_day)
VALUES ($1, 1, 1, now(), now(), 10, NULL, 'blocked_address', 'the host resolved to an address that is not allowed: it is a private network address (10.0.0.0/8)', 1, $2::date),
       ($1, 2, 1, now(), now(), 10, NULL, 'blocked_address', NULL, 1, $2::date),
       ($1, 3, 1, now(), now(), 10, NULL, 'dns', 'lookup failed: no such host', 1, $2::date),
       ($1, 4, 1, now(), now(), 10, 500, 'http_status', 'the endpoint answered 500', 1, $2::date)`,
			"dlv_m12_"+strconv.Itoa(i), day)
		require.NoError(t, err)
	}
	messages := func() map[string]string {
		rows, err := pool.Query(ctx, `SELECT delivery_id || '/' || number, coalesce(error_message, '<null>') FROM attempts`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var k, v string
			require.NoError(t, rows.Scan(&k, &v))
			out[k] = v
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := messages()
	require.Len(t, before, 8)
	for range 2 {
		_, err = pool.Exec(ctx, string(sql))
		require.NoError(t, err)
		after := messages()
		for k, v := range before {
			switch {
			case strings.HasSuffix(k, "/1"), strings.HasSuffix(k, "/2"):
				require.Equal(t, outbound.BlockedMessage, after[k], k)
			default:
				require.Equal(t, v, after[k], "%s is left as it was", k)
			}
		}
	}
}
