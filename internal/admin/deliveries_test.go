package admin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
)

// listAllDeliveries pages through GET /v1/deliveries?query with limit
// until next_cursor is null, calling between after each page, and returns
// every delivery in the order listed. It checks that no page is longer than
// limit and that only the last is short.
func (b *testBundle) listAllDeliveries(t *testing.T, query url.Values, limit int, auth string, between func(page int)) []apitype.Delivery {
	t.Helper()
	var all []apitype.Delivery
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("limit", strconv.Itoa(limit))
	for page := 0; ; page++ {
		require.Less(t, page, 200, "too many pages")
		var out apitype.Page[apitype.Delivery]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries?" + q.Encode(), auth: auth}), http.StatusOK, &out)
		require.NotNil(t, out.Data, "data is [] when empty, never null")
		require.LessOrEqual(t, len(out.Data), limit)
		all = append(all, out.Data...)
		if between != nil {
			between(page)
		}
		if out.NextCursor == "" {
			return all
		}
		require.Len(t, out.Data, limit, "only the last page is short")
		q.Set("cursor", out.NextCursor)
	}
}

// seedRow is a delivery stored straight into the database, so that a test
// controls its state, type and creation time.
type seedRow struct {
	id, eventID, webhookID, accountID, eventType, state string
	createdAt                                           time.Time
}

