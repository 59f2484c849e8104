package store

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// Every column of webhooks that the intake's cached read takes
// (webhooksLiveTargets) is one whose change sets the account's version
// (migration 29's update trigger): otherwise a cached webhook could
// outlive a change to it. And the check refuses a stale version with the
// error IsWebhooksChanged knows, and passes a current one; every insert,
// update of such a column, delete and TRUNCATE sets a new version.
func TestWebhookVersionsCoverTheCachedRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)

	var def string
	require.NoError(t, pool.QueryRow(ctx, `
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'webhooks_version_update'`).Scan(&def))
	def = strings.ToLower(def)
	cols := regexp.MustCompile(`\bw\.([a-z_]+)`).FindAllStringSubmatch(webhooksLiveTargets, -1)
	require.NotEmpty(t, cols)
	for _, c := range cols {
		if c[1] == "id" {
			continue // a new id is an insert
		}
		require.Contains(t, def, "old."+c[1], "a change to webhooks.%s keeps the version: %s", c[1], def)
		require.Contains(t, def, "new."+c[1])
	}
	for _, c := range []string{"account_id", "deleted_at"} {
		require.Contains(t, def, "old."+c)
	}

	version := func() int64 {
		var v int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce((SELECT version FROM webhook_versions WHERE account_id = 'acct_v'), 0)`).Scan(&v))
		return v
	}
	check := func(v int64) error {
		_, err := pool.Exec(ctx, `SELECT webhookd_webhooks_unchanged($1, $2)`, []string{"acct_v"}, []int64{v})
		return err
	}
	require.Zero(t, version())
	require.NoError(t, check(0))
	_, err := pool.Exec(ctx, `
INSERT INTO webhooks (id, account_id, url, url_normalized, secret_ciphertext, secret_key_id, created_at)
VALUES ('wh_v', 'acct_v', 'http://127.0.0.2/', 'http://127.0.0.2/', '\x00', 'k', now())`)
	require.NoError(t, err)
	v1 := version()
	require.NotZero(t, v1)
	require.True(t, IsWebhooksChanged(check(0)), "a stale version is refused")
	require.NoError(t, check(v1))
	_, err = pool.Exec(ctx, `UPDATE webhooks SET description = 'x' WHERE id = 'wh_v'`)
	require.NoError(t, err)
	require.Equal(t, v1, version(), "the description is not read by the fan-out")
	_, err = pool.Exec(ctx, `UPDATE webhooks SET paused_at = now() WHERE id = 'wh_v'`)
	require.NoError(t, err)
	v2 := version()
	require.Greater(t, v2, v1)
	_, err = pool.Exec(ctx, `DELETE FROM webhooks WHERE id = 'wh_v'`)
	require.NoError(t, err)
	v3 := version()
	require.Greater(t, v3, v2)
	require.True(t, IsWebhooksChanged(check(v2)))

	// A TRUNCATE changes the version of every account that had webhooks,
	// one never versioned before included (0 would read as unchanged).
	_, err = pool.Exec(ctx, `
INSERT INTO webhooks (id, account_id, url, url_normalized, secret_ciphertext, secret_key_id, created_at)
VALUES ('wh_v2', 'acct_v', 'http://127.0.0.2/', 'http://127.0.0.2/', '\x00', 'k', now()),
       ('wh_u', 'acct_unversioned', 'http://127.0.0.2/', 'http://127.0.0.2/', '\x00', 'k', now())`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM webhook_versions WHERE account_id = 'acct_unversioned'`) // as before migration 29
	require.NoError(t, err)
	v4 := version()
	_, err = pool.Exec(ctx, `TRUNCATE webhooks CASCADE`)
	require.NoError(t, err)
	require.Greater(t, version(), v4)
	_, err = pool.Exec(ctx, `SELECT webhookd_webhooks_unchanged($1, $2)`, []string{"acct_unversioned"}, []int64{0})
	require.True(t, IsWebhooksChanged(err), "an account with webhooks before migration 29 is not unchanged after a TRUNCATE")
}
