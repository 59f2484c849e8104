package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// TestEventTypeOperations calls the event catalogue's typed operations
// directly, as the dashboard does, without HTTP: reading is for every key
// but portal:write (403 insufficient_scope), changing for admin keys only
// (an account key's 403 stores nothing); refusals name their field.
func TestEventTypeOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, nil)
	op := admin.OperatorPrincipal()
	account := keyPrincipal(store.ScopeAccount, "acct_etops")
	events := keyPrincipal(store.ScopeEventsWrite, "acct_etops")
	portal := keyPrincipal(store.ScopePortalWrite, "acct_etops")
	create := &apitype.EventTypeCreate{Type: "order.shipped", Description: "shipped", Schema: json.RawMessage(transferSchema), Example: json.RawMessage(transferExample)}

	seeded := countTable(t, pool, "event_types") // the catalogue's own types

	_, err := api.CreateEventType(ctx, account, create)
	e := requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	require.Equal(t, "this API key's scope (account) does not allow POST /v1/event-types", e.Message)
	require.Equal(t, seeded, countTable(t, pool, "event_types"), "a refused operation stores nothing")
	_, err = api.CreateEventType(ctx, op, &apitype.EventTypeCreate{Type: "order.shipped", Schema: json.RawMessage(transferSchema)})
	e = requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_field")
	require.Equal(t, "example", e.Field)

	created, err := api.CreateEventType(ctx, op, create)
	require.NoError(t, err)
	require.Equal(t, "order.shipped", created.Type)
	_, err = api.CreateEventType(ctx, op, create)
	requireAPIError(t, err, http.StatusConflict, "event_type_exists")

	_, err = api.ListEventTypes(ctx, portal, &apitype.EventTypeList{})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	for _, p := range []*admin.Principal{op, account, events} {
		list, err := api.ListEventTypes(ctx, p, &apitype.EventTypeList{})
		require.NoError(t, err)
		require.Len(t, list.Data, seeded+1)
		got, err := api.GetEventType(ctx, p, &apitype.EventTypeGet{Type: "order.shipped"})
		require.NoError(t, err)
		require.Equal(t, "shipped", got.Description)
	}
	_, err = api.GetEventType(ctx, portal, &apitype.EventTypeGet{Type: "order.shipped"})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	_, err = api.GetEventType(ctx, account, &apitype.EventTypeGet{Type: "order.unknown"})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.GetEventType(ctx, account, &apitype.EventTypeGet{Type: "Not A Type"})
	requireAPIError(t, err, http.StatusNotFound, "not_found")

	deprecated := true
	_, err = api.UpdateEventType(ctx, account, &apitype.EventTypePatch{Type: "order.shipped", Deprecated: &deprecated})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	got, err := api.GetEventType(ctx, op, &apitype.EventTypeGet{Type: "order.shipped"})
	require.NoError(t, err)
	require.False(t, got.Deprecated, "a refused change changes nothing")
	_, err = api.UpdateEventType(ctx, op, &apitype.EventTypePatch{Type: "order.unknown", Deprecated: &deprecated})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	updated, err := api.UpdateEventType(ctx, op, &apitype.EventTypePatch{Type: "order.shipped", Deprecated: &deprecated})
	require.NoError(t, err)
	require.True(t, updated.Deprecated)
	require.NotNil(t, updated.DeprecatedAt)
}
