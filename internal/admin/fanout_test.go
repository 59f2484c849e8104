package admin_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
)

// A request whose deliveries (events × the webhooks each goes to, filters
// applied) exceed WEBHOOKD_MAX_FANOUT_PER_REQUEST is refused whole, 422
// fanout_too_large, with nothing stored and its idempotency keys free.
func TestFanoutLimit(t *testing.T) {
	t.Parallel()

	// acct_fan has four webhooks taking every type and two taking only
	// order.paid: order.created makes 4 deliveries, order.paid 6.
	// acct_wide has 12 webhooks. A request may make 10. The steps count
	// rows, so they run in turn.
	b := startServerWith(t, true, func(c *server.Config) { c.MaxFanoutPerRequest = 10 })
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	createHook := func(account, path, types string) {
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: fmt.Sprintf(`{"account_id":%q,"url":%q,"event_types":%s}`, account, rcv.URL+path, types)})
		require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	}
	for i := range 4 {
		createHook("acct_fan", fmt.Sprintf("/fan/all-%d", i), `[]`)
	}
	for i := range 2 {
		createHook("acct_fan", fmt.Sprintf("/fan/paid-%d", i), `["order.paid"]`)
	}
	for i := range 12 {
		createHook("acct_wide", fmt.Sprintf("/wide/%d", i), `[]`)
	}
	item := func(account, typ, key string) string {
		return fmt.Sprintf(`{"account_id":%q,"type":%q,"data":{"n":1},"idempotency_key":%q}`, account, typ, key)
	}
	batch := func(items ...string) *response {
		return b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: `{"events":[` + strings.Join(items, ",") + `]}`})
	}
	requireRefused := func(t *testing.T, resp *response, deliveries int) {
		t.Helper()
		requireError(t, resp, http.StatusUnprocessableEntity, "fanout_too_large", "")
		require.Contains(t, string(resp.body), fmt.Sprintf("%d deliveries", deliveries))
		require.Contains(t, string(resp.body), "the 10 a request may create")
	}
	// unchanged asserts that refused wrote nothing, counting every table
	// once the deliveries before it have settled.
	unchanged := func(t *testing.T, refused func()) {
		t.Helper()
		waitSettled(t, b.pool)
		before := countRows(t, b.pool)
		refused()
		require.Equal(t, before, countRows(t, b.pool))
	}

	t.Run("BatchOverTheLimit", func(t *testing.T) {
		// 3 × 4 = 12 deliveries.
		unchanged(t, func() {
			requireRefused(t, batch(item("acct_fan", "order.created", "fan-1"), item("acct_fan", "order.created", "fan-2"), item("acct_fan", "order.created", "fan-3")), 12)
		})
		// Its idempotency keys were not used up: fan-1 alone is new.
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: item("acct_fan", "order.created", "fan-1")})
		var accepted apitype.Enqueued
		jsonBody(t, resp, http.StatusAccepted, &accepted)
		require.Len(t, accepted.Deliveries, 4)
	})

	t.Run("FiltersCount", func(t *testing.T) {
		// 6 + 4 = 10: at the limit, accepted.
		require.Equal(t, http.StatusAccepted, batch(item("acct_fan", "order.paid", "f-1"), item("acct_fan", "order.created", "f-2")).status)
		// 6 + 6 = 12.
		unchanged(t, func() {
			requireRefused(t, batch(item("acct_fan", "order.paid", "f-3"), item("acct_fan", "order.paid", "f-4")), 12)
		})
	})

	t.Run("RepeatsCountNothing", func(t *testing.T) {
		// fan-1 is a repeat (0), the other two are new: 4 + 4 = 8.
		resp := batch(item("acct_fan", "order.created", "fan-1"), item("acct_fan", "order.created", "r-1"), item("acct_fan", "order.created", "r-2"))
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	})

	t.Run("SingleEventsEachAlone", func(t *testing.T) {
		// Concurrent single events are stored together, but each is its
		// own request: acct_fan's (4 each, 40 together) pass, acct_wide's
		// (12 each) are refused, each alone.
		waitSettled(t, b.pool)
		before := countRows(t, b.pool)
		const each = 10
		answers := make([]*response, 2*each)
		var wg sync.WaitGroup
		for i := range answers {
			account := "acct_fan"
			if i%2 == 1 {
				account = "acct_wide"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = b.do(t, request{method: http.MethodPost, path: "/v1/events", body: item(account, "order.created", fmt.Sprintf("single-%d", i))})
			}()
		}
		wg.Wait()
		for i, resp := range answers {
			if i%2 == 0 {
				require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
				continue
			}
			requireRefused(t, resp, 12)
		}
		waitSettled(t, b.pool)
		after := countRows(t, b.pool)
		require.Equal(t, before.Events+each, after.Events, "only acct_fan's events")
		require.Equal(t, before.Deliveries+each*4, after.Deliveries)
		require.Equal(t, before.IdempotencyKeys+each, after.IdempotencyKeys)
	})
}

// With the defaults (20 webhooks an account, a fan-out of 1,000 × 20), the
// largest batch to an account with the most webhooks is accepted: the
// limit refuses nothing legal. The webhooks are paused, so the 20,000
// deliveries are stored without jobs and nothing is sent.
func TestFanoutDefaultAdmitsAFullBatch(t *testing.T) {
	t.Parallel()

	b := startServer(t, true)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	for i := range admin.MaxWebhooksPerAccountDefault {
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: fmt.Sprintf(`{"account_id":"acct_full","url":%q}`, rcv.URL+fmt.Sprintf("/full/%d", i))})
		var created apitype.Webhook
		jsonBody(t, resp, http.StatusCreated, &created)
		require.Equal(t, http.StatusOK, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + created.ID, body: `{"paused":true}`}).status)
	}
	items := make([]string, engine.MaxBatchSize)
	for i := range items {
		items[i] = fmt.Sprintf(`{"account_id":"acct_full","type":"order.created","data":{"i":%d}}`, i)
	}
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: `{"events":[` + strings.Join(items, ",") + `]}`})
	require.Equal(t, http.StatusAccepted, resp.status, "body: %.300s", resp.body)
	require.Equal(t, engine.MaxBatchSize*admin.MaxWebhooksPerAccountDefault, countRows(t, b.pool).Deliveries)
	require.Zero(t, rcv.Count())
}
