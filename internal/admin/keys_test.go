package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/server"
)

// createKey makes a key through the API with the bootstrap admin key and
// returns it.
func (b *testBundle) createKey(t *testing.T, scope, accountID string) *apitype.Key {
	t.Helper()
	req := map[string]string{"scope": scope}
	if accountID != "" {
		req["account_id"] = accountID
	}
	body, err := json.Marshal(req)
	require.NoError(t, err)
	var out apitype.Key
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
		var created apitype.Key
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
		require.Nil(t, created.ExpiresAt)
		require.Nil(t, created.ReplacedBy)

		// Only the SHA-256 is stored.
		var hash []byte
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT hash FROM api_keys WHERE id = $1", created.ID).Scan(&hash))
		sum := sha256.Sum256([]byte(created.Key))
		require.Equal(t, sum[:], hash)

		// The key works, for its account, and its use is recorded.
		hook := b.createWebhook(t, "acct_keys_life", "https://example.com/keys-life")
		var list apitype.Page[apitype.Webhook]
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
			var page apitype.Page[apitype.Key]
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
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		require.Equal(t, reversed(want), got)

		// Another account's filter sees none of them.
		var other apitype.Page[apitype.Key]
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/keys?account_id=acct_keys_none"}), http.StatusOK, &other)
		require.Empty(t, other.Data)
		require.Empty(t, other.NextCursor)
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
		for _, k := range []*apitype.Key{account, events, boundEvents} {
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
		var got apitype.Webhook
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + mine.ID, auth: bearer(account.Key)}), http.StatusOK, &got)
		require.Equal(t, mine.ID, got.ID)

		// events:write enqueues and does nothing else.
		for _, k := range []*apitype.Key{events, boundEvents} {
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
func (b *testBundle) findKey(t *testing.T, id string) *apitype.Key {
	t.Helper()
	var page apitype.Page[apitype.Key]
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

// rotationClock is a clock the test moves forward; it starts at the real
// time.
type rotationClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *rotationClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *rotationClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// rotateKey rotates key id through the API with the bootstrap admin key.
func (b *testBundle) rotateKey(t *testing.T, id, body string) *apitype.KeyRotated {
	t.Helper()
	var out apitype.KeyRotated
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + id + "/rotate", body: body}), http.StatusCreated, &out)
	return &out
}

