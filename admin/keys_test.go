package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apikey"
	"github.com/mono/webhookd/ident"
)

// keyListed is one key of GET /v1/keys: no key, no hash.
type keyListed struct {
	ID          string     `json:"id"`
	Prefix      string     `json:"prefix"`
	Scope       string     `json:"scope"`
	AccountID   *string    `json:"account_id"`
	Description string     `json:"description"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
}

// keyCreated is the 201 answer of POST /v1/keys: the same and the key.
type keyCreated struct {
	Key string `json:"key"`
	keyListed
}

type keyPage struct {
	Data       []keyListed `json:"data"`
	NextCursor *string     `json:"next_cursor"`
}

// createKey makes a key through the API with the bootstrap admin key and
// returns it.
func (b *testBundle) createKey(t *testing.T, scope, accountID string) *keyCreated {
	t.Helper()
	req := map[string]string{"scope": scope}
	if accountID != "" {
		req["account_id"] = accountID
	}
	body, err := json.Marshal(req)
	require.NoError(t, err)
	var out keyCreated
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/keys", body: string(body)}), http.StatusCreated, &out)
	return &out
}

func bearer(key string) string { return "Bearer " + key }

// countTable counts the rows of one table.
func countTable(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// cursorOf is the cursor a list answers to continue after id.
func cursorOf(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func TestKeys(t *testing.T) {
	t.Parallel()

	// One server; the subtests that count rows run in turn, the others use
	// accounts of their own.
	bundle := startServer(t, false)
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return bundle
	}

	t.Run("Lifecycle", func(t *testing.T) {
		b := setup(t)

		before := time.Now().Add(-time.Second)
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/keys", body: `{"scope":"account","account_id":"acct_keys_life","description":"dashboard"}`})
		var created keyCreated
		jsonBody(t, resp, http.StatusCreated, &created)
		require.True(t, ident.Valid(ident.Key, created.ID), created.ID)
		require.True(t, apikey.LooksLikeKey(created.Key), created.Key)
		require.Equal(t, created.Key[:apikey.DisplayLen], created.Prefix)
		require.Equal(t, "account", created.Scope)
		require.Equal(t, "acct_keys_life", *created.AccountID)
		require.Equal(t, "dashboard", created.Description)
		require.WithinRange(t, created.CreatedAt, before, time.Now().Add(time.Second))
		require.Nil(t, created.LastUsedAt)
		require.Nil(t, created.RevokedAt)

		// Only the SHA-256 is stored.
		var hash []byte
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT hash FROM api_keys WHERE id = $1", created.ID).Scan(&hash))
		sum := sha256.Sum256([]byte(created.Key))
		require.Equal(t, sum[:], hash)

		// The key works, for its account, and its use is recorded.
		hook := b.createWebhook(t, "acct_keys_life", "https://example.com/keys-life")
		var list webhookPage
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks", auth: bearer(created.Key)}), http.StatusOK, &list)
		require.Len(t, list.Data, 1)
		require.Equal(t, hook.ID, list.Data[0].ID)

		listed := b.findKey(t, created.ID)
		require.NotNil(t, listed.LastUsedAt)
		require.WithinRange(t, *listed.LastUsedAt, before, time.Now().Add(time.Second))
		require.Nil(t, listed.RevokedAt)

		// Revoked: 204, then the key gets 401 and a second revoke 404.
		resp = b.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + created.ID})
		require.Equal(t, http.StatusNoContent, resp.status, "body: %s", resp.body)
		require.Empty(t, resp.body)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks", auth: bearer(created.Key)}), http.StatusUnauthorized, "invalid_api_key", "Authorization")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID, auth: bearer(created.Key)}), http.StatusUnauthorized, "invalid_api_key", "Authorization")
		requireError(t, b.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + created.ID}), http.StatusNotFound, "not_found", "id")

		listed = b.findKey(t, created.ID)
		require.NotNil(t, listed.RevokedAt)
	})

	t.Run("ListNeverShowsKeyOrHash", func(t *testing.T) {
		b := setup(t)

		created := b.createKey(t, "events:write", "")
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/keys?limit=1000"})
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		require.NotContains(t, string(resp.body), created.Key)
		require.NotContains(t, string(resp.body), created.Key[apikey.DisplayLen:])
		var raw struct {
			Data []map[string]any `json:"data"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &raw))
		require.NotEmpty(t, raw.Data)
		for _, k := range raw.Data {
			require.NotContains(t, k, "key")
			require.NotContains(t, k, "hash")
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		b := setup(t)

		// 12 keys of one account, listed 5 at a time, newest first; keys
		// created while paging appear before the cursor and shift nothing.
		var want []string
		for range 12 {
			want = append(want, b.createKey(t, "account", "acct_keys_page").ID)
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10)
			path := "/v1/keys?account_id=acct_keys_page&limit=5"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			var page keyPage
			jsonBody(t, b.do(t, request{method: http.MethodGet, path: path}), http.StatusOK, &page)
			require.LessOrEqual(t, len(page.Data), 5)
			for _, k := range page.Data {
				got = append(got, k.ID)
				require.Equal(t, "acct_keys_page", *k.AccountID)
			}
			if pages == 0 {
				b.createKey(t, "account", "acct_keys_page")
				b.createKey(t, "account", "acct_keys_page")
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		require.Equal(t, reversed(want), got)

		// Another account's filter sees none of them.
		var other keyPage
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/keys?account_id=acct_keys_none"}), http.StatusOK, &other)
		require.Empty(t, other.Data)
		require.Nil(t, other.NextCursor)
	})

	t.Run("Scopes", func(t *testing.T) {
		b := setup(t)

		account := b.createKey(t, "account", "acct_scope_a")
		events := b.createKey(t, "events:write", "")
		boundEvents := b.createKey(t, "events:write", "acct_scope_a")
		admin := b.createKey(t, "admin", "")
		other := b.createWebhook(t, "acct_scope_b", "https://example.com/scope-b")
		mine := b.createWebhook(t, "acct_scope_a", "https://example.com/scope-a")

		// Key management is admin only; a created admin key may use it.
		for _, k := range []*keyCreated{account, events, boundEvents} {
			requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/keys", auth: bearer(k.Key), body: `{"scope":"admin"}`}), http.StatusForbidden, "insufficient_scope", "Authorization")
			requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/keys", auth: bearer(k.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")
			requireError(t, b.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + admin.ID, auth: bearer(k.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")
		}
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/keys", auth: bearer(admin.Key), body: `{"scope":"events:write"}`})
		require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)

		// An account key sees its account only: another's webhook is 404.
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + other.ID, auth: bearer(account.Key)}), http.StatusNotFound, "not_found", "id")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + other.ID + "/secret", auth: bearer(account.Key)}), http.StatusNotFound, "not_found", "id")
		requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + other.ID, auth: bearer(account.Key), body: `{"description":"mine now"}`}), http.StatusNotFound, "not_found", "id")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_scope_b", auth: bearer(account.Key)}), http.StatusForbidden, "account_not_allowed", "account_id")
		var got webhookView
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + mine.ID, auth: bearer(account.Key)}), http.StatusOK, &got)
		require.Equal(t, mine.ID, got.ID)

		// events:write enqueues and does nothing else.
		for _, k := range []*keyCreated{events, boundEvents} {
			requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_scope_a", auth: bearer(k.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")
			requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + mine.ID, auth: bearer(k.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")
			requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", auth: bearer(k.Key), body: `{"account_id":"acct_scope_a","url":"https://example.com/x"}`}), http.StatusForbidden, "insufficient_scope", "Authorization")
			requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/events?account_id=acct_scope_a&idempotency_key=x", auth: bearer(k.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")
		}
		resp = b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: bearer(events.Key), body: `{"account_id":"acct_scope_c","type":"a","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
		resp = b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: bearer(boundEvents.Key), body: `{"type":"a","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: bearer(boundEvents.Key), body: `{"account_id":"acct_scope_c","type":"a","data":{}}`}), http.StatusForbidden, "account_not_allowed", "account_id")
	})

	t.Run("BadInput", func(t *testing.T) {
		b := setup(t)

		live := b.createKey(t, "events:write", "")
		key := func(body string) request { return request{method: http.MethodPost, path: "/v1/keys", body: body} }
		cases := []struct {
			name   string
			req    request
			status int
			code   string
			field  string
		}{
			{"InvalidJSON", key(`{"scope":`), 400, "invalid_json", ""},
			{"Array", key(`[{"scope":"admin"}]`), 400, "invalid_json", ""},
			{"UnknownField", key(`{"scope":"admin","key":"whk_mine"}`), 400, "unknown_field", "key"},
			{"ScopeNumber", key(`{"scope":1}`), 400, "invalid_type", "scope"},
			{"AccountIDArray", key(`{"scope":"account","account_id":["a"]}`), 400, "invalid_type", "account_id"},
			{"BodyTooLarge", key(`{"scope":"admin","description":"` + strings.Repeat("a", 70<<10) + `"}`), 413, "body_too_large", ""},
			{"ScopeMissing", key(`{}`), 422, "missing_field", "scope"},
			{"ScopeUnknown", key(`{"scope":"root"}`), 422, "invalid_scope", "scope"},
			{"ScopeUppercase", key(`{"scope":"ADMIN"}`), 422, "invalid_scope", "scope"},
			{"AccountWithoutAccountID", key(`{"scope":"account"}`), 422, "missing_field", "account_id"},
			{"AdminWithAccountID", key(`{"scope":"admin","account_id":"acct_1"}`), 422, "account_id_not_allowed", "account_id"},
			{"AccountIDInvalid", key(`{"scope":"account","account_id":"acct 1"}`), 422, "invalid_account_id", "account_id"},
			{"EventsAccountIDTooLong", key(`{"scope":"events:write","account_id":"` + strings.Repeat("a", 65) + `"}`), 422, "invalid_account_id", "account_id"},
			{"DescriptionTooLong", key(`{"scope":"admin","description":"` + strings.Repeat("é", 501) + `"}`), 422, "too_long", "description"},
			{"RevokeMalformedID", request{method: http.MethodDelete, path: "/v1/keys/key_nope"}, 404, "not_found", "id"},
			{"RevokeWebhookID", request{method: http.MethodDelete, path: "/v1/keys/" + ident.New(ident.Webhook)}, 404, "not_found", "id"},
			{"RevokeUnknownID", request{method: http.MethodDelete, path: "/v1/keys/" + ident.New(ident.Key)}, 404, "not_found", "id"},
			{"ListLimitZero", request{method: http.MethodGet, path: "/v1/keys?limit=0"}, 422, "invalid_limit", "limit"},
			{"ListLimit5000", request{method: http.MethodGet, path: "/v1/keys?limit=5000"}, 422, "invalid_limit", "limit"},
			{"ListLimitText", request{method: http.MethodGet, path: "/v1/keys?limit=ten"}, 400, "invalid_type", "limit"},
			{"ListBadCursor", request{method: http.MethodGet, path: "/v1/keys?cursor=not-a-cursor"}, 400, "invalid_cursor", "cursor"},
			{"ListWebhookCursor", request{method: http.MethodGet, path: "/v1/keys?cursor=" + cursorOf(ident.New(ident.Webhook))}, 400, "invalid_cursor", "cursor"},
			{"ListBadAccount", request{method: http.MethodGet, path: "/v1/keys?account_id=a%20b"}, 422, "invalid_account_id", "account_id"},
			{"ListUnknownParameter", request{method: http.MethodGet, path: "/v1/keys?scope=admin"}, 400, "unknown_parameter", "scope"},
			{"NoKey", request{method: http.MethodPost, path: "/v1/keys", body: `{"scope":"admin"}`, auth: noAuth}, 401, "missing_api_key", "Authorization"},
			{"RevokeNoKey", request{method: http.MethodDelete, path: "/v1/keys/" + live.ID, auth: noAuth}, 401, "missing_api_key", "Authorization"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				keys, revoked := countTable(t, b.pool, "api_keys"), countTable(t, b.pool, "api_keys WHERE revoked_at IS NOT NULL")
				requireError(t, b.do(t, tc.req), tc.status, tc.code, tc.field)
				require.Equal(t, keys, countTable(t, b.pool, "api_keys"), "a refused request stored a key")
				require.Equal(t, revoked, countTable(t, b.pool, "api_keys WHERE revoked_at IS NOT NULL"), "a refused request revoked a key")
			})
		}
	})
}

// findKey returns key id as GET /v1/keys lists it.
func (b *testBundle) findKey(t *testing.T, id string) *keyListed {
	t.Helper()
	var page keyPage
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/keys?limit=1000"}), http.StatusOK, &page)
	for _, k := range page.Data {
		if k.ID == id {
			return &k
		}
	}
	t.Fatalf("key %s not listed", id)
	return nil
}

func reversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}
