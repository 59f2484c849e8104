package admin_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// TestSessionOperations calls the dashboard's session operations directly,
// without a server: SignIn authenticates as the API does (the bootstrap
// key too), refuses an empty key 422, an invalid one 401 and a key of
// another scope 403; Session finds the principal of a live session and
// ends (401 ErrNoSession, row deleted) an expired one, one whose key is
// revoked or rotated past its grace period, and a signed-out one.
func TestSessionOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	clock := &rotationClock{}
	api := newAPIWith(t, pool, &admin.Config{BootstrapAdminKey: adminKey, Now: clock.Now})
	op := admin.OperatorPrincipal()
	newKey := func(scope, account string) *apitype.Key {
		k, err := api.CreateKey(ctx, op, &apitype.KeyCreate{Scope: scope, AccountID: account})
		require.NoError(t, err)
		return k
	}
	signIn := func(key string) *admin.SessionStarted {
		t.Helper()
		in, err := api.SignIn(ctx, &admin.SignInRequest{Key: key, TTL: time.Hour})
		require.NoError(t, err)
		require.NotEmpty(t, in.Token)
		return in
	}
	requireEnded := func(t *testing.T, token string) {
		t.Helper()
		_, err := api.Session(ctx, &admin.SessionRequest{Token: token})
		requireAPIError(t, err, http.StatusUnauthorized, "no_session")
		require.ErrorIs(t, err, admin.ErrNoSession)
		require.Zero(t, sessionRows(t, pool, token), "an ended session's row is deleted")
	}

	t.Run("Refused", func(t *testing.T) {
		_, err := api.SignIn(ctx, &admin.SignInRequest{Key: "", TTL: time.Hour})
		e := requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_api_key")
		require.Equal(t, "Enter an API key.", e.Message)
		_, err = api.SignIn(ctx, &admin.SignInRequest{Key: "whk_nope", TTL: time.Hour})
		e = requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key")
		require.Equal(t, "This API key is not valid (unknown or revoked).", e.Message)
		events := newKey(store.ScopeEventsWrite, "acct_sess")
		_, err = api.SignIn(ctx, &admin.SignInRequest{Key: events.Key, TTL: time.Hour})
		e = requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
		require.Equal(t, "This key's scope (events:write) can't sign in: use an account or admin key.", e.Message)
		require.Zero(t, countTable(t, pool, "dashboard_sessions"), "a refused sign-in stores nothing")

		for _, token := range []string{"", "nope"} {
			requireEnded(t, token)
		}
	})

	t.Run("AccountKey", func(t *testing.T) {
		k := newKey(store.ScopeAccount, "acct_sess")
		in := signIn(k.Key)
		require.Equal(t, &admin.Principal{KeyID: k.ID, Scope: store.ScopeAccount, AccountID: "acct_sess"}, in.Principal)
		s, err := api.Session(ctx, &admin.SessionRequest{Token: in.Token})
		require.NoError(t, err)
		require.Equal(t, in.Principal, s.Principal)
		require.Equal(t, k.Prefix, s.KeyPrefix)
		require.NotEmpty(t, s.CSRF)
		require.False(t, s.Portal)
		again, err := api.Session(ctx, &admin.SessionRequest{Token: in.Token})
		require.NoError(t, err)
		require.Equal(t, s.CSRF, again.CSRF, "a session keeps its CSRF token")

		_, err = api.SignOut(ctx, &admin.SessionRequest{Token: in.Token})
		require.NoError(t, err)
		requireEnded(t, in.Token)
	})

	t.Run("BootstrapKey", func(t *testing.T) {
		in := signIn(adminKey)
		require.True(t, in.Principal.Bootstrap())
		s, err := api.Session(ctx, &admin.SessionRequest{Token: in.Token})
		require.NoError(t, err)
		require.Equal(t, store.ScopeAdmin, s.Principal.Scope)
		require.Empty(t, s.KeyPrefix)

		// Another bootstrap key (a restart with a new one) ends it.
		other := newAPIWith(t, pool, &admin.Config{BootstrapAdminKey: adminKey + "-new", Now: clock.Now})
		_, err = other.Session(ctx, &admin.SessionRequest{Token: in.Token})
		requireAPIError(t, err, http.StatusUnauthorized, "no_session")
	})

	t.Run("Expires", func(t *testing.T) {
		in := signIn(newKey(store.ScopeAdmin, "").Key)
		clock.Advance(59 * time.Minute)
		_, err := api.Session(ctx, &admin.SessionRequest{Token: in.Token})
		require.NoError(t, err)
		clock.Advance(time.Minute)
		requireEnded(t, in.Token)
	})

	t.Run("KeyRevoked", func(t *testing.T) {
		k := newKey(store.ScopeAccount, "acct_sess")
		in := signIn(k.Key)
		_, err := api.RevokeKey(ctx, op, &apitype.KeyRevoke{ID: k.ID})
		require.NoError(t, err)
		requireEnded(t, in.Token)
	})

	t.Run("KeyRotated", func(t *testing.T) {
		// The API's rule: a rotated key works through its grace period,
		// for a session as for a Bearer request.
		k := newKey(store.ScopeAccount, "acct_sess")
		in := signIn(k.Key)
		grace := "90s"
		_, err := api.RotateKey(ctx, op, &apitype.KeyRotate{ID: k.ID, Grace: &grace})
		require.NoError(t, err)
		clock.Advance(89 * time.Second)
		_, err = api.Session(ctx, &admin.SessionRequest{Token: in.Token})
		require.NoError(t, err)
		clock.Advance(time.Second)
		requireEnded(t, in.Token)
		_, err = api.SignIn(ctx, &admin.SignInRequest{Key: k.Key, TTL: time.Hour})
		requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key")
	})

	t.Run("DeletesExpiredSessions", func(t *testing.T) {
		old := signIn(adminKey)
		clock.Advance(2 * time.Hour)
		signIn(adminKey)
		require.Zero(t, sessionRows(t, pool, old.Token), "a sign-in deletes the sessions expired by then")
	})
}

