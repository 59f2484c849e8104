package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
)

// A portal:write key mints links for its account and revokes them; it
// can do nothing else.
func TestClientPortalLinks(t *testing.T) {
	t.Parallel()

	b := setup(t)
	ctx := context.Background()
	key, err := b.client.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopePortalWrite, AccountID: "acct_client_portal", Description: "product backend"})
	require.NoError(t, err)
	portal, err := client.New(b.baseURL, key.Key, nil)
	require.NoError(t, err)

	link, err := portal.CreatePortalLink(ctx, &client.CreatePortalLinkParams{ExpiresIn: 2 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, "acct_client_portal", link.AccountID)
	require.True(t, strings.HasPrefix(link.URL, b.baseURL+"/dashboard/portal/whpl_"), link.URL)
	require.WithinDuration(t, time.Now().Add(2*time.Minute), link.ExpiresAt, 5*time.Second)
	def, err := portal.CreatePortalLink(ctx, &client.CreatePortalLinkParams{})
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), def.ExpiresAt, 5*time.Second)

	_, err = portal.CreatePortalLink(ctx, &client.CreatePortalLinkParams{AccountID: "acct_someone_else"})
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr, "%v", err)
	require.Equal(t, http.StatusForbidden, apiErr.Status)
	require.Equal(t, "account_not_allowed", apiErr.Code)
	_, err = portal.CreatePortalLink(ctx, &client.CreatePortalLinkParams{ExpiresIn: 2 * time.Hour})
	require.ErrorAs(t, err, &apiErr, "%v", err)
	require.Equal(t, "invalid_expires_in", apiErr.Code)
	_, err = portal.ListWebhooks(ctx, &client.ListWebhooksParams{AccountID: "acct_client_portal"})
	require.ErrorAs(t, err, &apiErr, "%v", err)
	require.Equal(t, "insufficient_scope", apiErr.Code)

	revoked, err := portal.RevokePortalLinks(ctx, "")
	require.NoError(t, err)
	require.Equal(t, &client.PortalLinksRevoked{AccountID: "acct_client_portal", RevokedLinks: 2}, revoked)
}

// The backend handler of docs/producers.md: a signed-in user asking for
// Webhooks is sent to a fresh link of their account.
func TestClientPortalHandler(t *testing.T) {
	t.Parallel()

	b := setup(t)
	webhookd := b.client
	accountOf := func(*http.Request) string { return "acct_handler" }

	handler := func(w http.ResponseWriter, r *http.Request) {
		link, err := webhookd.CreatePortalLink(r.Context(), &client.CreatePortalLinkParams{AccountID: accountOf(r)})
		if err != nil {
			http.Error(w, "webhooks are not available right now", http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, link.URL, http.StatusSeeOther)
	}

	rec := httptest.NewRecorder()
	handler(rec, httptest.NewRequest(http.MethodGet, "/settings/webhooks", nil))
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.True(t, strings.HasPrefix(rec.Header().Get("Location"), b.baseURL+"/dashboard/portal/whpl_"), rec.Header().Get("Location"))
}