// seedDeliveries stores rows (and their events) in one transaction. A
// pending row gets a River job scheduled an hour ahead, so that neither
// the worker nor the reconciler touches it during the test.
func seedDeliveries(t *testing.T, b *testBundle, rows []seedRow) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck

	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.eventID] {
			continue
		}
		seen[r.eventID] = true
		_, err := tx.Exec(ctx, `INSERT INTO events (id, account_id, type, body, occurred_at, created_at) VALUES ($1, $2, $3, '{}', $4, $4)`,
			r.eventID, r.accountID, r.eventType, r.createdAt)
		require.NoError(t, err)
	}
	for _, r := range rows {
		var jobID *int64
		if r.state == store.StatePending {
			res, err := b.srv.River().InsertTx(ctx, tx, engine.DeliveryArgs{DeliveryID: r.id}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
			require.NoError(t, err)
			jobID = &res.Job.ID
		}
		attempts := map[string]int{store.StatePending: 1, store.StateSucceeded: 1, store.StateDead: 10, store.StateCancelled: 2}[r.state]
		var next, finished *time.Time
		if r.state == store.StatePending {
			n := time.Now().Add(time.Hour)
			next = &n
		} else {
			f := r.createdAt.Add(time.Minute)
			finished = &f
		}
		_, err := tx.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, gen_attempts, next_attempt_at, job_id, created_at, updated_at, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $10, $11)`,
			r.id, r.eventID, r.webhookID, r.accountID, r.eventType, r.state, attempts, next, jobID, r.createdAt, finished)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
}

// expectDeliveries is what a listing must return: rows matching keep,
// newest first by (created_at, id).
func expectDeliveries(rows []seedRow, keep func(seedRow) bool) []string {
	var match []seedRow
	for _, r := range rows {
		if keep(r) {
			match = append(match, r)
		}
	}
	slices.SortFunc(match, func(a, b seedRow) int {
		if c := b.createdAt.Compare(a.createdAt); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	ids := make([]string, len(match))
	for i, r := range match {
		ids[i] = r.id
	}
	return ids
}

func ids(items []apitype.Delivery) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestListDeliveries(t *testing.T) {
	t.Parallel()

	b := startServer(t, true)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hookA1 := b.createWebhook(t, "acct_list_a", rcv.URL+"/a1")
	hookA2 := b.createWebhook(t, "acct_list_a", rcv.URL+"/a2")
	hookB1 := b.createWebhook(t, "acct_list_b", rcv.URL+"/b1")

	// 90 events over ten days: account a's fan out to both its webhooks
	// (two deliveries sharing created_at, ordered by id), account b's go to
	// its one. States, types and times vary with the index.
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	states := []string{store.StateSucceeded, store.StateDead, store.StateSucceeded, store.StatePending, store.StateCancelled, store.StateDead, store.StateSucceeded}
	types := []string{"order.created", "order.paid", "refund.issued"}
	var rows []seedRow
	for i := 0; i < 90; i++ {
		eventID := ident.New(ident.Event)
		createdAt := base.Add(time.Duration(i) * 2 * time.Hour).Add(time.Duration(i%3) * time.Microsecond)
		eventType := types[i%len(types)]
		hooks := []*apitype.Webhook{hookA1, hookA2}
		account := "acct_list_a"
		if i%4 == 3 {
			hooks, account = []*apitype.Webhook{hookB1}, "acct_list_b"
		}
		for j, h := range hooks {
			rows = append(rows, seedRow{
				id: ident.New(ident.Delivery), eventID: eventID, webhookID: h.ID, accountID: account,
				eventType: eventType, state: states[(i+j)%len(states)], createdAt: createdAt,
			})
		}
	}
	seedDeliveries(t, b, rows)

	mid := base.Add(60 * time.Hour)
	late := base.Add(140 * time.Hour)
	someEvent := rows[10].eventID
	accountKey := b.createKey(t, "account", "acct_list_a")

	tests := []struct {
		name  string
		query url.Values
		auth  string
		keep  func(seedRow) bool
	}{
		{"Account", url.Values{"account_id": {"acct_list_a"}}, "", func(r seedRow) bool { return r.accountID == "acct_list_a" }},
		{"Webhook", url.Values{"webhook_id": {hookA2.ID}}, "", func(r seedRow) bool { return r.webhookID == hookA2.ID }},
		{"AccountAndWebhook", url.Values{"account_id": {"acct_list_a"}, "webhook_id": {hookA1.ID}}, "", func(r seedRow) bool { return r.webhookID == hookA1.ID }},
		{"WebhookOfAnotherAccount", url.Values{"account_id": {"acct_list_b"}, "webhook_id": {hookA1.ID}}, "", func(seedRow) bool { return false }},
		{"UnknownWebhook", url.Values{"webhook_id": {ident.New(ident.Webhook)}}, "", func(seedRow) bool { return false }},
		{"StatePending", url.Values{"account_id": {"acct_list_a"}, "state": {"pending"}}, "", func(r seedRow) bool {
			return r.accountID == "acct_list_a" && r.state == store.StatePending
		}},
		{"StateSucceeded", url.Values{"webhook_id": {hookA1.ID}, "state": {"succeeded"}}, "", func(r seedRow) bool {
			return r.webhookID == hookA1.ID && r.state == store.StateSucceeded
		}},
		{"StateCancelled", url.Values{"account_id": {"acct_list_b"}, "state": {"cancelled"}}, "", func(r seedRow) bool {
			return r.accountID == "acct_list_b" && r.state == store.StateCancelled
		}},
		{"DeadEveryAccount", url.Values{"state": {"dead"}}, "", func(r seedRow) bool { return r.state == store.StateDead }},
		{"DeadEveryAccountByType", url.Values{"state": {"dead"}, "event_type": {"order.paid"}}, "", func(r seedRow) bool {
			return r.state == store.StateDead && r.eventType == "order.paid"
		}},
		{"EventType", url.Values{"account_id": {"acct_list_a"}, "event_type": {"refund.issued"}}, "", func(r seedRow) bool {
			return r.accountID == "acct_list_a" && r.eventType == "refund.issued"
		}},
		{"WebhookAndEventType", url.Values{"webhook_id": {hookA2.ID}, "event_type": {"order.created"}}, "", func(r seedRow) bool {
			return r.webhookID == hookA2.ID && r.eventType == "order.created"
		}},
		{"EventID", url.Values{"account_id": {"acct_list_a"}, "event_id": {someEvent}}, "", func(r seedRow) bool {
			return r.accountID == "acct_list_a" && r.eventID == someEvent
		}},
		{"CreatedAfter", url.Values{"account_id": {"acct_list_a"}, "created_after": {mid.Format(time.RFC3339)}}, "", func(r seedRow) bool {
			return r.accountID == "acct_list_a" && !r.createdAt.Before(mid)
		}},
		{"CreatedBefore", url.Values{"webhook_id": {hookB1.ID}, "created_before": {mid.Format(time.RFC3339)}}, "", func(r seedRow) bool {
			return r.webhookID == hookB1.ID && r.createdAt.Before(mid)
		}},
		{"CreatedRangeWithOffset", url.Values{"account_id": {"acct_list_a"}, "created_after": {mid.In(time.FixedZone("COT", -5*3600)).Format(time.RFC3339Nano)}, "created_before": {late.Format(time.RFC3339Nano)}}, "", func(r seedRow) bool {
			return r.accountID == "acct_list_a" && !r.createdAt.Before(mid) && r.createdAt.Before(late)
		}},
		{"Everything", url.Values{"webhook_id": {hookA1.ID}, "state": {"dead"}, "event_type": {"order.paid"}, "created_after": {base.Format(time.RFC3339)}, "created_before": {late.Format(time.RFC3339)}}, "", func(r seedRow) bool {
			return r.webhookID == hookA1.ID && r.state == store.StateDead && r.eventType == "order.paid" && r.createdAt.Before(late)
		}},
		{"AccountKeyImplicit", url.Values{}, bearer(accountKey.Key), func(r seedRow) bool { return r.accountID == "acct_list_a" }},
		{"AccountKeyDead", url.Values{"state": {"dead"}}, bearer(accountKey.Key), func(r seedRow) bool {
			return r.accountID == "acct_list_a" && r.state == store.StateDead
		}},
		{"AccountKeyOtherWebhook", url.Values{"webhook_id": {hookB1.ID}}, bearer(accountKey.Key), func(seedRow) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := expectDeliveries(rows, tt.keep)
			// A page size that splits the result, and one page of all.
			for _, limit := range []int{7, 1000} {
				got := b.listAllDeliveries(t, tt.query, limit, tt.auth, nil)
				require.Equal(t, want, ids(got), "limit %d", limit)
			}
		})
	}

	t.Run("Fields", func(t *testing.T) {
		t.Parallel()
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/deliveries?limit=3&webhook_id=" + hookA1.ID})
		var raw struct {
			Data       []map[string]json.RawMessage `json:"data"`
			NextCursor *string                      `json:"next_cursor"`
		}
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		require.NoError(t, json.Unmarshal(resp.body, &raw))
		require.Len(t, raw.Data, 3)
		require.NotNil(t, raw.NextCursor)
		for _, item := range raw.Data {
			keys := make([]string, 0, len(item))
			for k := range item {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			require.Equal(t, []string{"account_id", "attempt_count", "created_at", "event_id", "event_type", "finished_at", "generation", "id", "next_attempt_at", "state", "test", "updated_at", "webhook_id"}, keys)
		}

		// The listed fields are the stored ones.
		var page apitype.Page[apitype.Delivery]
		jsonBody(t, resp, http.StatusOK, &page)
		byID := map[string]seedRow{}
		for _, r := range rows {
			byID[r.id] = r
		}
		for _, it := range page.Data {
			r := byID[it.ID]
			require.Equal(t, r.eventID, it.EventID)
			require.Equal(t, r.webhookID, it.WebhookID)
			require.Equal(t, r.accountID, it.AccountID)
			require.Equal(t, r.eventType, it.EventType)
			require.Equal(t, r.state, it.State)
			require.Equal(t, 1, it.Generation)
			require.True(t, r.createdAt.Equal(it.CreatedAt))
		}
	})

	t.Run("DefaultLimit", func(t *testing.T) {
		t.Parallel()
		var page apitype.Page[apitype.Delivery]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries?account_id=acct_list_a"}), http.StatusOK, &page)
		require.Len(t, page.Data, 100)
		require.NotEmpty(t, page.NextCursor)

		// The last page says so with a null cursor.
		all := expectDeliveries(rows, func(r seedRow) bool { return r.accountID == "acct_list_a" })
		// (Into a new page: null leaves a string as it was.)
		var last apitype.Page[apitype.Delivery]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries?account_id=acct_list_a&cursor=" + url.QueryEscape(page.NextCursor)}), http.StatusOK, &last)
		require.Equal(t, all[100:], ids(last.Data))
		require.Empty(t, last.NextCursor)
	})

	// Deliveries created while a client pages through a listing appear
	// before its cursor: nothing is skipped or listed twice.
	t.Run("InsertWhilePaging", func(t *testing.T) {
		t.Parallel()
		hookC1 := b.createWebhook(t, "acct_list_c", rcv.URL+"/c1")
		hookC2 := b.createWebhook(t, "acct_list_c", rcv.URL+"/c2")
		var cRows []seedRow
		for i := 0; i < 25; i++ {
			eventID := ident.New(ident.Event)
			for _, h := range []string{hookC1.ID, hookC2.ID} {
				cRows = append(cRows, seedRow{
					id: ident.New(ident.Delivery), eventID: eventID, webhookID: h, accountID: "acct_list_c",
					eventType: "order.created", state: store.StateSucceeded, createdAt: time.Now().Add(-time.Hour).Add(time.Duration(i) * time.Second).Truncate(time.Microsecond),
				})
			}
		}
		seedDeliveries(t, b, cRows)
		want := expectDeliveries(cRows, func(seedRow) bool { return true })

		inserted := 0
		got := b.listAllDeliveries(t, url.Values{"account_id": {"acct_list_c"}}, 6, "", func(int) {
			// Through the real route: two new deliveries per event.
			resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_list_c","type":"order.created","data":{"n":1}}`})
			require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
			inserted += 2
		})
		require.Equal(t, want, ids(got))
		require.Greater(t, inserted, 10)

		// A listing started now sees the new ones first.
		now := b.listAllDeliveries(t, url.Values{"account_id": {"acct_list_c"}}, 1000, "", nil)
		require.Len(t, now, len(want)+inserted)
		require.Equal(t, want, ids(now[inserted:]))
	})

	t.Run("CursorKeepsPositionAcrossFilters", func(t *testing.T) {
		t.Parallel()
		// A cursor is a position (created_at, id), not a page number.
		all := expectDeliveries(rows, func(r seedRow) bool { return r.accountID == "acct_list_a" })
		var page apitype.Page[apitype.Delivery]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries?limit=10&account_id=acct_list_a"}), http.StatusOK, &page)
		cursor, err := base64.RawURLEncoding.DecodeString(page.NextCursor)
		require.NoError(t, err)
		require.True(t, strings.HasSuffix(string(cursor), "."+all[9]), "cursor %q", cursor)
	})
}