// TestSignInThrottle: failed sign-ins count against the client address as
// the API's failed keys do; past the limit the address's invalid keys are
// 429 with RetryAfter, while a valid key still signs in and another
// address is not throttled.
func TestSignInThrottle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, &admin.Config{BootstrapAdminKey: adminKey, AuthFailureLimit: 2})
	addr := netip.MustParseAddr("192.0.2.7")
	for range 2 {
		_, err := api.SignIn(ctx, &admin.SignInRequest{Key: "nope", ClientAddr: addr, TTL: time.Hour})
		requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key")
	}
	_, err := api.SignIn(ctx, &admin.SignInRequest{Key: "nope", ClientAddr: addr, TTL: time.Hour})
	e := requireAPIError(t, err, http.StatusTooManyRequests, "auth_throttled")
	require.Positive(t, e.RetryAfter)
	require.Equal(t, "Too many invalid keys from this address: try again in a minute. A valid key still signs in.", e.Message)

	_, err = api.SignIn(ctx, &admin.SignInRequest{Key: adminKey, ClientAddr: addr, TTL: time.Hour})
	require.NoError(t, err, "a valid key still signs in")
	_, err = api.SignIn(ctx, &admin.SignInRequest{Key: "nope", ClientAddr: netip.MustParseAddr("192.0.2.8"), TTL: time.Hour})
	requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key")
}

// TestPortalSessionOperation: a portal link opens one session, for its
// account (the link's id as KeyID), replacing the browser's previous one;
// a used or unknown link is 401 with the reason (*PortalLinkError as
// cause) and opens nothing; revoking the account's links ends the session.
func TestPortalSessionOperation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, &admin.Config{BootstrapAdminKey: adminKey})
	link, err := api.CreatePortalLink(ctx, admin.OperatorPrincipal(), &apitype.PortalLinkCreate{AccountID: "acct_portal_sess", Origin: "https://hooks.example"})
	require.NoError(t, err)
	_, token, ok := strings.Cut(link.URL, admin.PortalLinkPath)
	require.True(t, ok, link.URL)

	before, err := api.SignIn(ctx, &admin.SignInRequest{Key: adminKey, TTL: time.Hour})
	require.NoError(t, err)
	in, err := api.OpenPortalSession(ctx, &admin.PortalSessionRequest{LinkToken: token, Use: admin.PortalLinkUse{ClientAddr: "192.0.2.9", UserAgent: "test"}, TTL: time.Hour, Replaces: before.Token})
	require.NoError(t, err)
	require.Equal(t, &admin.Principal{KeyID: link.ID, Scope: store.ScopeAccount, AccountID: "acct_portal_sess"}, in.Principal)
	s, err := api.Session(ctx, &admin.SessionRequest{Token: in.Token})
	require.NoError(t, err)
	require.True(t, s.Portal)
	require.Equal(t, in.Principal, s.Principal)
	require.Zero(t, sessionRows(t, pool, before.Token), "the browser's previous session is replaced")

	sessions := countTable(t, pool, "dashboard_sessions")
	_, err = api.OpenPortalSession(ctx, &admin.PortalSessionRequest{LinkToken: token, TTL: time.Hour})
	e := requireAPIError(t, err, http.StatusUnauthorized, "portal_link_used")
	require.Contains(t, e.Message, "already used")
	var refused *admin.PortalLinkError
	require.ErrorAs(t, err, &refused)
	require.Equal(t, admin.PortalLinkUsed, refused.Reason)
	_, err = api.OpenPortalSession(ctx, &admin.PortalSessionRequest{LinkToken: "whpl_nope", TTL: time.Hour})
	requireAPIError(t, err, http.StatusUnauthorized, "portal_link_unknown")
	require.Equal(t, sessions, countTable(t, pool, "dashboard_sessions"), "a refused link opens nothing")

	_, err = api.RevokePortalLinks(ctx, admin.OperatorPrincipal(), &apitype.PortalLinksRevoke{AccountID: "acct_portal_sess"})
	require.NoError(t, err)
	_, err = api.Session(ctx, &admin.SessionRequest{Token: in.Token})
	requireAPIError(t, err, http.StatusUnauthorized, "no_session")
}

// sessionRows counts the dashboard_sessions rows of token.
func sessionRows(t *testing.T, pool *pgxpool.Pool, token string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM dashboard_sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, token).Scan(&n))
	return n
}
