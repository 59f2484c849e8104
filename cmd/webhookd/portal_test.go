package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
)

// `webhookd portal-link` mints a link through the API with an admin or
// portal:write key, and with -revoke revokes the account's links.
func TestCLIPortalLink(t *testing.T) {
	t.Parallel()
	b := cliSetup(t)
	ctx := context.Background()
	key, err := b.client.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopePortalWrite})
	require.NoError(t, err)

	res := runCLI(t, b.env(key.Key), "", "portal-link", "-account", "acct_cli_portal")
	require.Zero(t, res.code, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 2, res.stdout)
	require.True(t, strings.HasPrefix(lines[0], b.baseURL+"/dashboard/portal/whpl_"), lines[0])
	require.Contains(t, lines[1], "one use, for account acct_cli_portal, until ")

	// The link signs a browser in, once.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(lines[0])
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Set-Cookie"))

	res = runCLI(t, b.env(key.Key), "", "portal-link", "-account", "acct_cli_portal", "-expires-in", "2m", "-json")
	require.Zero(t, res.code, res.stderr)
	var link client.PortalLink
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &link), res.stdout)
	require.WithinDuration(t, time.Now().Add(2*time.Minute), link.ExpiresAt, 5*time.Second)

	res = runCLI(t, b.env(key.Key), "", "portal-link", "-revoke", "-account", "acct_cli_portal")
	require.Zero(t, res.code, res.stderr)
	require.Equal(t, "Revoked 2 portal link(s) of acct_cli_portal; ended 1 dashboard session(s).\n", res.stdout, "the session the first link opened ends")

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"portal-link"}, "field account_id (-account): account_id is required [422 missing_field]"},
		{[]string{"portal-link", "-account", "acct_x", "-expires-in", "2h"}, "[422 invalid_expires_in]"},
		{[]string{"portal-link", "-account", "acct_x", "-expires-in", "90.5s"}, "-expires-in: 1m30.5s is not a whole number of seconds"},
		{[]string{"portal-link", "-account", "acct_x", "extra"}, `unexpected argument "extra"`},
	} {
		res := runCLI(t, b.env(key.Key), "", tt.args...)
		require.Equal(t, 1, res.code, "%v: %s", tt.args, res.stdout)
		require.Contains(t, res.stderr, tt.want, tt.args)
	}
	account, err := b.client.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopeAccount, AccountID: "acct_x"})
	require.NoError(t, err)
	res = runCLI(t, b.env(account.Key), "", "portal-link", "-account", "acct_x")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "[403 insufficient_scope]")
}
