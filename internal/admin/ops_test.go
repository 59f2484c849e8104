package admin_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// requireAPIError asserts that err is an *admin.Error of status and code.
func requireAPIError(t *testing.T, err error, status int, code string) *admin.Error {
	t.Helper()
	var e *admin.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, status, e.Status, e.Message)
	require.Equal(t, code, e.Code, e.Message)
	return e
}

// newAPIWith is the API alone on pool with cfg, for calling operations.
// keyPrincipal is a key's principal: a new key id, scope, bound to account
// ("" for none).
func keyPrincipal(scope, account string) *admin.Principal {
	return &admin.Principal{KeyID: ident.New(ident.Key), Scope: scope, AccountID: account}
}

func newAPIWith(t *testing.T, pool *pgxpool.Pool, cfg *admin.Config) *admin.API {
	t.Helper()
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	api, err := admin.New(pool, enqueuer, keys, cfg)
	require.NoError(t, err)
	return api
}

// TestKeyOperations calls the keys family's typed operations directly, as
// the dashboard and the CLI do, without HTTP: the operation itself refuses
// a missing principal (401) and a key of another scope (403, nothing
// stored), and answers refusals as *admin.Error with the cause a caller in
// process reads (errors.Is/As).
func TestKeyOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api, err := admin.NewOperator(pool, nil)
	require.NoError(t, err)
	op := admin.OperatorPrincipal()
	account := keyPrincipal(store.ScopeAccount, "acct_ops")

	_, err = api.CreateKey(ctx, nil, &apitype.KeyCreate{Scope: store.ScopeAdmin})
	requireAPIError(t, err, http.StatusUnauthorized, "missing_api_key")
	_, err = api.CreateKey(ctx, account, &apitype.KeyCreate{Scope: store.ScopeAdmin})
	e := requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	require.Equal(t, "this API key's scope (account) does not allow POST /v1/keys", e.Message)
	_, err = api.ListKeys(ctx, account, &apitype.KeyList{})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	require.Equal(t, 0, countTable(t, pool, "api_keys"), "a refused operation stores nothing")

	_, err = api.CreateKey(ctx, op, &apitype.KeyCreate{Scope: store.ScopeAccount})
	e = requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_field")
	require.Equal(t, "account_id", e.Field)

	created, err := api.CreateKey(ctx, op, &apitype.KeyCreate{Scope: store.ScopeAccount, AccountID: "acct_ops", Description: "ops"})
	require.NoError(t, err)
	require.NotEmpty(t, created.Key)
	page, err := api.ListKeys(ctx, op, &apitype.KeyList{AccountID: "acct_ops"})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.Equal(t, created.ID, page.Data[0].ID)
	require.Empty(t, page.Data[0].Key, "a listed key never shows the key")

	_, err = api.ListKeys(ctx, op, &apitype.KeyList{Limit: admin.LimitMax + 1})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_limit")
	_, err = api.ListKeys(ctx, op, &apitype.KeyList{Cursor: "nope"})
	requireAPIError(t, err, http.StatusBadRequest, "invalid_cursor")

	grace := "0"
	rotated, err := api.RotateKey(ctx, op, &apitype.KeyRotate{ID: created.ID, Grace: &grace})
	require.NoError(t, err)
	require.Equal(t, created.ID, rotated.OldKeyID)
	_, err = api.RotateKey(ctx, op, &apitype.KeyRotate{ID: created.ID})
	var conflict *admin.KeyConflictError
	require.ErrorAs(t, err, &conflict)
	requireAPIError(t, err, http.StatusConflict, "key_already_rotated")

	_, err = api.RevokeKey(ctx, op, &apitype.KeyRevoke{ID: rotated.ID})
	require.NoError(t, err)
	_, err = api.RevokeKey(ctx, op, &apitype.KeyRevoke{ID: rotated.ID})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	var revoked *admin.KeyRevokedError
	require.ErrorAs(t, err, &revoked, "the 404's cause says the key was revoked already")
	_, err = api.RevokeKey(ctx, op, &apitype.KeyRevoke{ID: ident.New(ident.Key)})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	require.ErrorIs(t, err, store.ErrNotFound, "an unknown key's cause is store.ErrNotFound")
	_, err = api.RevokeKey(ctx, op, &apitype.KeyRevoke{ID: "key_bad"})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
}

// TestOperationRateLimit: an operation called in process charges the
// caller's per-key management budget as the JSON API does (429 with
// RetryAfter once spent), and the calls of one dashboard page
// (admin.WithPage) count once.
func TestOperationRateLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	// A budget of 2 that refills once in ~17 minutes: no refill in the test.
	api := newAPIWith(t, pool, &admin.Config{ManagementRateAdmin: admin.Rate{PerSecond: 0.001, Burst: 2}})

	p := &admin.Principal{KeyID: ident.New(ident.Key), Scope: store.ScopeAdmin}
	for range 2 {
		_, err := api.ListKeys(ctx, p, &apitype.KeyList{})
		require.NoError(t, err)
	}
	_, err := api.ListKeys(ctx, p, &apitype.KeyList{})
	e := requireAPIError(t, err, http.StatusTooManyRequests, "rate_limited")
	require.Positive(t, e.RetryAfter)

	other := &admin.Principal{KeyID: ident.New(ident.Key), Scope: store.ScopeAdmin}
	page := admin.WithPage(ctx)
	for range 5 {
		_, err := api.ListKeys(page, other, &apitype.KeyList{})
		require.NoError(t, err, "one page's calls count once")
	}
	_, err = api.ListKeys(ctx, other, &apitype.KeyList{})
	require.NoError(t, err, "the page took one of the two")
	_, err = api.ListKeys(ctx, other, &apitype.KeyList{})
	requireAPIError(t, err, http.StatusTooManyRequests, "rate_limited")
}

// TestGetLimitsOperation: GET /v1/limits's operation called directly binds
// an account key to its account (its own by default, another refused
// 403) and refuses an events:write key (403), as the route does.
func TestGetLimitsOperation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, nil)

	bound := keyPrincipal(store.ScopeAccount, "acct_limits")
	limits, err := api.GetLimits(ctx, bound, &apitype.LimitsQuery{})
	require.NoError(t, err)
	require.Equal(t, "acct_limits", limits.AccountID)
	require.Equal(t, store.ScopeAccount, limits.Scope)
	require.Zero(t, limits.Webhooks.Used)

	_, err = api.GetLimits(ctx, bound, &apitype.LimitsQuery{AccountID: "acct_other"})
	e := requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
	require.Equal(t, "account_id", e.Field)

	events := &admin.Principal{KeyID: ident.New(ident.Key), Scope: store.ScopeEventsWrite}
	_, err = api.GetLimits(ctx, events, &apitype.LimitsQuery{AccountID: "acct_limits"})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
}
