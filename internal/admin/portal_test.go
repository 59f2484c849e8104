package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
)

// POST /v1/portal-links mints a single-use link whose token is stored only
// as its hash, recording who minted it and from where; DELETE revokes an
// account's links. Admin and portal:write keys may; a bound portal:write
// key only for its account; the lifetime is bounded.
func TestPortalLinks(t *testing.T) {
	t.Parallel()
	b := startServer(t, false)
	ctx := context.Background()

	mint := func(t *testing.T, auth, body string) *apitype.PortalLink {
		t.Helper()
		var out apitype.PortalLink
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", auth: auth, body: body}), http.StatusCreated, &out)
		return &out
	}
	record := func(t *testing.T, id string) (hash []byte, by, from string, expires time.Time) {
		t.Helper()
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT token_hash, created_by_key_id, created_from, expires_at FROM portal_links WHERE id = $1`, id).
			Scan(&hash, &by, &from, &expires))
		return hash, by, from, expires
	}

	t.Run("MintedByAdmin", func(t *testing.T) {
		before := time.Now()
		link := mint(t, "", `{"account_id":"acct_portal"}`)
		require.True(t, strings.HasPrefix(link.ID, "pl_"), link.ID)
		require.Equal(t, "acct_portal", link.AccountID)
		token, ok := strings.CutPrefix(link.URL, b.baseURL+admin.PortalLinkPath)
		require.True(t, ok, link.URL)
		require.True(t, strings.HasPrefix(token, admin.PortalTokenPrefix), token)
		require.Len(t, token, len(admin.PortalTokenPrefix)+43)
		require.WithinRange(t, link.ExpiresAt, before.Add(admin.PortalLinkTTLDefault-time.Second), time.Now().Add(admin.PortalLinkTTLDefault))

		hash, by, from, expires := record(t, link.ID)
		require.Equal(t, apikey.Hash(token), hash, "only the token's SHA-256 is stored")
		require.Equal(t, "bootstrap", by)
		require.Equal(t, "127.0.0.1", from)
		require.True(t, expires.Equal(link.ExpiresAt))
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM portal_links WHERE position($1 in portal_links::text) > 0`, token).Scan(&n))
		require.Zero(t, n, "the token itself is stored")

		again := mint(t, "", `{"account_id":"acct_portal"}`)
		require.NotEqual(t, link.URL, again.URL)
	})

	t.Run("Lifetime", func(t *testing.T) {
		short := mint(t, "", `{"account_id":"acct_portal","expires_in":60}`)
		require.WithinDuration(t, time.Now().Add(time.Minute), short.ExpiresAt, 5*time.Second)
		long := mint(t, "", `{"account_id":"acct_portal","expires_in":3600}`)
		require.WithinDuration(t, time.Now().Add(time.Hour), long.ExpiresAt, 5*time.Second)
		for _, body := range []string{`{"account_id":"acct_portal","expires_in":59}`, `{"account_id":"acct_portal","expires_in":3601}`, `{"account_id":"acct_portal","expires_in":0}`} {
			requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", body: body}), http.StatusUnprocessableEntity, "invalid_expires_in", "expires_in")
		}
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", body: `{"account_id":"acct_portal","expires_in":"10m"}`}), http.StatusBadRequest, "invalid_type", "expires_in")
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", body: `{"account_id":"acct_portal","ttl":60}`}), http.StatusBadRequest, "unknown_field", "ttl")
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", body: `{}`}), http.StatusUnprocessableEntity, "missing_field", "account_id")
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", body: `{"account_id":"acct/x"}`}), http.StatusUnprocessableEntity, "invalid_account_id", "account_id")
	})

	t.Run("PortalWriteKeys", func(t *testing.T) {
		unbound := b.createKey(t, store.ScopePortalWrite, "")
		link := mint(t, bearer(unbound.Key), `{"account_id":"acct_any"}`)
		_, by, _, _ := record(t, link.ID)
		require.Equal(t, unbound.ID, by)

		bound := b.createKey(t, store.ScopePortalWrite, "acct_bound")
		require.Equal(t, "acct_bound", mint(t, bearer(bound.Key), `{}`).AccountID, "a bound key defaults to its account")
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", auth: bearer(bound.Key), body: `{"account_id":"acct_other"}`}),
			http.StatusForbidden, "account_not_allowed", "account_id")
		requireError(t, b.do(t, request{method: http.MethodDelete, path: "/v1/portal-links?account_id=acct_other", auth: bearer(bound.Key)}),
			http.StatusForbidden, "account_not_allowed", "account_id")

		// A portal:write key mints links, nothing else; an account key
		// can't mint.
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_any", auth: bearer(unbound.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")
		account := b.createKey(t, store.ScopeAccount, "acct_any")
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", auth: bearer(account.Key), body: `{"account_id":"acct_any"}`}), http.StatusForbidden, "insufficient_scope", "Authorization")
	})

	t.Run("Revoke", func(t *testing.T) {
		for range 3 {
			mint(t, "", `{"account_id":"acct_revoke"}`)
		}
		other := mint(t, "", `{"account_id":"acct_revoke_other"}`)
		var out apitype.PortalLinksRevoked
		jsonBody(t, b.do(t, request{method: http.MethodDelete, path: "/v1/portal-links?account_id=acct_revoke"}), http.StatusOK, &out)
		require.Equal(t, apitype.PortalLinksRevoked{AccountID: "acct_revoke", RevokedLinks: 3}, out)
		jsonBody(t, b.do(t, request{method: http.MethodDelete, path: "/v1/portal-links?account_id=acct_revoke"}), http.StatusOK, &out)
		require.Zero(t, out.RevokedLinks, "revoking again revokes nothing")

		var by string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT revoked_by_key_id FROM portal_links WHERE account_id = 'acct_revoke' LIMIT 1`).Scan(&by))
		require.Equal(t, "bootstrap", by)
		var otherRevoked *time.Time
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT revoked_at FROM portal_links WHERE id = $1`, other.ID).Scan(&otherRevoked))
		require.Nil(t, otherRevoked, "another account's link was revoked")

		requireError(t, b.do(t, request{method: http.MethodDelete, path: "/v1/portal-links"}), http.StatusUnprocessableEntity, "missing_field", "account_id")
		requireError(t, b.do(t, request{method: http.MethodDelete, path: "/v1/portal-links?account=acct_revoke"}), http.StatusBadRequest, "unknown_parameter", "account")
	})

	t.Run("Metrics", func(t *testing.T) {
		metrics := scrapeMetrics(t, b)
		require.Regexp(t, `webhookd_portal_links_total\{event="minted"\} \d+`, metrics)
		require.Contains(t, metrics, `webhookd_portal_links_total{event="revoked"} 3`)
	})
}

// With WEBHOOKD_PUBLIC_URL, links point at its origin whatever the
// request's Host.
func TestPortalLinkPublicURL(t *testing.T) {
	t.Parallel()
	b := startServerWith(t, false, func(c *server.Config) { c.PublicURL = "https://webhooks.example.com/" })
	var link apitype.PortalLink
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/portal-links", body: `{"account_id":"acct_public"}`}), http.StatusCreated, &link)
	require.True(t, strings.HasPrefix(link.URL, "https://webhooks.example.com/dashboard/portal/whpl_"), link.URL)
}