func TestListDeliveriesBadInput(t *testing.T) {
	t.Parallel()

	b := startServer(t, true)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook := b.createWebhook(t, "acct_bad", rcv.URL+"/x")
	deleted := b.createWebhook(t, "acct_bad", rcv.URL+"/deleted")
	require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + deleted.ID}).status)

	// One delivery in each state, to replay.
	rows := []seedRow{}
	byState := map[string]string{}
	for i, state := range []string{store.StatePending, store.StateSucceeded, store.StateDead, store.StateCancelled} {
		row := seedRow{id: ident.New(ident.Delivery), eventID: ident.New(ident.Event), webhookID: hook.ID, accountID: "acct_bad",
			eventType: "order.created", state: state, createdAt: time.Now().Add(-time.Duration(i+1) * time.Minute).Truncate(time.Microsecond)}
		rows = append(rows, row)
		byState[state] = row.id
	}
	deadOfDeleted := seedRow{id: ident.New(ident.Delivery), eventID: ident.New(ident.Event), webhookID: deleted.ID, accountID: "acct_bad",
		eventType: "order.created", state: store.StateDead, createdAt: time.Now().Add(-time.Hour).Truncate(time.Microsecond)}
	rows = append(rows, deadOfDeleted)
	seedDeliveries(t, b, rows)

	accountKey := b.createKey(t, "account", "acct_bad")
	eventsKey := b.createKey(t, "events:write", "")
	list := func(query string) request { return request{method: http.MethodGet, path: "/v1/deliveries?" + query} }
	bulk := func(body string) request {
		return request{method: http.MethodPost, path: "/v1/deliveries/replay", body: body}
	}
	replay := func(id string) request {
		return request{method: http.MethodPost, path: "/v1/deliveries/" + id + "/replay"}
	}
	cursor := func(s string) string { return url.QueryEscape(base64.RawURLEncoding.EncodeToString([]byte(s))) }
	const acct = "account_id=acct_bad&"

	cases := []badCase{
		{name: "StateUnknown", req: list(acct + "state=bogus"), status: 422, code: "invalid_state", field: "state"},
		{name: "StateUppercase", req: list(acct + "state=DEAD"), status: 422, code: "invalid_state", field: "state"},
		{name: "StateEmpty", req: list(acct + "state="), status: 422, code: "invalid_state", field: "state"},
		{name: "AccountIDSpace", req: list("account_id=acct%20bad"), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "AccountID65", req: list("account_id=" + strings.Repeat("a", 65)), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "WebhookIDMalformed", req: list("webhook_id=wh_nope"), status: 422, code: "invalid_id", field: "webhook_id"},
		{name: "WebhookIDIsDeliveryID", req: list("webhook_id=" + byState[store.StateDead]), status: 422, code: "invalid_id", field: "webhook_id"},
		{name: "WebhookIDUppercase", req: list("webhook_id=" + strings.ToUpper(hook.ID)), status: 422, code: "invalid_id", field: "webhook_id"},
		{name: "EventIDMalformed", req: list(acct + "event_id=evt_123"), status: 422, code: "invalid_id", field: "event_id"},
		{name: "EventTypeBad", req: list(acct + "event_type=Order-Created"), status: 422, code: "invalid_event_type", field: "event_type"},
		{name: "CreatedAfterWord", req: list(acct + "created_after=yesterday"), status: 422, code: "invalid_time", field: "created_after"},
		{name: "CreatedAfterDateOnly", req: list(acct + "created_after=2026-01-02"), status: 422, code: "invalid_time", field: "created_after"},
		{name: "CreatedBeforeMonth13", req: list(acct + "created_before=2026-13-01T00:00:00Z"), status: 422, code: "invalid_time", field: "created_before"},
		{name: "CreatedBeforeUnix", req: list(acct + "created_before=1767225600"), status: 422, code: "invalid_time", field: "created_before"},
		{name: "RangeReversed", req: list(acct + "created_after=2026-02-01T00:00:00Z&created_before=2026-01-01T00:00:00Z"), status: 422, code: "invalid_range", field: "created_before"},
		{name: "RangeEmpty", req: list(acct + "created_after=2026-02-01T00:00:00Z&created_before=2026-02-01T00:00:00Z"), status: 422, code: "invalid_range", field: "created_before"},
		{name: "CursorGarbage", req: list(acct + "cursor=%21%21%21"), status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "CursorOfAnotherList", req: list(acct + "cursor=" + cursor(hook.ID)), status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "CursorBadTime", req: list(acct + "cursor=" + cursor("x."+byState[store.StateDead])), status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "CursorBadID", req: list(acct + "cursor=" + cursor("1767225600000000.dlv_1")), status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "CursorEmpty", req: list(acct + "cursor="), status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "CursorYear300000", req: list(acct + "cursor=" + cursor("9000000000000000000."+byState[store.StateDead])), status: 400, code: "invalid_cursor", field: "cursor"},
		{name: "Limit0", req: list(acct + "limit=0"), status: 422, code: "invalid_limit", field: "limit"},
		{name: "Limit5000", req: list(acct + "limit=5000"), status: 422, code: "invalid_limit", field: "limit"},
		{name: "Limit1001", req: list(acct + "limit=1001"), status: 422, code: "invalid_limit", field: "limit"},
		{name: "LimitNegative", req: list(acct + "limit=-1"), status: 422, code: "invalid_limit", field: "limit"},
		{name: "LimitWord", req: list(acct + "limit=x"), status: 400, code: "invalid_type", field: "limit"},
		{name: "LimitFraction", req: list(acct + "limit=1.5"), status: 400, code: "invalid_type", field: "limit"},
		{name: "UnknownParameter", req: list(acct + "status=dead"), status: 400, code: "unknown_parameter", field: "status"},
		{name: "RepeatedParameter", req: list(acct + "state=dead&state=pending"), status: 400, code: "repeated_parameter", field: "state"},
		{name: "NoAccountNorWebhook", req: list("event_type=order.created"), status: 422, code: "missing_filter", field: "account_id"},
		{name: "PendingEveryAccount", req: list("state=pending"), status: 422, code: "missing_filter", field: "account_id"},
		{name: "AccountKeyOtherAccount", req: request{method: http.MethodGet, path: "/v1/deliveries?account_id=acct_other", auth: bearer(accountKey.Key)}, status: 403, code: "account_not_allowed", field: "account_id"},
		{name: "EventsKeyLists", req: request{method: http.MethodGet, path: "/v1/deliveries?" + acct, auth: bearer(eventsKey.Key)}, status: 403, code: "insufficient_scope", field: "Authorization"},
		{name: "ListNoKey", req: request{method: http.MethodGet, path: "/v1/deliveries?" + acct, auth: noAuth}, status: 401, code: "missing_api_key", field: "Authorization"},

		// Bulk replay filters.
		{name: "BulkNoFilter", req: bulk(`{}`), status: 422, code: "missing_filter", field: "account_id"},
		{name: "BulkStatePending", req: bulk(`{"account_id":"acct_bad","state":"pending"}`), status: 422, code: "invalid_state", field: "state"},
		{name: "BulkStateCancelled", req: bulk(`{"account_id":"acct_bad","state":"cancelled"}`), status: 422, code: "invalid_state", field: "state"},
		{name: "BulkBadTime", req: bulk(`{"account_id":"acct_bad","created_after":"last week"}`), status: 422, code: "invalid_time", field: "created_after"},
		{name: "BulkRangeReversed", req: bulk(`{"account_id":"acct_bad","created_after":"2026-02-01T00:00:00Z","created_before":"2026-01-01T00:00:00Z"}`), status: 422, code: "invalid_range", field: "created_before"},
		{name: "BulkWebhookMalformed", req: bulk(`{"webhook_id":"wh_x"}`), status: 422, code: "invalid_id", field: "webhook_id"},
		{name: "BulkWebhookUnknown", req: bulk(`{"webhook_id":"` + ident.New(ident.Webhook) + `"}`), status: 404, code: "not_found", field: "webhook_id"},
		{name: "BulkWebhookOfAnotherAccount", req: bulk(`{"account_id":"acct_other","webhook_id":"` + hook.ID + `"}`), status: 404, code: "not_found", field: "webhook_id"},
		{name: "BulkWebhookDeleted", req: bulk(`{"webhook_id":"` + deleted.ID + `"}`), status: 409, code: "webhook_deleted", field: "webhook_id"},
		{name: "BulkUnknownField", req: bulk(`{"account_id":"acct_bad","event_type":"x"}`), status: 400, code: "unknown_field", field: "event_type"},
		{name: "BulkAccountNumber", req: bulk(`{"account_id":5}`), status: 400, code: "invalid_type", field: "account_id"},
		{name: "BulkTimeNumber", req: bulk(`{"account_id":"acct_bad","created_after":1767225600}`), status: 400, code: "invalid_type", field: "created_after"},
		{name: "BulkInvalidJSON", req: bulk(`{"account_id":`), status: 400, code: "invalid_json"},
		{name: "BulkAccountKeyOtherAccount", req: request{method: http.MethodPost, path: "/v1/deliveries/replay", body: `{"account_id":"acct_other"}`, auth: bearer(accountKey.Key)}, status: 403, code: "account_not_allowed", field: "account_id"},

		// Single replays.
		{name: "ReplayMalformedID", req: replay("dlv_nope"), status: 404, code: "not_found", field: "id"},
		{name: "ReplayUnknown", req: replay(ident.New(ident.Delivery)), status: 404, code: "not_found", field: "id"},
		{name: "ReplayPending", req: replay(byState[store.StatePending]), status: 409, code: "delivery_pending"},
		{name: "ReplayCancelled", req: replay(byState[store.StateCancelled]), status: 409, code: "delivery_cancelled"},
		{name: "ReplayWebhookDeleted", req: replay(deadOfDeleted.id), status: 409, code: "webhook_deleted"},
		{name: "ReplayOtherAccount", req: request{method: http.MethodPost, path: "/v1/deliveries/" + byState[store.StateDead] + "/replay", auth: bearer(b.createKey(t, "account", "acct_other").Key)}, status: 404, code: "not_found", field: "id"},
		{name: "ReplayEventsKey", req: request{method: http.MethodPost, path: "/v1/deliveries/" + byState[store.StateDead] + "/replay", auth: bearer(eventsKey.Key)}, status: 403, code: "insufficient_scope", field: "Authorization"},
		{name: "ReplayBatchMalformedID", req: request{method: http.MethodGet, path: "/v1/replays/rpl_1"}, status: 404, code: "not_found", field: "id"},
		{name: "ReplayBatchUnknown", req: request{method: http.MethodGet, path: "/v1/replays/" + ident.New(engine.ReplayBatchPrefix)}, status: 404, code: "not_found", field: "id"},
	}
	require.GreaterOrEqual(t, len(cases), 50)

	// In turn: each checks that nothing changed, which a concurrent case
	// could not tell apart from its own doing.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := replayRows(t, b)
			requireError(t, b.do(t, tc.req), tc.status, tc.code, tc.field)
			require.Equal(t, before, replayRows(t, b), "a refused request changed something")
		})
	}
}

