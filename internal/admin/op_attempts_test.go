package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// TestListDeliveryAttemptsOperation calls the attempts of a page of
// deliveries directly: admitted as GET /v1/deliveries/{id} (401 without
// a principal, 403 for an events:write key), another account's or an
// unknown delivery 404, oldest attempt first, the response excerpt cut to
// ExcerptMax bytes (ExcerptCut) before it is made valid UTF-8.
func TestListDeliveryAttemptsOperation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, nil)

	now := time.Now().UTC().Truncate(time.Microsecond)
	tried, untried := ident.New(ident.Delivery), ident.New(ident.Delivery)
	for _, id := range []string{tried, untried} {
		_, err := pool.Exec(ctx, `INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state) VALUES ($1, $2, $3, 'acct_att', 'order.created', 'dead')`,
			id, ident.New(ident.Event), ident.New(ident.Webhook))
		require.NoError(t, err)
	}
	// A long answer whose cut falls inside a two-byte character, with a
	// NUL byte; then a refused connection.
	long := "\x00" + strings.Repeat("é", 10)
	_, err := pool.Exec(ctx, `
INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, status_code, error_kind, error_message, response_excerpt, signature_t)
VALUES ($1, 1, 1, $2, $2, 1500, 500, NULL, NULL, $3, 1), ($1, 2, 1, $2, $2, 20, NULL, 'connection', 'refused', NULL, 2)`, tried, now, []byte(long))
	require.NoError(t, err)

	own := keyPrincipal(store.ScopeAccount, "acct_att")
	req := &admin.DeliveryAttemptsRequest{IDs: []string{tried, untried}, ExcerptMax: 4}

	_, err = api.ListDeliveryAttempts(ctx, nil, req)
	requireAPIError(t, err, http.StatusUnauthorized, "missing_api_key")
	_, err = api.ListDeliveryAttempts(ctx, keyPrincipal(store.ScopeEventsWrite, "acct_att"), req)
	e := requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	require.Equal(t, "this API key's scope (events:write) does not allow GET /v1/deliveries/{id}", e.Message)
	_, err = api.ListDeliveryAttempts(ctx, keyPrincipal(store.ScopeAccount, "acct_other"), req)
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	for _, id := range []string{"dlv_nope", ident.New(ident.Delivery)} {
		_, err = api.ListDeliveryAttempts(ctx, own, &admin.DeliveryAttemptsRequest{IDs: []string{tried, id}})
		requireAPIError(t, err, http.StatusNotFound, "not_found")
	}
	_, err = api.ListDeliveryAttempts(ctx, own, &admin.DeliveryAttemptsRequest{IDs: make([]string, admin.LimitMax+1)})
	e = requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_ids")
	require.Equal(t, "ids", e.Field)

	got, err := api.ListDeliveryAttempts(ctx, own, req)
	require.NoError(t, err)
	require.Empty(t, got.Attempts[untried], "a delivery without attempts has none")
	attempts := got.Attempts[tried]
	require.Len(t, attempts, 2)
	first, second := attempts[0], attempts[1]
	require.Equal(t, 1, first.Number)
	require.Equal(t, 500, *first.StatusCode)
	require.InDelta(t, 1.5, first.DurationMS, 0)
	require.True(t, first.ExcerptCut)
	require.Equal(t, "\uFFFDé\uFFFD", *first.ResponseExcerpt, "4 bytes: NUL, é and half an é, made valid")
	require.Equal(t, 2, second.Number)
	require.Equal(t, "connection", *second.ErrorKind)
	require.Nil(t, second.ResponseExcerpt)
	require.False(t, second.ExcerptCut)

	whole, err := api.ListDeliveryAttempts(ctx, admin.OperatorPrincipal(), &admin.DeliveryAttemptsRequest{IDs: []string{tried}})
	require.NoError(t, err, "an admin sees every account's")
	require.False(t, whole.Attempts[tried][0].ExcerptCut)
	require.Equal(t, "\uFFFD"+strings.Repeat("é", 10), *whole.Attempts[tried][0].ResponseExcerpt, "ExcerptMax 0: the whole excerpt")

	none, err := api.ListDeliveryAttempts(ctx, own, &admin.DeliveryAttemptsRequest{})
	require.NoError(t, err)
	require.Empty(t, none.Attempts)
}
