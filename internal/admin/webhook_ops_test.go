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

// TestWebhookOperations calls the webhooks family's typed operations
// directly, as the dashboard does, without HTTP: each refuses a key of
// another scope (403, nothing written) and answers another account's
// webhook 404 as if it did not exist (changing nothing), and works for
// its own account's key.
func TestWebhookOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	api := newAPIWith(t, pool, nil) // no Sender: test sends answer 503
	own := keyPrincipal(store.ScopeAccount, "acct_wh_ops_a")
	other := keyPrincipal(store.ScopeAccount, "acct_wh_ops_b")
	events := keyPrincipal(store.ScopeEventsWrite, "acct_wh_ops_a")
	str := func(s string) *string { return &s }

	// Create: 401 without a principal, 403 for another scope or account,
	// nothing stored; then made, with its secret.
	_, err := api.CreateWebhook(ctx, nil, &apitype.WebhookCreate{URL: str("https://example.com/ops")})
	requireAPIError(t, err, http.StatusUnauthorized, "missing_api_key")
	_, err = api.CreateWebhook(ctx, events, &apitype.WebhookCreate{URL: str("https://example.com/ops")})
	e := requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	require.Equal(t, "this API key's scope (events:write) does not allow POST /v1/webhooks", e.Message)
	_, err = api.CreateWebhook(ctx, own, &apitype.WebhookCreate{AccountID: str("acct_wh_ops_b"), URL: str("https://example.com/ops")})
	requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
	_, err = api.CreateWebhook(ctx, own, &apitype.WebhookCreate{URL: str("ftp://example.com/ops")})
	e = requireAPIError(t, err, http.StatusUnprocessableEntity, "unsupported_scheme")
	require.Equal(t, "url", e.Field)
	require.Equal(t, 0, countTable(t, pool, "webhooks"), "a refused operation stores nothing")
	hook, err := api.CreateWebhook(ctx, own, &apitype.WebhookCreate{URL: str("https://example.com/ops")})
	require.NoError(t, err)
	require.Equal(t, "acct_wh_ops_a", hook.AccountID)
	require.NotEmpty(t, hook.Secret)
	get := &apitype.WebhookGet{ID: hook.ID}

	// List: the key's own account only.
	page, err := api.ListWebhooks(ctx, own, &apitype.WebhookList{})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.Empty(t, page.Data[0].Secret, "a listed webhook never shows its secret")
	page, err = api.ListWebhooks(ctx, other, &apitype.WebhookList{})
	require.NoError(t, err)
	require.Empty(t, page.Data)
	_, err = api.ListWebhooks(ctx, other, &apitype.WebhookList{AccountID: "acct_wh_ops_a"})
	requireAPIError(t, err, http.StatusForbidden, "account_not_allowed")
	_, err = api.ListWebhooks(ctx, events, &apitype.WebhookList{})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	_, err = api.ListWebhooks(ctx, own, &apitype.WebhookList{Limit: admin.LimitMax + 1})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_limit")

	// Get, secret and health: 404 for another account, 403 for another
	// scope, a malformed id 404.
	got, err := api.GetWebhook(ctx, own, get)
	require.NoError(t, err)
	require.Equal(t, hook.ID, got.ID)
	require.Empty(t, got.Secret)
	secret, err := api.RevealWebhookSecret(ctx, own, get)
	require.NoError(t, err)
	require.Equal(t, hook.Secret, secret.Secret)
	health, err := api.GetWebhookHealth(ctx, own, get)
	require.NoError(t, err)
	require.Equal(t, hook.ID, health.WebhookID)
	require.Zero(t, health.ConsecutiveFailures)
	for _, call := range map[string]func(*admin.Principal, *apitype.WebhookGet) error{
		"GetWebhook": func(p *admin.Principal, req *apitype.WebhookGet) error {
			_, err := api.GetWebhook(ctx, p, req)
			return err
		},
		"RevealWebhookSecret": func(p *admin.Principal, req *apitype.WebhookGet) error {
			_, err := api.RevealWebhookSecret(ctx, p, req)
			return err
		},
		"GetWebhookHealth": func(p *admin.Principal, req *apitype.WebhookGet) error {
			_, err := api.GetWebhookHealth(ctx, p, req)
			return err
		},
	} {
		requireAPIError(t, call(other, get), http.StatusNotFound, "not_found")
		requireAPIError(t, call(events, get), http.StatusForbidden, "insufficient_scope")
		requireAPIError(t, call(own, &apitype.WebhookGet{ID: "wh_bad"}), http.StatusNotFound, "not_found")
	}
	require.Equal(t, 1, countTable(t, pool, "secret_reveals"), "only the allowed reveal is recorded")

	// Update: the field's rule, 404 for another account (unchanged), 403.
	_, err = api.UpdateWebhook(ctx, own, &apitype.WebhookPatch{ID: hook.ID, RateLimitPerSecond: apitype.NullableInt{Set: true, Value: new(int)}})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_rate_limit")
	_, err = api.UpdateWebhook(ctx, other, &apitype.WebhookPatch{ID: hook.ID, Description: str("theirs")})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.UpdateWebhook(ctx, events, &apitype.WebhookPatch{ID: hook.ID, Description: str("theirs")})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	five := 5
	updated, err := api.UpdateWebhook(ctx, own, &apitype.WebhookPatch{ID: hook.ID, Description: str("ours"), RateLimitPerSecond: apitype.NullableInt{Set: true, Value: &five}})
	require.NoError(t, err)
	require.Equal(t, "ours", updated.Description)
	require.Equal(t, &five, updated.RateLimitPerSecond)

	// Rotate the secret.
	_, err = api.RotateWebhookSecret(ctx, own, &apitype.WebhookRotateSecret{ID: hook.ID, ExpiresIn: str("8d")})
	e = requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_duration")
	require.Equal(t, "expires_in", e.Field)
	_, err = api.RotateWebhookSecret(ctx, other, &apitype.WebhookRotateSecret{ID: hook.ID})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.RotateWebhookSecret(ctx, events, &apitype.WebhookRotateSecret{ID: hook.ID})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	rotated, err := api.RotateWebhookSecret(ctx, own, &apitype.WebhookRotateSecret{ID: hook.ID, ExpiresIn: str("1h")})
	require.NoError(t, err)
	require.NotEqual(t, hook.Secret, rotated.Secret)
	require.NotNil(t, rotated.PreviousSecretExpiresAt)

	// Test send (this API has no Sender) and the FIFO skip (not FIFO).
	_, err = api.SendTest(ctx, other, &apitype.TestSendRequest{ID: hook.ID})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.SendTest(ctx, events, &apitype.TestSendRequest{ID: hook.ID})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	_, err = api.SendTest(ctx, own, &apitype.TestSendRequest{ID: hook.ID})
	requireAPIError(t, err, http.StatusServiceUnavailable, "unavailable")
	dlv := ident.New(ident.Delivery)
	_, err = api.SkipFIFOHead(ctx, other, &apitype.FIFOSkip{ID: hook.ID, DeliveryID: &dlv})
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.SkipFIFOHead(ctx, events, &apitype.FIFOSkip{ID: hook.ID, DeliveryID: &dlv})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	_, err = api.SkipFIFOHead(ctx, own, &apitype.FIFOSkip{ID: hook.ID})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_field")
	_, err = api.SkipFIFOHead(ctx, own, &apitype.FIFOSkip{ID: hook.ID, DeliveryID: &dlv})
	requireAPIError(t, err, http.StatusConflict, "not_fifo")

	// Delete: 404 for another account and 403 for another scope leave it.
	_, err = api.DeleteWebhook(ctx, other, get)
	requireAPIError(t, err, http.StatusNotFound, "not_found")
	_, err = api.DeleteWebhook(ctx, events, get)
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope")
	_, err = api.GetWebhook(ctx, own, get)
	require.NoError(t, err, "still there")
	_, err = api.DeleteWebhook(ctx, own, get)
	require.NoError(t, err)
	_, err = api.GetWebhook(ctx, own, get)
	requireAPIError(t, err, http.StatusNotFound, "not_found")
}
