package admin_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/server"
)

// TestAPIKeyCacheRevocation: a key revoked through one process is refused
// there at once, and on another process sharing the database (which
// remembered it as valid) from at most WEBHOOKD_API_KEY_CACHE_TTL later
// on; with the cache off, at once everywhere.
func TestAPIKeyCacheRevocation(t *testing.T) {
	t.Parallel()

	a := startServer(t, false)
	dbURL := a.pool.Config().ConnString()
	second := func(t *testing.T, ttl time.Duration) *testBundle {
		return startServerWith(t, false, func(c *server.Config) {
			c.DatabaseURL = dbURL
			c.API, c.Worker = true, false
			c.APIKeyCacheTTL = ttl
		})
	}
	get := func(t *testing.T, b *testBundle, key string) int {
		t.Helper()
		return b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_cache", auth: bearer(key)}).status
	}

	t.Run("Cached", func(t *testing.T) {
		b := second(t, 0) // the default
		k := a.createKey(t, "account", "acct_cache")
		require.Equal(t, http.StatusOK, get(t, b, k.Key)) // b remembers it now
		require.Equal(t, http.StatusOK, get(t, a, k.Key))

		require.Equal(t, http.StatusNoContent, a.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + k.ID}).status)
		revoked := time.Now()
		require.Equal(t, http.StatusUnauthorized, get(t, a, k.Key), "the revoking process forgets the key at once")
		// b's entry was read before the revocation: it is gone by
		// revoked + TTL, whatever b answered meanwhile. Only time shows
		// it: the cache ages its entries on the monotonic clock, which
		// no test clock moves.
		time.Sleep(time.Until(revoked.Add(admin.APIKeyCacheTTLDefault)))
		require.Equal(t, http.StatusUnauthorized, get(t, b, k.Key))
	})

	t.Run("Off", func(t *testing.T) {
		b := second(t, -1)
		k := a.createKey(t, "account", "acct_cache")
		require.Equal(t, http.StatusOK, get(t, b, k.Key))
		require.Equal(t, http.StatusNoContent, a.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + k.ID}).status)
		require.Equal(t, http.StatusUnauthorized, get(t, b, k.Key))
	})

	t.Run("Rotated", func(t *testing.T) {
		// Rotated with no grace through a, the old key is refused by a
		// at once.
		k := a.createKey(t, "account", "acct_cache")
		require.Equal(t, http.StatusOK, get(t, a, k.Key))
		require.Equal(t, http.StatusCreated, a.do(t, request{method: http.MethodPost, path: "/v1/keys/" + k.ID + "/rotate", body: `{"grace":"0s"}`}).status)
		require.Equal(t, http.StatusUnauthorized, get(t, a, k.Key))
	})
}
