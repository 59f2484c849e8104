package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
)

// listAllWebhooks pages through GET path (which has a query string) until
// next_cursor is null, calling between after each page.
func (b *testBundle) listAllWebhooks(t *testing.T, path, auth string, between func(page int)) []apitype.Webhook {
	t.Helper()
	var all []apitype.Webhook
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 100, "too many pages")
		p := path
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		var out apitype.Page[apitype.Webhook]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: p, auth: auth}), http.StatusOK, &out)
		all = append(all, out.Data...)
		if between != nil {
			between(page)
		}
		if out.NextCursor == "" {
			return all
		}
		require.NotEmpty(t, out.Data)
		cursor = out.NextCursor
	}
}

func TestWebhookRoutes(t *testing.T) {
	t.Parallel()

	// One server; subtests that count rows run in turn, each subtest uses
	// accounts of its own. ListPagination's account has 27 webhooks, more
	// than the default limit.
	bundle := startServerWith(t, false, func(c *server.Config) { c.MaxWebhooksPerAccount = 30 })
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return bundle
	}

	t.Run("Readyz", func(t *testing.T) {
		b := setup(t)

		// The real server answers ready, without a key.
		resp := b.do(t, request{method: http.MethodGet, path: "/readyz", auth: noAuth})
		require.Equal(t, http.StatusOK, resp.status)
		require.JSONEq(t, `{"status":"ready"}`, string(resp.body))
	})

	t.Run("ListPagination", func(t *testing.T) {
		b := setup(t)

		var want []string
		for i := range 25 {
			want = append(want, b.createWebhook(t, "acct_list", fmt.Sprintf("https://example.com/list/%d", i)).ID)
		}
		// A deleted webhook and another account's are never listed.
		gone := b.createWebhook(t, "acct_list", "https://example.com/list/gone")
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + gone.ID}).status)
		b.createWebhook(t, "acct_list_other", "https://example.com/list/other")

		// Newest first, 10 at a time, with webhooks created between pages:
		// those are newer than the cursor, so nothing is skipped or repeated.
		var added []string
		got := b.listAllWebhooks(t, "/v1/webhooks?account_id=acct_list&limit=10", "", func(page int) {
			if page < 2 {
				added = append(added, b.createWebhook(t, "acct_list", fmt.Sprintf("https://example.com/list/new-%d", page)).ID)
			}
		})
		ids := make([]string, len(got))
		for i, h := range got {
			ids[i] = h.ID
			require.Equal(t, "acct_list", h.AccountID)
		}
		require.Equal(t, reversed(want), ids)

		// A fresh listing has the new ones first; the default limit is 100.
		var first apitype.Page[apitype.Webhook]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_list"}), http.StatusOK, &first)
		require.Len(t, first.Data, 27)
		require.Empty(t, first.NextCursor)
		require.Equal(t, []string{first.Data[0].ID, first.Data[1].ID}, reversed(added))

		// A page that ends exactly at the last row says so.
		var exact apitype.Page[apitype.Webhook]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_list&limit=27"}), http.StatusOK, &exact)
		require.Len(t, exact.Data, 27)
		require.Empty(t, exact.NextCursor)

		// An account without webhooks: an empty array, not null.
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_list_none"})
		require.Equal(t, http.StatusOK, resp.status)
		require.JSONEq(t, `{"data":[],"next_cursor":null}`, string(resp.body))
	})

	t.Run("ListBoundKey", func(t *testing.T) {
		b := setup(t)

		hook := b.createWebhook(t, "acct_list_bound", "https://example.com/bound")
		key := b.createKey(t, "account", "acct_list_bound")

		// The account defaults to the key's.
		got := b.listAllWebhooks(t, "/v1/webhooks?limit=1", bearer(key.Key), nil)
		require.Len(t, got, 1)
		require.Equal(t, hook.ID, got[0].ID)
		got = b.listAllWebhooks(t, "/v1/webhooks?account_id=acct_list_bound", bearer(key.Key), nil)
		require.Len(t, got, 1)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_list_elsewhere", auth: bearer(key.Key)}), http.StatusForbidden, "account_not_allowed", "account_id")
	})

	t.Run("CreateWithDescriptionAndGet", func(t *testing.T) {
		b := setup(t)

		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_get","url":"https://Example.com/get","description":"Payments <prod> & co"}`})
		var hook apitype.Webhook
		jsonBody(t, resp, http.StatusCreated, &hook)
		require.Equal(t, "Payments <prod> & co", hook.Description)

		resp = b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID})
		var raw map[string]any
		require.NoError(t, json.Unmarshal(resp.body, &raw))
		require.NotContains(t, raw, "secret")
		require.NotContains(t, string(resp.body), hook.Secret)
		var got apitype.Webhook
		jsonBody(t, resp, http.StatusOK, &got)
		require.Equal(t, apitype.Webhook{ID: hook.ID, AccountID: "acct_get", URL: "https://example.com/get", Description: hook.Description, HeaderNames: []string{}, EventTypes: []string{},
			SignatureScheme: "mono", OnGone: "retry", Ordering: "none", CreatedAt: hook.CreatedAt}, got)

		// A deleted webhook is gone for every route.
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + hook.ID}).status)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusNotFound, "not_found", "id")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret"}), http.StatusNotFound, "not_found", "id")
		requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":"x"}`}), http.StatusNotFound, "not_found", "id")
	})

	t.Run("RevealSecret", func(t *testing.T) {
		b := setup(t)

		hook := b.createWebhook(t, "acct_reveal", "https://example.com/reveal")
		key := b.createKey(t, "account", "acct_reveal")
		other := b.createKey(t, "account", "acct_reveal_other")

		for _, auth := range []string{"", bearer(key.Key)} {
			var out struct {
				Secret string `json:"secret"`
			}
			jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret", auth: auth}), http.StatusOK, &out)
			require.Equal(t, hook.Secret, out.Secret)
		}

		// Another account's key: 404 and nothing recorded.
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret", auth: bearer(other.Key)}), http.StatusNotFound, "not_found", "id")

		// Each reveal is recorded with the key that saw it (none for the
		// bootstrap key), never with the value.
		rows, err := b.pool.Query(context.Background(), "SELECT key_id, created_at, to_jsonb(r)::text FROM secret_reveals r WHERE webhook_id = $1 ORDER BY id", hook.ID)
		require.NoError(t, err)
		defer rows.Close()
		var keyIDs []*string
		for rows.Next() {
			var (
				keyID *string
				at    time.Time
				row   string
			)
			require.NoError(t, rows.Scan(&keyID, &at, &row))
			require.WithinDuration(t, time.Now(), at, time.Minute)
			require.NotContains(t, row, strings.TrimPrefix(hook.Secret, "whsec_"))
			keyIDs = append(keyIDs, keyID)
		}
		require.NoError(t, rows.Err())
		require.Equal(t, []*string{nil, &key.ID}, keyIDs)
	})

	t.Run("Patch", func(t *testing.T) {
		b := setup(t)

		hook := b.createWebhook(t, "acct_patch", "https://example.com/patch")
		var got apitype.Webhook
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":"Ledger sync"}`}), http.StatusOK, &got)
		require.Equal(t, "Ledger sync", got.Description)
		require.Equal(t, hook.URL, got.URL)

		// An empty patch (or a null field) changes nothing.
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{}`}), http.StatusOK, &got)
		require.Equal(t, "Ledger sync", got.Description)
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":null}`}), http.StatusOK, &got)
		require.Equal(t, "Ledger sync", got.Description)

		// An account key patches its own webhooks; the empty string clears.
		key := b.createKey(t, "account", "acct_patch")
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, auth: bearer(key.Key), body: `{"description":""}`}), http.StatusOK, &got)
		require.Empty(t, got.Description)
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &got)
		require.Empty(t, got.Description)
	})

	t.Run("BadInput", func(t *testing.T) {
		b := setup(t)

		hook := b.createWebhook(t, "acct_webhook_bad", "https://example.com/bad")
		eventsKey := b.createKey(t, "events:write", "")
		otherKey := b.createKey(t, "account", "acct_webhook_bad_other")
		patch := func(body string) request {
			return request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: body}
		}
		list := func(query string) request {
			return request{method: http.MethodGet, path: "/v1/webhooks?" + query}
		}
		cases := []struct {
			name   string
			req    request
			status int
			code   string
			field  string
		}{
			{"PatchInvalidJSON", patch(`{"description":`), 400, "invalid_json", ""},
			{"PatchEmptyBody", patch(``), 400, "invalid_json", ""},
			{"PatchArray", patch(`["x"]`), 400, "invalid_json", ""},
			{"PatchUnknownField", patch(`{"url":"https://example.com/other"}`), 400, "unknown_field", "url"},
			{"PatchSecretField", patch(`{"description":"x","secret":"whsec_mine"}`), 400, "unknown_field", "secret"},
			{"PatchDescriptionNumber", patch(`{"description":5}`), 400, "invalid_type", "description"},
			{"PatchDescriptionTooLong", patch(`{"description":"` + strings.Repeat("a", 501) + `"}`), 422, "too_long", "description"},
			// Webhook bodies may be 256 KiB (a certificate chain, key and CA bundle).
			{"PatchBodyTooLarge", patch(`{"description":"` + strings.Repeat("a", 260<<10) + `"}`), 413, "body_too_large", ""},
			{"PatchTextPlain", request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":"x"}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, "unsupported_media_type", ""},
			{"PatchMalformedID", request{method: http.MethodPatch, path: "/v1/webhooks/wh_1", body: `{"description":"x"}`}, 404, "not_found", "id"},
			{"PatchUnknownID", request{method: http.MethodPatch, path: "/v1/webhooks/" + ident.New(ident.Webhook), body: `{"description":"x"}`}, 404, "not_found", "id"},
			{"PatchOtherAccount", request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":"x"}`, auth: bearer(otherKey.Key)}, 404, "not_found", "id"},
			{"PatchEventsKey", request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":"x"}`, auth: bearer(eventsKey.Key)}, 403, "insufficient_scope", "Authorization"},
			{"PatchNoKey", request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"description":"x"}`, auth: noAuth}, 401, "missing_api_key", "Authorization"},
			{"GetMalformedID", request{method: http.MethodGet, path: "/v1/webhooks/" + strings.ToUpper(hook.ID)}, 404, "not_found", "id"},
			{"GetEventID", request{method: http.MethodGet, path: "/v1/webhooks/" + ident.New(ident.Event)}, 404, "not_found", "id"},
			{"GetOtherAccount", request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID, auth: bearer(otherKey.Key)}, 404, "not_found", "id"},
			{"SecretUnknownID", request{method: http.MethodGet, path: "/v1/webhooks/" + ident.New(ident.Webhook) + "/secret"}, 404, "not_found", "id"},
			{"SecretOtherAccount", request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret", auth: bearer(otherKey.Key)}, 404, "not_found", "id"},
			{"SecretEventsKey", request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret", auth: bearer(eventsKey.Key)}, 403, "insufficient_scope", "Authorization"},
			{"SecretNoKey", request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret", auth: noAuth}, 401, "missing_api_key", "Authorization"},
			{"ListNoAccount", list(""), 422, "missing_field", "account_id"},
			{"ListEmptyAccount", list("account_id="), 422, "missing_field", "account_id"},
			{"ListBadAccount", list("account_id=acct%201"), 422, "invalid_account_id", "account_id"},
			{"ListLimitZero", list("account_id=acct_webhook_bad&limit=0"), 422, "invalid_limit", "limit"},
			{"ListLimitNegative", list("account_id=acct_webhook_bad&limit=-1"), 422, "invalid_limit", "limit"},
			{"ListLimit1001", list("account_id=acct_webhook_bad&limit=1001"), 422, "invalid_limit", "limit"},
			{"ListLimit5000", list("account_id=acct_webhook_bad&limit=5000"), 422, "invalid_limit", "limit"},
			{"ListLimitText", list("account_id=acct_webhook_bad&limit=all"), 400, "invalid_type", "limit"},
			{"ListLimitFloat", list("account_id=acct_webhook_bad&limit=1.5"), 400, "invalid_type", "limit"},
			{"ListQueryMalformed", list("account_id=acct_webhook_bad&cursor=%zz"), 400, "invalid_query", ""},
			{"ListCursorNotBase64", list("account_id=acct_webhook_bad&cursor=not*base64"), 400, "invalid_cursor", "cursor"},
			{"ListCursorRawID", list("account_id=acct_webhook_bad&cursor=" + hook.ID), 400, "invalid_cursor", "cursor"},
			{"ListCursorKeyID", list("account_id=acct_webhook_bad&cursor=" + cursorOf(ident.New(ident.Key))), 400, "invalid_cursor", "cursor"},
			{"ListCursorSQL", list("account_id=acct_webhook_bad&cursor=" + cursorOf("wh_' OR 1=1--")), 400, "invalid_cursor", "cursor"},
			{"ListUnknownParameter", list("account=acct_webhook_bad"), 400, "unknown_parameter", "account"},
			{"ListRepeatedParameter", list("account_id=acct_webhook_bad&account_id=acct_webhook_bad_other"), 400, "repeated_parameter", "account_id"},
			{"ListEventsKey", request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_webhook_bad", auth: bearer(eventsKey.Key)}, 403, "insufficient_scope", "Authorization"},
			{"ListOtherAccount", request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_webhook_bad", auth: bearer(otherKey.Key)}, 403, "account_not_allowed", "account_id"},
			{"ListWrongKey", request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_webhook_bad", auth: bearer(otherKey.Key + "x")}, 401, "invalid_api_key", "Authorization"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := countRows(t, b.pool)
				reveals := countTable(t, b.pool, "secret_reveals")
				requireError(t, b.do(t, tc.req), tc.status, tc.code, tc.field)
				require.Equal(t, before, countRows(t, b.pool), "a refused request stored something")
				require.Equal(t, reveals, countTable(t, b.pool, "secret_reveals"), "a refused request recorded a reveal")
			})
		}
		// The webhook is as it was.
		var got apitype.Webhook
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &got)
		require.Empty(t, got.Description)
	})
}

// A revealed secret is logged at info as revealed, by which key, but the log
// never holds the value.
func TestRevealSecretLog(t *testing.T) {
	t.Parallel()

	core, logs := observer.New(zap.InfoLevel)
	srv := httptest.NewServer(newAPI(t, testdb.New(t), zap.New(core)).Handler())
	t.Cleanup(srv.Close)
	b := &testBundle{baseURL: srv.URL, client: srv.Client()}

	hook := b.createWebhook(t, "acct_reveal_log", "https://example.com/reveal-log")
	var out struct {
		Secret string `json:"secret"`
	}
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/secret"}), http.StatusOK, &out)
	require.Equal(t, hook.Secret, out.Secret)

	revealed := logs.FilterMessage("webhook secret revealed").All()
	require.Len(t, revealed, 1)
	fields := revealed[0].ContextMap()
	require.Equal(t, hook.ID, fields["webhook_id"])
	require.Equal(t, "acct_reveal_log", fields["account_id"])
	require.Equal(t, "bootstrap", fields["key_id"])
	require.Equal(t, zap.InfoLevel, revealed[0].Level)
	for _, entry := range logs.All() {
		require.NotContains(t, entry.Message, out.Secret)
		require.NotContains(t, fmt.Sprint(entry.ContextMap()), strings.TrimPrefix(out.Secret, "whsec_"))
	}
}
