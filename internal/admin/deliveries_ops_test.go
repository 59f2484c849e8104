package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
)

// TestDeliveryOperations calls the deliveries family's typed operations
// directly, as the dashboard and the CLI do, without HTTP: each admits
// its caller itself (a missing principal 401, an events:write key 403
// insufficient_scope), binds an account key to its account (another
// account's delivery or batch 404, another account_id 403) and answers as
// the route does.
func TestDeliveryOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startServer(t, true)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook := b.createWebhook(t, "acct_dops", rcv.URL+"/x")
	created := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	dead := seedRow{id: ident.New(ident.Delivery), eventID: ident.New(ident.Event), webhookID: hook.ID, accountID: "acct_dops", eventType: "order.created", state: store.StateDead, createdAt: created}
	seedDeliveries(t, b, []seedRow{dead})

	enqueuer, err := engine.NewEnqueuer(b.srv.River(), nil)
	require.NoError(t, err)
	api, err := admin.New(b.pool, enqueuer, b.keys, nil)
	require.NoError(t, err)
	own := keyPrincipal(store.ScopeAccount, "acct_dops")
	other := keyPrincipal(store.ScopeAccount, "acct_other")
	events := keyPrincipal(store.ScopeEventsWrite, "acct_dops")
	str := func(s string) *string { return &s }

	t.Run("GetDelivery", func(t *testing.T) {
		_, err := api.GetDelivery(ctx, nil, &apitype.DeliveryGet{ID: dead.id})
		requireAPIError(t, err, http.StatusUnauthorized, "missing_api_key")
		_, err = api.GetDelivery(ctx, events, &apitype.DeliveryGet{ID: dead.id})
		e := requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
		require.Equal(t, "this API key's scope (events:write) does not allow GET /v1/deliveries/{id}", e.Message)
		_, err = api.GetDelivery(ctx, other, &apitype.DeliveryGet{ID: dead.id})
		requireAPIError(t, err, http.StatusNotFound, "not_found")
		_, err = api.GetDelivery(ctx, own, &apitype.DeliveryGet{ID: "dlv_nope"})
		requireAPIError(t, err, http.StatusNotFound, "not_found")

		d, err := api.GetDelivery(ctx, own, &apitype.DeliveryGet{ID: dead.id})
		require.NoError(t, err)
		require.Equal(t, hook.ID, d.WebhookID)
		require.Equal(t, store.StateDead, d.State)
		require.NotNil(t, d.Attempts, "one delivery comes with its attempts")
	})

	t.Run("ListDeliveries", func(t *testing.T) {
		_, err := api.ListDeliveries(ctx, events, &apitype.DeliveryList{})
		requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
		_, err = api.ListDeliveries(ctx, own, &apitype.DeliveryList{AccountID: str("acct_other")})
		e := requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
		require.Equal(t, "account_id", e.Field)
		_, err = api.ListDeliveries(ctx, admin.OperatorPrincipal(), &apitype.DeliveryList{})
		e = requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_filter")
		require.Equal(t, "account_id", e.Field)
		_, err = api.ListDeliveries(ctx, own, &apitype.DeliveryList{CreatedAfter: str("yesterday")})
		e = requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_time")
		require.Equal(t, "created_after", e.Field)
		_, err = api.ListDeliveries(ctx, own, &apitype.DeliveryList{Limit: admin.LimitMax + 1})
		requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_limit")
		_, err = api.ListDeliveries(ctx, own, &apitype.DeliveryList{Cursor: str("nope")})
		requireAPIError(t, err, http.StatusBadRequest, "invalid_cursor")

		page, err := api.ListDeliveries(ctx, own, &apitype.DeliveryList{})
		require.NoError(t, err, "a bound key lists its own account by default")
		require.Equal(t, []string{dead.id}, ids(page.Data))
		require.Nil(t, page.Data[0].Attempts, "a listed delivery has no attempts")
		page, err = api.ListDeliveries(ctx, other, &apitype.DeliveryList{WebhookID: str(hook.ID)})
		require.NoError(t, err)
		require.Empty(t, page.Data, "another account's webhook lists nothing")
		page, err = api.ListDeliveries(ctx, admin.OperatorPrincipal(), &apitype.DeliveryList{State: str(store.StateDead)})
		require.NoError(t, err)
		require.Contains(t, ids(page.Data), dead.id, "state=dead may list every account")
	})

	t.Run("ReplayDelivery", func(t *testing.T) {
		_, err := api.ReplayDelivery(ctx, events, &apitype.DeliveryReplay{ID: dead.id})
		requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
		_, err = api.ReplayDelivery(ctx, other, &apitype.DeliveryReplay{ID: dead.id})
		requireAPIError(t, err, http.StatusNotFound, "not_found")
		d, err := api.GetDelivery(ctx, own, &apitype.DeliveryGet{ID: dead.id})
		require.NoError(t, err)
		require.Equal(t, store.StateDead, d.State, "a refused replay changes nothing")
		require.Equal(t, 1, d.Generation)

		d, err = api.ReplayDelivery(ctx, own, &apitype.DeliveryReplay{ID: dead.id})
		require.NoError(t, err)
		require.Equal(t, 2, d.Generation)
		require.Len(t, d.Replays, 1)
		b.waitDeliveryState(t, dead.id, store.StateSucceeded)
		_, err = api.ReplayDelivery(ctx, own, &apitype.DeliveryReplay{ID: ident.New(ident.Delivery)})
		requireAPIError(t, err, http.StatusNotFound, "not_found")
	})

	t.Run("ReplayDeliveries", func(t *testing.T) {
		second := seedRow{id: ident.New(ident.Delivery), eventID: ident.New(ident.Event), webhookID: hook.ID, accountID: "acct_dops", eventType: "order.created", state: store.StateDead, createdAt: created.Add(time.Second)}
		seedDeliveries(t, b, []seedRow{second})
		body := &apitype.BulkReplay{WebhookID: &hook.ID}

		_, err := api.ReplayDeliveries(ctx, events, body)
		requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
		_, err = api.ReplayDeliveries(ctx, other, body)
		e := requireAPIError(t, err, http.StatusNotFound, "not_found")
		require.Equal(t, "webhook_id", e.Field)
		_, err = api.ReplayDeliveries(ctx, other, &apitype.BulkReplay{AccountID: str("acct_dops")})
		requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
		n, refused, err := api.CountBulkReplay(ctx, events, body, 10)
		requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
		require.Zero(t, n)
		require.Empty(t, refused)
		n, refused, err = api.CountBulkReplay(ctx, other, body, 10)
		require.NoError(t, err)
		require.Equal(t, "webhook not found", refused)
		require.Zero(t, n)
		n, refused, err = api.CountBulkReplay(ctx, own, body, 10)
		require.NoError(t, err)
		require.Empty(t, refused)
		require.Equal(t, 1, n, "the first was replayed already")

		batch, err := api.ReplayDeliveries(ctx, own, body)
		require.NoError(t, err)
		require.Equal(t, 1, batch.Total)
		b.waitBatchDone(t, batch.ID)

		_, err = api.GetReplayBatch(ctx, events, &apitype.ReplayBatchGet{ID: batch.ID})
		requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
		_, err = api.GetReplayBatch(ctx, other, &apitype.ReplayBatchGet{ID: batch.ID})
		requireAPIError(t, err, http.StatusNotFound, "not_found")
		_, err = api.GetReplayBatch(ctx, own, &apitype.ReplayBatchGet{ID: "rpl_nope"})
		requireAPIError(t, err, http.StatusNotFound, "not_found")
		got, err := api.GetReplayBatch(ctx, own, &apitype.ReplayBatchGet{ID: batch.ID})
		require.NoError(t, err)
		require.Equal(t, "done", got.State)
		require.Equal(t, 1, got.Replayed)
	})
}