// replayState is everything a replay can change: the deliveries (state,
// generation, job), replays, bulk replays and their items, and River's
// jobs but the periodic ones (the reconciler's and retention's), which
// River's leader inserts on its own schedule, a test's request or not.
type replayState struct {
	rowCounts
	Deliveries                  string
	Replays, Batches, BatchRows int
	Jobs                        int
}

func replayRows(t *testing.T, b *testBundle) replayState {
	t.Helper()
	s := replayState{rowCounts: countRows(t, b.pool)}
	require.NoError(t, b.pool.QueryRow(context.Background(), `
SELECT coalesce(string_agg(id || ':' || state || ':' || generation || ':' || coalesce(job_id::text, '-'), ',' ORDER BY id), ''),
       (SELECT count(*) FROM delivery_replays),
       (SELECT count(*) FROM replay_batches),
       (SELECT count(*) FROM replay_batch_items),
       (SELECT count(*) FROM river_job WHERE kind NOT IN ('webhookd.reconcile', 'webhookd.retention'))
FROM deliveries`).Scan(&s.Deliveries, &s.Replays, &s.Batches, &s.BatchRows, &s.Jobs))
	return s
}

// A filter that matches more than engine.ReplayBatchMax deliveries is
// refused with a 422, and nothing is kept.
func TestBulkReplayTooLarge(t *testing.T) {
	t.Parallel()

	b := startServer(t, true)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook := b.createWebhook(t, "acct_huge", rcv.URL+"/x")

	// 100,001 dead deliveries of one event, a millisecond apart, in one
	// statement.
	ctx := context.Background()
	eventID := ident.New(ident.Event)
	_, err := b.pool.Exec(ctx, `INSERT INTO events (id, account_id, type, body, occurred_at) VALUES ($1, 'acct_huge', 'order.created', '{}', now())`, eventID)
	require.NoError(t, err)
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	_, err = b.pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, gen_attempts, created_at, finished_at)
SELECT 'dlv_' || lpad(to_hex(g), 32, '0'), $1, $2, 'acct_huge', 'order.created', 'dead', 10, 10, $4::timestamptz - g * interval '1 ms', now()
FROM generate_series(0, $3::int - 1) AS g`, pgx.QueryExecModeExec, eventID, hook.ID, engine.ReplayBatchMax+1, last)
	require.NoError(t, err)

	before := replayRows(t, b)
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay", body: `{"webhook_id":"` + hook.ID + `"}`}),
		http.StatusUnprocessableEntity, "too_many_deliveries", "")
	require.Equal(t, before, replayRows(t, b))

	// Narrowed, it is accepted.
	from := last.Add(-99 * time.Millisecond)
	var batch replayBatchView
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay", body: `{"webhook_id":"` + hook.ID + `","created_after":"` + from.Format(time.RFC3339Nano) + `"}`}),
		http.StatusAccepted, &batch)
	require.Equal(t, 100, batch.Total)
	b.waitBatchDone(t, batch.ID)
}
