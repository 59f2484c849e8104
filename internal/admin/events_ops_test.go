package admin_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// TestEventOperations calls the event reads directly, without HTTP: an
// admin or the event's own account key reads it (by id or idempotency
// key); another account's is 404 by id and 403 by naming its account; an
// events:write key is refused (403 insufficient_scope).
func TestEventOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, nil)
	op := admin.OperatorPrincipal()
	own := keyPrincipal(store.ScopeAccount, "acct_evops")
	other := keyPrincipal(store.ScopeAccount, "acct_other")
	events := keyPrincipal(store.ScopeEventsWrite, "acct_evops")

	id := ident.New(ident.Event)
	_, err := pool.Exec(ctx, `INSERT INTO events (id, account_id, type, body, idempotency_key, occurred_at) VALUES ($1, 'acct_evops', 'order.created', '{"n":1}', 'key-1', now())`, id)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO idempotency_keys (account_id, key, request_hash, event_id) VALUES ('acct_evops', 'key-1', '\x00', $1)`, id)
	require.NoError(t, err)

	_, err = api.GetEvent(ctx, nil, &apitype.EventGet{ID: id})
	requireAPIError(t, err, http.StatusUnauthorized, "missing_api_key")
	_, err = api.GetEvent(ctx, events, &apitype.EventGet{ID: id})
	e := requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	require.Equal(t, "this API key's scope (events:write) does not allow GET /v1/events/{id}", e.Message)
	_, err = api.GetEvent(ctx, other, &apitype.EventGet{ID: id})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.GetEvent(ctx, own, &apitype.EventGet{ID: "evt_nope"})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	for _, p := range []*admin.Principal{op, own} {
		ev, err := api.GetEvent(ctx, p, &apitype.EventGet{ID: id})
		require.NoError(t, err)
		require.Equal(t, "acct_evops", ev.AccountID)
		require.JSONEq(t, `{"n":1}`, string(ev.Body))
	}

	_, err = api.FindEvent(ctx, events, &apitype.EventFind{IdempotencyKey: "key-1"})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	_, err = api.FindEvent(ctx, other, &apitype.EventFind{AccountID: "acct_evops", IdempotencyKey: "key-1"})
	requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
	_, err = api.FindEvent(ctx, other, &apitype.EventFind{IdempotencyKey: "key-1"})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.FindEvent(ctx, own, &apitype.EventFind{})
	e = requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_field")
	require.Equal(t, "idempotency_key", e.Field)
	ev, err := api.FindEvent(ctx, own, &apitype.EventFind{IdempotencyKey: "key-1"})
	require.NoError(t, err, "a bound key finds in its own account")
	require.Equal(t, id, ev.ID)
	ev, err = api.FindEvent(ctx, op, &apitype.EventFind{AccountID: "acct_evops", IdempotencyKey: "key-1"})
	require.NoError(t, err)
	require.Equal(t, id, ev.ID)
}
