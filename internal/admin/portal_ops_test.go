package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// TestPortalLinkOperations calls the portal links' operations directly,
// without HTTP: admin and portal:write keys mint and revoke, a bound key
// only for its own account (another account 403, nothing stored), an
// account key not at all (403 insufficient_scope).
func TestPortalLinkOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, nil)
	op := admin.OperatorPrincipal()
	portal := keyPrincipal(store.ScopePortalWrite, "acct_plops")
	account := keyPrincipal(store.ScopeAccount, "acct_plops")

	_, err := api.CreatePortalLink(ctx, account, &apitype.PortalLinkCreate{})
	e := requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	require.Equal(t, "this API key's scope (account) does not allow POST /v1/portal-links", e.Message)
	_, err = api.CreatePortalLink(ctx, portal, &apitype.PortalLinkCreate{AccountID: "acct_other"})
	e = requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
	require.Equal(t, "account_id", e.Field)
	tooLong := int64(7200)
	_, err = api.CreatePortalLink(ctx, portal, &apitype.PortalLinkCreate{ExpiresIn: &tooLong})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_expires_in")
	require.Equal(t, 0, countTable(t, pool, "portal_links"), "a refused operation stores nothing")

	link, err := api.CreatePortalLink(ctx, portal, &apitype.PortalLinkCreate{Origin: "https://hooks.example", ClientAddr: "192.0.2.7"})
	require.NoError(t, err, "a bound key mints for its own account")
	require.Equal(t, "acct_plops", link.AccountID)
	require.True(t, strings.HasPrefix(link.URL, "https://hooks.example"+admin.PortalLinkPath+admin.PortalTokenPrefix), link.URL)
	var from string
	require.NoError(t, pool.QueryRow(ctx, `SELECT created_from FROM portal_links WHERE id = $1`, link.ID).Scan(&from))
	require.Equal(t, "192.0.2.7", from)

	_, err = api.RevokePortalLinks(ctx, account, &apitype.PortalLinksRevoke{})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	_, err = api.RevokePortalLinks(ctx, portal, &apitype.PortalLinksRevoke{AccountID: "acct_other"})
	requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
	_, err = api.RevokePortalLinks(ctx, op, &apitype.PortalLinksRevoke{})
	e = requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_field")
	require.Equal(t, "account_id", e.Field)
	out, err := api.RevokePortalLinks(ctx, portal, &apitype.PortalLinksRevoke{})
	require.NoError(t, err)
	require.Equal(t, &apitype.PortalLinksRevoked{AccountID: "acct_plops", RevokedLinks: 1}, out)
}
