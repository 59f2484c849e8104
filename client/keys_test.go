package client_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
)

// RotateKey: a new key with the same scope and account, the old one
// working for the grace period and listed with its expiry, never retried.
func TestClientRotateKey(t *testing.T) {
	t.Parallel()

	b := setup(t)
	ctx := context.Background()
	c := b.client
	const acct = "acct_client_rot"
	hook, err := c.CreateWebhook(ctx, &client.CreateWebhookParams{AccountID: acct, URL: "https://example.com/client-rot"})
	require.NoError(t, err)
	keyClient := func(key string) *client.Client {
		kc, err := client.New(b.baseURL, key, nil)
		require.NoError(t, err)
		return kc
	}

	old, err := c.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopeAccount, AccountID: acct, Description: "svc"})
	require.NoError(t, err)

	// The server's default grace: an hour.
	before := time.Now()
	rotated, err := c.RotateKey(ctx, old.ID, client.KeyGraceDefault)
	require.NoError(t, err)
	require.NotEmpty(t, rotated.Key.Key)
	require.NotEqual(t, old.Key, rotated.Key.Key)
	require.NotEqual(t, old.ID, rotated.ID)
	require.Equal(t, client.ScopeAccount, rotated.Scope)
	require.Equal(t, acct, *rotated.AccountID)
	require.Equal(t, "svc", rotated.Description)
	require.Nil(t, rotated.ExpiresAt)
	require.Equal(t, old.ID, rotated.OldKeyID)
	require.WithinRange(t, rotated.OldKeyExpiresAt, before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second))

	// Listed with the rotation; never the keys.
	keys, err := c.ListKeys(ctx, &client.ListKeysParams{AccountID: acct})
	require.NoError(t, err)
	require.Len(t, keys.Data, 2)
	require.Equal(t, rotated.ID, keys.Data[0].ID)
	require.Nil(t, keys.Data[0].ExpiresAt)
	require.Equal(t, old.ID, keys.Data[1].ID)
	require.True(t, rotated.OldKeyExpiresAt.Equal(*keys.Data[1].ExpiresAt))
	require.Equal(t, rotated.ID, *keys.Data[1].ReplacedBy)
	for _, k := range keys.Data {
		require.Empty(t, k.Key)
	}

	// Both work during the grace period.
	for _, key := range []string{old.Key, rotated.Key.Key} {
		got, err := keyClient(key).GetWebhook(ctx, hook.ID)
		require.NoError(t, err)
		require.Equal(t, hook.ID, got.ID)
	}

	// Rotated once only.
	_, err = c.RotateKey(ctx, old.ID, time.Hour)
	requireAPIError(t, err, http.StatusConflict, "key_already_rotated", "id")

	// Grace 0: the rotated key is refused at once, its replacement works.
	again, err := c.RotateKey(ctx, rotated.ID, 0)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), again.OldKeyExpiresAt, 5*time.Second)
	_, err = keyClient(rotated.Key.Key).GetWebhook(ctx, hook.ID)
	apiErr := requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key", "Authorization")
	require.Contains(t, apiErr.Message, "expired")
	_, err = keyClient(again.Key.Key).GetWebhook(ctx, hook.ID)
	require.NoError(t, err)

	// Refused: nothing changed.
	n := b.count(t, "api_keys")
	_, err = c.RotateKey(ctx, again.ID, 8*24*time.Hour)
	requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_grace", "grace")
	_, err = c.RotateKey(ctx, "key_00000000000000000000000000000000", time.Hour)
	requireAPIError(t, err, http.StatusNotFound, "not_found", "id")
	_, err = c.RotateKey(ctx, "key/../x", time.Hour)
	require.ErrorContains(t, err, "is not an id")
	require.Equal(t, n, b.count(t, "api_keys"))

	t.Run("NeverRetried", func(t *testing.T) {
		// A 503 is not retried: one request, no key made.
		p := newProxy(t, b.baseURL, onFirst("503"))
		pc, err := client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		k, err := c.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopeEventsWrite})
		require.NoError(t, err)
		n := b.count(t, "api_keys")
		_, err = pc.RotateKey(ctx, k.ID, time.Hour)
		requireAPIError(t, err, http.StatusServiceUnavailable, "", "")
		require.Equal(t, 1, p.count())
		require.Equal(t, n, b.count(t, "api_keys"))

		// An answer lost after the server rotated: not retried either, so
		// exactly one new key, and the error is a network error.
		p = newProxy(t, b.baseURL, onFirst("drop"))
		pc, err = client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		_, err = pc.RotateKey(ctx, k.ID, time.Hour)
		require.Error(t, err)
		var apiErr *client.APIError
		require.NotErrorAs(t, err, &apiErr, "a network error is no API error")
		require.Equal(t, 1, p.count())
		require.Equal(t, n+1, b.count(t, "api_keys"))
		require.Equal(t, 1, b.count(t, "api_keys WHERE replaced_by IS NOT NULL AND id = '"+k.ID+"'"))
	})
}
