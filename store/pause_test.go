package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// The stranded paused deliveries are those of webhooks that are not paused
// (any number of them, each named once); a paused webhook's are not, nor
// an unpaused webhook's pending ones.
func TestStrandedPausedWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now()
	webhook := func(id string, paused bool) {
		require.NoError(t, InsertWebhook(ctx, pool, &Webhook{ID: id, AccountID: "acct_s", URL: "https://example.com/" + id,
			URLNormalized: "https://example.com/" + id, SecretCiphertext: []byte("x"), SecretKeyID: "k", CreatedAt: now}))
		if paused {
			require.NoError(t, PauseWebhook(ctx, pool, id, "", PauseManual, nil, now))
		}
	}
	deliveries := func(webhookID, state string, n int) {
		_, err := pool.Exec(ctx, `INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state)
SELECT $1 || '_' || state || g, 'evt_s', $1, 'acct_s', 'ping', $2 FROM generate_series(1, $3) g, (SELECT $2::text AS state) s`, webhookID, state, n)
		require.NoError(t, err)
	}
	webhook("wh_a_paused", true)
	deliveries("wh_a_paused", "paused", 5)
	webhook("wh_b", false)
	deliveries("wh_b", "paused", 3)
	webhook("wh_c", false)
	deliveries("wh_c", "pending", 4)
	webhook("wh_d", false)
	deliveries("wh_d", "paused", 1)
	webhook("wh_e_paused", true)

	got, err := StrandedPausedWebhooks(ctx, pool, 100)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"wh_b", "wh_d"}, got)

	got, err = StrandedPausedWebhooks(ctx, pool, 1)
	require.NoError(t, err)
	require.Len(t, got, 1, "the limit holds")
}