// rotationWebhook makes a webhook for the rotation tests and returns its
// id. (Decoded loosely: these tests are about keys, not webhook fields.)
func rotationWebhook(t *testing.T, b *testBundle, account, url string) string {
	t.Helper()
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"` + account + `","url":"` + url + `"}`})
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	var out struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &out))
	return out.ID
}

// requireExpired asserts that key gets 401 because it expired.
func requireExpired(t *testing.T, b *testBundle, path, key string) {
	t.Helper()
	resp := b.do(t, request{method: http.MethodGet, path: path, auth: bearer(key)})
	requireError(t, resp, http.StatusUnauthorized, "invalid_api_key", "Authorization")
	require.Contains(t, string(resp.body), "expired")
	require.NotEmpty(t, resp.header.Get("WWW-Authenticate"))
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()

	// One server whose API clock the subtests move forward, in turn.
	clock := &rotationClock{}
	b := startFastServer(t, func(c *server.Config) { c.Now = clock.Now })
	status := func(path, key string) int {
		t.Helper()
		return b.do(t, request{method: http.MethodGet, path: path, auth: bearer(key)}).status
	}

	t.Run("Grace", func(t *testing.T) {
		const acct = "acct_rot_grace"
		hook := rotationWebhook(t, b, acct, "https://example.com/rot-grace")
		rotationWebhook(t, b, "acct_rot_other", "https://example.com/rot-other")
		old := b.createKey(t, "account", acct)
		webhooks := "/v1/webhooks?account_id=" + acct
		require.Equal(t, http.StatusOK, status(webhooks, old.Key))

		// No body: the default grace, one hour.
		before := clock.Now()
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + old.ID + "/rotate"})
		var rotated apitype.KeyRotated
		jsonBody(t, resp, http.StatusCreated, &rotated)
		after := clock.Now()
		require.True(t, ident.Valid(ident.Key, rotated.ID), rotated.ID)
		require.NotEqual(t, old.ID, rotated.ID)
		require.True(t, apikey.LooksLikeKey(rotated.Key.Key), rotated.Key.Key)
		require.NotEqual(t, old.Key, rotated.Key.Key)
		require.Equal(t, rotated.Key.Key[:apikey.DisplayLen], rotated.Prefix)
		require.Equal(t, "account", rotated.Scope)
		require.Equal(t, acct, *rotated.AccountID)
		require.Equal(t, old.Description, rotated.Description)
		require.WithinRange(t, rotated.CreatedAt, before.Add(-time.Millisecond), after)
		require.Nil(t, rotated.LastUsedAt)
		require.Nil(t, rotated.RevokedAt)
		require.Nil(t, rotated.ExpiresAt)
		require.Nil(t, rotated.ReplacedBy)
		require.Equal(t, old.ID, rotated.OldKeyID)
		require.WithinRange(t, rotated.OldKeyExpiresAt, before.Add(time.Hour-time.Millisecond), after.Add(time.Hour))

		// Only the new key's hash is stored; the old row says when it ends
		// and what replaced it.
		var (
			hash       []byte
			expiresAt  time.Time
			replacedBy string
		)
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT hash FROM api_keys WHERE id = $1", rotated.ID).Scan(&hash))
		sum := sha256.Sum256([]byte(rotated.Key.Key))
		require.Equal(t, sum[:], hash)
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT expires_at, replaced_by FROM api_keys WHERE id = $1", old.ID).Scan(&expiresAt, &replacedBy))
		require.True(t, rotated.OldKeyExpiresAt.Equal(expiresAt))
		require.Equal(t, rotated.ID, replacedBy)

		// The new key works at once, with the same scope and account: its
		// account's webhooks, another account's refused, no key management.
		resp = b.do(t, request{method: http.MethodGet, path: webhooks, auth: bearer(rotated.Key.Key)})
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		var list struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &list))
		require.Len(t, list.Data, 1)
		require.Equal(t, hook, list.Data[0].ID)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_rot_other", auth: bearer(rotated.Key.Key)}), http.StatusForbidden, "account_not_allowed", "account_id")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/keys", auth: bearer(rotated.Key.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")

		// GET /v1/keys shows the rotation.
		listedOld, listedNew := b.findKey(t, old.ID), b.findKey(t, rotated.ID)
		require.NotNil(t, listedOld.ExpiresAt)
		require.True(t, rotated.OldKeyExpiresAt.Equal(*listedOld.ExpiresAt))
		require.Equal(t, rotated.ID, *listedOld.ReplacedBy)
		require.Nil(t, listedOld.RevokedAt)
		require.Nil(t, listedNew.ExpiresAt)
		require.Nil(t, listedNew.ReplacedBy)
		require.NotNil(t, listedNew.LastUsedAt)

		// The old key works through the grace period...
		require.Equal(t, http.StatusOK, status(webhooks, old.Key))
		clock.Advance(59 * time.Minute)
		require.Equal(t, http.StatusOK, status(webhooks, old.Key))
		require.Equal(t, http.StatusOK, status("/v1/webhooks/"+hook, old.Key))

		// ...and is refused from its end on; the new key still works.
		clock.Advance(time.Minute + time.Second)
		requireExpired(t, b, webhooks, old.Key)
		requireExpired(t, b, "/v1/webhooks/"+hook, old.Key)
		require.Equal(t, http.StatusOK, status(webhooks, rotated.Key.Key))

		// It can't be rotated again (the new one can); nothing changes.
		keys := countTable(t, b.pool, "api_keys")
		resp = b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + old.ID + "/rotate", body: `{"grace":"1h"}`})
		requireError(t, resp, http.StatusConflict, "key_already_rotated", "id")
		require.Contains(t, string(resp.body), rotated.ID)
		require.Equal(t, keys, countTable(t, b.pool, "api_keys"))
		require.Equal(t, rotated.ID, *b.findKey(t, old.ID).ReplacedBy)

		// The new key rotates in turn, with whole days.
		before = clock.Now()
		again := b.rotateKey(t, rotated.ID, `{"grace":"2d"}`)
		require.Equal(t, rotated.ID, again.OldKeyID)
		require.Equal(t, acct, *again.AccountID)
		require.WithinRange(t, again.OldKeyExpiresAt, before.Add(48*time.Hour-time.Millisecond), clock.Now().Add(48*time.Hour))
		clock.Advance(47 * time.Hour)
		require.Equal(t, http.StatusOK, status(webhooks, rotated.Key.Key))
		clock.Advance(time.Hour + time.Second)
		requireExpired(t, b, webhooks, rotated.Key.Key)
		require.Equal(t, http.StatusOK, status(webhooks, again.Key.Key))

		// The bootstrap key never expires.
		require.Equal(t, http.StatusOK, status(webhooks, adminKey))
	})

	t.Run("ZeroGrace", func(t *testing.T) {
		old := b.createKey(t, "events:write", "")
		event := `{"account_id":"acct_rot_zero","type":"a","data":{}}`
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: bearer(old.Key), body: event})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)

		rotated := b.rotateKey(t, old.ID, `{"grace":"0"}`)
		require.Equal(t, "events:write", rotated.Scope)
		require.Nil(t, rotated.AccountID)

		resp = b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: bearer(old.Key), body: event})
		requireError(t, resp, http.StatusUnauthorized, "invalid_api_key", "Authorization")
		require.Contains(t, string(resp.body), "expired")
		resp = b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: bearer(rotated.Key.Key), body: event})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	})

	t.Run("AdminKey", func(t *testing.T) {
		// An admin key may rotate itself; its replacement is an admin key,
		// for the API and River UI.
		old := b.createKey(t, "admin", "")
		var rotated apitype.KeyRotated
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + old.ID + "/rotate", auth: bearer(old.Key), body: `{"grace":"10m"}`}), http.StatusCreated, &rotated)
		require.Equal(t, "admin", rotated.Scope)
		require.Nil(t, rotated.AccountID)
		require.Equal(t, http.StatusOK, status("/v1/keys", old.Key))
		require.Equal(t, http.StatusOK, status("/v1/keys", rotated.Key.Key))
		require.Equal(t, http.StatusOK, status("/riverui/", old.Key))

		clock.Advance(10 * time.Minute)
		requireExpired(t, b, "/v1/keys", old.Key)
		requireExpired(t, b, "/riverui/", old.Key)
		require.Equal(t, http.StatusOK, status("/v1/keys", rotated.Key.Key))
		require.Equal(t, http.StatusOK, status("/riverui/", rotated.Key.Key))
	})

	t.Run("Dashboard", func(t *testing.T) {
		// The dashboard signs in through admin.API.SignIn, which
		// authenticates as the API does: an expired key is refused there
		// too.
		enqueuer, err := engine.NewEnqueuer(b.srv.River(), nil)
		require.NoError(t, err)
		api, err := admin.New(b.pool, enqueuer, b.keys, &admin.Config{Policy: &outbound.Policy{AllowPrivate: true}, Now: clock.Now})
		require.NoError(t, err)
		old := b.createKey(t, "account", "acct_rot_dash")
		rotated := b.rotateKey(t, old.ID, `{"grace":"90s"}`)

		ctx := context.Background()
		in, err := api.SignIn(ctx, &admin.SignInRequest{Key: old.Key, TTL: time.Hour})
		require.NoError(t, err)
		require.Equal(t, old.ID, in.Principal.KeyID)
		clock.Advance(90 * time.Second)
		_, err = api.SignIn(ctx, &admin.SignInRequest{Key: old.Key, TTL: time.Hour})
		requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key")
		in, err = api.SignIn(ctx, &admin.SignInRequest{Key: rotated.Key.Key, TTL: time.Hour})
		require.NoError(t, err)
		require.Equal(t, rotated.ID, in.Principal.KeyID)
		require.Equal(t, "acct_rot_dash", in.Principal.AccountID)
	})

	t.Run("Conflicts", func(t *testing.T) {
		// Revoked: 409, nothing made.
		revoked := b.createKey(t, "account", "acct_rot_conflict")
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + revoked.ID}).status)
		keys := countTable(t, b.pool, "api_keys")
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + revoked.ID + "/rotate"}), http.StatusConflict, "key_revoked", "id")
		require.Equal(t, keys, countTable(t, b.pool, "api_keys"))

		// Expired without a replacement (set on the database): 409.
		expired := b.createKey(t, "account", "acct_rot_conflict")
		_, err := b.pool.Exec(context.Background(), "UPDATE api_keys SET expires_at = $2 WHERE id = $1", expired.ID, clock.Now().Add(-time.Second))
		require.NoError(t, err)
		requireExpired(t, b, "/v1/webhooks?account_id=acct_rot_conflict", expired.Key)
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + expired.ID + "/rotate"}), http.StatusConflict, "key_expired", "id")
		require.Equal(t, keys+1, countTable(t, b.pool, "api_keys"))

		// A revoked key in its grace period is refused at once.
		old := b.createKey(t, "account", "acct_rot_conflict")
		b.rotateKey(t, old.ID, `{"grace":"1h"}`)
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + old.ID}).status)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks?account_id=acct_rot_conflict", auth: bearer(old.Key)}), http.StatusUnauthorized, "invalid_api_key", "Authorization")
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + old.ID + "/rotate"}), http.StatusConflict, "key_revoked", "id")
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Two rotations of one key at once: one wins, the other is 409.
		old := b.createKey(t, "account", "acct_rot_race")
		keys := countTable(t, b.pool, "api_keys")
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = b.do(t, request{method: http.MethodPost, path: "/v1/keys/" + old.ID + "/rotate"}).status
			}()
		}
		wg.Wait()
		slices.Sort(statuses)
		require.Equal(t, []int{http.StatusCreated, http.StatusConflict}, statuses)
		require.Equal(t, keys+1, countTable(t, b.pool, "api_keys"))
	})

	t.Run("BadInput", func(t *testing.T) {
		live := b.createKey(t, "account", "acct_rot_bad")
		events := b.createKey(t, "events:write", "acct_rot_bad")
		rotate := func(body string) request {
			return request{method: http.MethodPost, path: "/v1/keys/" + live.ID + "/rotate", body: body}
		}
		cases := []struct {
			name   string
			req    request
			status int
			code   string
			field  string
		}{
			{"GraceText", rotate(`{"grace":"soon"}`), 422, "invalid_grace", "grace"},
			{"GraceEmpty", rotate(`{"grace":""}`), 422, "invalid_grace", "grace"},
			{"GraceNoUnit", rotate(`{"grace":"60"}`), 422, "invalid_grace", "grace"},
			{"GraceNegative", rotate(`{"grace":"-1h"}`), 422, "invalid_grace", "grace"},
			{"GraceNegativeDays", rotate(`{"grace":"-1d"}`), 422, "invalid_grace", "grace"},
			{"GraceEightDays", rotate(`{"grace":"8d"}`), 422, "invalid_grace", "grace"},
			{"GraceOverSevenDays", rotate(`{"grace":"168h1s"}`), 422, "invalid_grace", "grace"},
			{"GraceFractionalDays", rotate(`{"grace":"1.5d"}`), 422, "invalid_grace", "grace"},
			{"GraceDaysAndHours", rotate(`{"grace":"1d12h"}`), 422, "invalid_grace", "grace"},
			{"GraceJustD", rotate(`{"grace":"d"}`), 422, "invalid_grace", "grace"},
			{"GraceNumber", rotate(`{"grace":3600}`), 400, "invalid_type", "grace"},
			{"UnknownField", rotate(`{"grace":"1h","scope":"admin"}`), 400, "unknown_field", "scope"},
			{"InvalidJSON", rotate(`{"grace":`), 400, "invalid_json", ""},
			{"MalformedID", request{method: http.MethodPost, path: "/v1/keys/key_nope/rotate"}, 404, "not_found", "id"},
			{"WebhookID", request{method: http.MethodPost, path: "/v1/keys/" + ident.New(ident.Webhook) + "/rotate"}, 404, "not_found", "id"},
			{"UnknownID", request{method: http.MethodPost, path: "/v1/keys/" + ident.New(ident.Key) + "/rotate"}, 404, "not_found", "id"},
			{"NoKey", request{method: http.MethodPost, path: "/v1/keys/" + live.ID + "/rotate", auth: noAuth}, 401, "missing_api_key", "Authorization"},
			{"AccountKey", request{method: http.MethodPost, path: "/v1/keys/" + live.ID + "/rotate", auth: bearer(live.Key)}, 403, "insufficient_scope", "Authorization"},
			{"EventsKey", request{method: http.MethodPost, path: "/v1/keys/" + live.ID + "/rotate", auth: bearer(events.Key)}, 403, "insufficient_scope", "Authorization"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				keys := countTable(t, b.pool, "api_keys")
				rotated := countTable(t, b.pool, "api_keys WHERE expires_at IS NOT NULL OR replaced_by IS NOT NULL")
				requireError(t, b.do(t, tc.req), tc.status, tc.code, tc.field)
				require.Equal(t, keys, countTable(t, b.pool, "api_keys"), "a refused request stored a key")
				require.Equal(t, rotated, countTable(t, b.pool, "api_keys WHERE expires_at IS NOT NULL OR replaced_by IS NOT NULL"), "a refused request rotated a key")
			})
		}
		listed := b.findKey(t, live.ID)
		require.Nil(t, listed.ExpiresAt)
		require.Nil(t, listed.ReplacedBy)
	})
}

func TestParseKeyGrace(t *testing.T) {
	t.Parallel()

	for raw, want := range map[string]time.Duration{
		"0": 0, "0s": 0, "0d": 0, "30m": 30 * time.Minute, "1h": time.Hour, "1h30m": 90 * time.Minute,
		"2d": 48 * time.Hour, "7d": admin.KeyGraceMax, "168h": admin.KeyGraceMax,
	} {
		got, err := admin.ParseKeyGrace(raw)
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
	for _, raw := range []string{"", " 1h", "1", "soon", "-1s", "-0d", "+1d", "8d", "1000d", "168h0m1s", "1.5d", "1d2h", "d", "1e3d"} {
		_, err := admin.ParseKeyGrace(raw)
		var v *engine.ValidationError
		require.ErrorAs(t, err, &v, raw)
		require.Equal(t, "grace", v.Field, raw)
		require.Equal(t, "invalid_grace", v.Code, raw)
	}
}
