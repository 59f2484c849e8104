package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
)

// The New webhook form of an account at its webhook limit: the form again,
// 422, with the API's message naming the limit, and nothing created.
func TestNewWebhookAtTheLimit(t *testing.T) {
	t.Parallel()

	b := start(t)
	const account = "acct_dash_limit"
	for i := range admin.MaxWebhooksPerAccountDefault {
		b.createWebhook(t, account, fmt.Sprintf("https://example.com/limit/%d", i))
	}
	k := b.createKey(t, "account", account)
	br := b.browser(t)
	br.signIn(t, k.Key)

	p := br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {br.csrf(t)}, "url": {"https://example.com/limit/new"}})
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, text(p.body), fmt.Sprintf("an account may have at most %d webhooks", admin.MaxWebhooksPerAccountDefault))
	require.Contains(t, p.body, `value="https://example.com/limit/new"`, "the form keeps what was typed")
	require.Equal(t, admin.MaxWebhooksPerAccountDefault, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = $1", account))
}
