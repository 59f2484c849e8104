package dashboard_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testreceiver"
)

// The detail view shows the webhook's rate limit, or none.
func TestWebhookRateLimitShown(t *testing.T) {
	t.Parallel()
	b := start(t)
	k := b.createKey(t, "account", "acct_rate")
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	plain := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/plain"})
	limited := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/limited", "rate_limit_per_second": 5})
	br := b.browser(t)
	br.signIn(t, k.Key)

	require.Equal(t, "None", elementText(br.get(t, "/dashboard/webhooks/"+plain.ID).body, "rate-limit"))
	require.Contains(t, elementText(br.get(t, "/dashboard/webhooks/"+limited.ID).body, "rate-limit"), "At most 5 attempts started a second")
}

// The detail view shows the webhook's delivery order: none, or FIFO with
// the count waiting.
func TestWebhookOrderingShown(t *testing.T) {
	t.Parallel()
	b := start(t)
	k := b.createKey(t, "account", "acct_fifo")
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	plain := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/plain"})
	fifo := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/fifo", "ordering": "fifo"})
	br := b.browser(t)
	br.signIn(t, k.Key)

	require.Contains(t, elementText(br.get(t, "/dashboard/webhooks/"+plain.ID).body, "ordering"), "None")
	shown := elementText(br.get(t, "/dashboard/webhooks/"+fifo.ID).body, "ordering")
	require.Contains(t, shown, "In order, one at a time (FIFO)")
	require.Contains(t, shown, "0 waiting")
	require.NotContains(t, shown, "blocked")
}
