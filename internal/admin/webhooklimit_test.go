package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
)

// An account has at most MaxWebhooksPerAccount live webhooks (20 by
// default): the next create is 422 webhook_limit_reached naming the limit,
// however the creates race; deleting one makes room; an account already
// above the limit keeps its webhooks and can't add one.
func TestWebhookLimit(t *testing.T) {
	t.Parallel()

	// One server with the default limit; each subtest uses accounts of its
	// own.
	bundle := startServer(t, false)
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return bundle
	}
	create := func(t *testing.T, b *testBundle, account, url string) *response {
		t.Helper()
		return b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: fmt.Sprintf(`{"account_id":%q,"url":%q}`, account, url)})
	}
	requireLimit := func(t *testing.T, resp *response) {
		t.Helper()
		requireError(t, resp, http.StatusUnprocessableEntity, "webhook_limit_reached", "")
		require.Contains(t, string(resp.body), fmt.Sprintf("at most %d webhooks", admin.MaxWebhooksPerAccountDefault))
	}
	live := func(t *testing.T, b *testBundle, account string) int {
		t.Helper()
		n, err := store.CountLiveWebhooks(context.Background(), b.pool, account)
		require.NoError(t, err)
		return n
	}

	t.Run("ParallelCreatesEndAtTheLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		const account, tries = "acct_limit_race", 50
		statuses := make([]*response, tries)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[i] = create(t, b, account, fmt.Sprintf("https://example.com/race/%d", i))
			}()
		}
		close(start)
		wg.Wait()
		created := 0
		for _, resp := range statuses {
			if resp.status == http.StatusCreated {
				created++
				continue
			}
			requireLimit(t, resp)
		}
		require.Equal(t, admin.MaxWebhooksPerAccountDefault, created)
		require.Equal(t, admin.MaxWebhooksPerAccountDefault, live(t, b, account))

		// Deleting one makes room for exactly one.
		var page apitype.Page[apitype.Webhook]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=" + account + "&limit=1"}), http.StatusOK, &page)
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + page.Data[0].ID}).status)
		require.Equal(t, http.StatusCreated, create(t, b, account, "https://example.com/race/after-delete").status)
		requireLimit(t, create(t, b, account, "https://example.com/race/one-too-many"))

		// Another account is not affected.
		require.Equal(t, http.StatusCreated, create(t, b, "acct_limit_race_other", "https://example.com/race/0").status)
	})

	t.Run("AboveALoweredLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		// 25 webhooks made while the limit was higher.
		const account = "acct_limit_above"
		for i := range 25 {
			url := fmt.Sprintf("https://example.com/above/%d", i)
			require.NoError(t, store.InsertWebhook(context.Background(), b.pool, &store.Webhook{
				ID: ident.New(ident.Webhook), AccountID: account, URL: url, URLNormalized: url,
				SecretCiphertext: []byte("x"), SecretKeyID: "k", CreatedAt: time.Now(),
			}))
		}
		requireLimit(t, create(t, b, account, "https://example.com/above/new"))
		var page apitype.Page[apitype.Webhook]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=" + account}), http.StatusOK, &page)
		require.Len(t, page.Data, 25, "the account keeps its webhooks")

		// One delete leaves it at 24, still above: no room yet.
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + page.Data[0].ID}).status)
		requireLimit(t, create(t, b, account, "https://example.com/above/new"))
		require.Equal(t, 24, live(t, b, account))
	})
}
