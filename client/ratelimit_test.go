package client_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testserver"
)

// Over its key's rate limit, the client waits as long as the server's
// Retry-After asks before retrying (its own backoff here is a
// millisecond, which would spend its retries at once), and doesn't wait
// for a retry its context would not live to see.
func TestClientRetryAfter(t *testing.T) {
	t.Parallel()

	srv := testserver.Start(t, func(c *server.Config) {
		c.BootstrapAdminKey = adminKey
		c.RateLimitManagement = admin.Rate{PerSecond: 1, Burst: 1}
	})
	ctx := context.Background()
	root, err := client.New(srv.BaseURL, adminKey, nil)
	require.NoError(t, err)
	key, err := root.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopeAccount, AccountID: "acct_retry_after"})
	require.NoError(t, err)
	c, err := client.New(srv.BaseURL, key.Key, &client.Config{MaxRetries: 3, RetryInitialInterval: time.Millisecond})
	require.NoError(t, err)

	_, err = c.ListWebhooks(ctx, &client.ListWebhooksParams{})
	require.NoError(t, err)
	start := time.Now()
	_, err = c.ListWebhooks(ctx, &client.ListWebhooksParams{})
	require.NoError(t, err, "retried once the server said it could be")
	require.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "not before Retry-After")

	// The bucket is empty again: Retry-After is a second, the context
	// ends sooner.
	short, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	_, err = c.ListWebhooks(short, &client.ListWebhooksParams{})
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr, "err: %v", err)
	require.Equal(t, http.StatusTooManyRequests, apiErr.Status)
	require.Equal(t, "rate_limited", apiErr.Code)
	require.Equal(t, time.Second, apiErr.RetryAfter)
	require.NoError(t, short.Err(), "answered at once, not at the context's end")
}
