package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
)

// principal is who calls a route in the auth matrix.
type principal struct {
	name string
	// auth is the request's Authorization (noAuth for none).
	auth string
	// scope is the key's scope; "" for a key that must get 401.
	scope string
	// account binds the key to an account; "" for none.
	account string
}

// matrixCase is how the auth matrix calls one route.
type matrixCase struct {
	// path returns the path (with query) to call; called once per call so
	// that destructive routes get a fresh object each time.
	path func(t *testing.T) string
	// body returns the request body, if any.
	body func() string
	// ok lists the statuses a principal allowed on the route may get.
	ok []int
	// foreign is the status and code a key bound to another account gets:
	// 404 not_found where the route names the object by id, 403
	// account_not_allowed where the request names the account.
	foreign     int
	foreignCode string
}

func fixed(s string) func(*testing.T) string { return func(*testing.T) string { return s } }

func fixedBody(s string) func() string { return func() string { return s } }

// Every route × every kind of caller: no key, an unknown key, a revoked
// key, admin keys, an account key of the objects' account and of another,
// and events:write keys unbound and bound. The cases come from Handler's
// route list, so a new route without a case fails here.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()

	// Three of the principals fail on every route: far past the failed-key
	// throttle, which has a test of its own.
	b := startFastServer(t, func(c *server.Config) { c.AuthFailureLimit = 10_000 })
	const (
		account = "acct_matrix_a"
		other   = "acct_matrix_b"
	)

	// The objects, made once with the bootstrap admin key. The webhook's
	// endpoint refuses connections, so its delivery dies within seconds.
	var urls atomic.Int64
	nextURL := func() string { return fmt.Sprintf("http://127.0.0.2:9/matrix/%d", urls.Add(1)) }
	hook := b.createWebhook(t, account, nextURL())
	var ev apitype.Enqueued
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events",
		body: `{"account_id":"` + account + `","type":"matrix.test","data":{},"idempotency_key":"matrix-1"}`}), http.StatusAccepted, &ev)
	require.Len(t, ev.Deliveries, 1)
	delivery := ev.Deliveries[0].ID
	var batch replayBatchView
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/deliveries/replay", body: `{"account_id":"` + account + `"}`}), http.StatusAccepted, &batch)

	revoked := b.createKey(t, store.ScopeAccount, account)
	require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/keys/" + revoked.ID}).status)

	principals := []principal{
		{name: "NoKey", auth: noAuth},
		{name: "UnknownKey", auth: bearer("whk_" + strings.Repeat("A", 43))},
		{name: "RevokedKey", auth: bearer(revoked.Key)},
		{name: "BootstrapAdmin", auth: bearer(adminKey), scope: store.ScopeAdmin},
		{name: "Admin", auth: bearer(b.createKey(t, store.ScopeAdmin, "").Key), scope: store.ScopeAdmin},
		{name: "Account", auth: bearer(b.createKey(t, store.ScopeAccount, account).Key), scope: store.ScopeAccount, account: account},
		{name: "OtherAccount", auth: bearer(b.createKey(t, store.ScopeAccount, other).Key), scope: store.ScopeAccount, account: other},
		{name: "EventsWrite", auth: bearer(b.createKey(t, store.ScopeEventsWrite, "").Key), scope: store.ScopeEventsWrite},
		{name: "EventsWriteBound", auth: bearer(b.createKey(t, store.ScopeEventsWrite, account).Key), scope: store.ScopeEventsWrite, account: account},
		{name: "EventsWriteOtherAccount", auth: bearer(b.createKey(t, store.ScopeEventsWrite, other).Key), scope: store.ScopeEventsWrite, account: other},
		{name: "PortalWrite", auth: bearer(b.createKey(t, store.ScopePortalWrite, "").Key), scope: store.ScopePortalWrite},
		{name: "PortalWriteBound", auth: bearer(b.createKey(t, store.ScopePortalWrite, account).Key), scope: store.ScopePortalWrite, account: account},
		{name: "PortalWriteOtherAccount", auth: bearer(b.createKey(t, store.ScopePortalWrite, other).Key), scope: store.ScopePortalWrite, account: other},
	}

	event := `{"account_id":"` + account + `","type":"matrix.test","data":{"n":1},"idempotency_key":"matrix-2"}`
	cases := map[string]matrixCase{
		"GET /healthz":         {path: fixed("/healthz"), ok: []int{http.StatusOK}},
		"GET /readyz":          {path: fixed("/readyz"), ok: []int{http.StatusOK}},
		"GET /v1/openapi.json": {path: fixed("/v1/openapi.json"), ok: []int{http.StatusOK}},
		"GET /docs":            {path: fixed("/docs"), ok: []int{http.StatusOK}},
		"POST /v1/webhooks": {path: fixed("/v1/webhooks"),
			body: func() string { return `{"account_id":"` + account + `","url":"` + nextURL() + `"}` },
			ok:   []int{http.StatusCreated}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"GET /v1/webhooks": {path: fixed("/v1/webhooks?account_id=" + account),
			ok: []int{http.StatusOK}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"GET /v1/webhooks/{id}":                {path: fixed("/v1/webhooks/" + hook.ID), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"GET /v1/webhooks/{id}/secret":         {path: fixed("/v1/webhooks/" + hook.ID + "/secret"), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"GET /v1/webhooks/{id}/health":         {path: fixed("/v1/webhooks/" + hook.ID + "/health"), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"POST /v1/webhooks/{id}/test":          {path: fixed("/v1/webhooks/" + hook.ID + "/test"), body: fixedBody(`{}`), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"POST /v1/webhooks/{id}/rotate-secret": {path: fixed("/v1/webhooks/" + hook.ID + "/rotate-secret"), body: fixedBody(`{"expires_in":"1h"}`), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"POST /v1/webhooks/{id}/fifo/skip":     {path: fixed("/v1/webhooks/" + hook.ID + "/fifo/skip"), body: fixedBody(`{"delivery_id":"dlv_01a2463c9d2f7c4e92cefd79df658ddf"}`), ok: []int{http.StatusConflict}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"PATCH /v1/webhooks/{id}": {path: fixed("/v1/webhooks/" + hook.ID), body: fixedBody(`{"description":"matrix"}`),
			ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"DELETE /v1/webhooks/{id}": {path: func(t *testing.T) string { return "/v1/webhooks/" + b.createWebhook(t, account, nextURL()).ID },
			ok: []int{http.StatusNoContent}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"POST /v1/events": {path: fixed("/v1/events"), body: fixedBody(event),
			ok: []int{http.StatusAccepted, http.StatusOK}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"POST /v1/events/batch": {path: fixed("/v1/events/batch"), body: fixedBody(`{"events":[` + event + `]}`),
			ok: []int{http.StatusAccepted, http.StatusOK}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"GET /v1/events": {path: fixed("/v1/events?account_id=" + account + "&idempotency_key=matrix-1"),
			ok: []int{http.StatusOK}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"GET /v1/events/{id}": {path: fixed("/v1/events/" + ev.ID), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"POST /v1/keys": {path: fixed("/v1/keys"), body: fixedBody(`{"scope":"events:write","account_id":"` + account + `"}`),
			ok: []int{http.StatusCreated}},
		"GET /v1/keys": {path: fixed("/v1/keys"), ok: []int{http.StatusOK}},
		"DELETE /v1/keys/{id}": {path: func(t *testing.T) string { return "/v1/keys/" + b.createKey(t, store.ScopeAccount, account).ID },
			ok: []int{http.StatusNoContent}},
		"POST /v1/keys/{id}/rotate": {path: func(t *testing.T) string {
			return "/v1/keys/" + b.createKey(t, store.ScopeAccount, account).ID + "/rotate"
		},
			ok: []int{http.StatusCreated}},
		"POST /v1/portal-links": {path: fixed("/v1/portal-links"), body: fixedBody(`{"account_id":"` + account + `"}`),
			ok: []int{http.StatusCreated}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"DELETE /v1/portal-links": {path: fixed("/v1/portal-links?account_id=" + account),
			ok: []int{http.StatusOK}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"GET /v1/deliveries": {path: fixed("/v1/deliveries?account_id=" + account),
			ok: []int{http.StatusOK}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		"GET /v1/deliveries/{id}": {path: fixed("/v1/deliveries/" + delivery), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		// Pending until it dies, and pending again once replayed: 409 is
		// as much a pass of the auth check as 202.
		"POST /v1/deliveries/{id}/replay": {path: fixed("/v1/deliveries/" + delivery + "/replay"),
			ok: []int{http.StatusAccepted, http.StatusConflict}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"POST /v1/deliveries/replay": {path: fixed("/v1/deliveries/replay"), body: fixedBody(`{"webhook_id":"` + hook.ID + `"}`),
			ok: []int{http.StatusAccepted}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"GET /v1/replays/{id}": {path: fixed("/v1/replays/" + batch.ID), ok: []int{http.StatusOK}, foreign: http.StatusNotFound, foreignCode: "not_found"},
		"GET /v1/limits": {path: fixed("/v1/limits?account_id=" + account),
			ok: []int{http.StatusOK}, foreign: http.StatusForbidden, foreignCode: "account_not_allowed"},
		// The event catalogue is the same for every account.
		"GET /v1/event-types":        {path: fixed("/v1/event-types"), ok: []int{http.StatusOK}, foreign: http.StatusOK},
		"GET /v1/event-types/{type}": {path: fixed("/v1/event-types/bank_transfer_approved"), ok: []int{http.StatusOK}, foreign: http.StatusOK},
		"POST /v1/event-types": {path: fixed("/v1/event-types"),
			body: func() string {
				return fmt.Sprintf(`{"type":"matrix.type_%d","schema":{"type":"object"},"example":{}}`, urls.Add(1))
			},
			ok: []int{http.StatusCreated}},
		"PATCH /v1/event-types/{type}": {path: fixed("/v1/event-types/bank_transfer_approved"), body: fixedBody(`{"description":"matrix"}`),
			ok: []int{http.StatusOK}},
	}

	routes := admin.RoutesForTest()
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		c, ok := cases[key]
		require.True(t, ok, "route %s has no auth matrix case: add one to TestAuthMatrix", key)
		delete(cases, key)

		for _, p := range principals {
			t.Run(strings.NewReplacer(" /", "_", "/", "_", "{", "", "}", "").Replace(key)+"/"+p.name, func(t *testing.T) {
				req := request{method: rt.Method, path: c.path(t), auth: p.auth}
				if c.body != nil {
					req.body = c.body()
				}
				resp := b.do(t, req)
				status, code := resp.status, errorCode(t, resp)

				switch {
				case rt.Scopes == nil:
					require.Contains(t, c.ok, status, "body: %s", resp.body)
				case p.scope == "":
					require.Equal(t, http.StatusUnauthorized, status, "body: %s", resp.body)
					wantCode := "invalid_api_key"
					if p.auth == noAuth {
						wantCode = "missing_api_key"
					}
					require.Equal(t, wantCode, code, "body: %s", resp.body)
					require.NotEmpty(t, resp.header.Get("WWW-Authenticate"))
				case !slices.Contains(rt.Scopes, p.scope):
					require.Equal(t, http.StatusForbidden, status, "body: %s", resp.body)
					require.Equal(t, "insufficient_scope", code, "body: %s", resp.body)
					require.Contains(t, string(resp.body), "does not allow "+rt.Method+" /", "the message names the method once")
				case p.account != "" && p.account != account:
					require.NotZero(t, c.foreign, "%s allows a bound key: say what another account's key gets", key)
					require.Equal(t, c.foreign, status, "body: %s", resp.body)
					require.Equal(t, c.foreignCode, code, "body: %s", resp.body)
				default:
					require.Contains(t, c.ok, status, "body: %s", resp.body)
				}
			})
		}
	}
	require.Empty(t, cases, "auth matrix cases for routes Handler does not register")
}

// errorCode is the code of an error answer, "" for any other answer.
func errorCode(t *testing.T, resp *response) string {
	t.Helper()
	if resp.status < 400 {
		return ""
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &e), "body: %s", resp.body)
	return e.Error.Code
}

// Every route of the served OpenAPI document (fetched without a key) is
// one the server answers: never the catch-all route_not_found.
func TestOpenAPIPathsServed(t *testing.T) {
	t.Parallel()

	b := startServer(t, false)
	resp := b.do(t, request{method: http.MethodGet, path: "/v1/openapi.json", auth: noAuth})
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.Equal(t, "application/json", resp.header.Get("Content-Type"))
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &doc))
	require.NotEmpty(t, doc.Paths)

	// The check can fail: an undocumented route is the catch-all.
	require.Equal(t, "route_not_found", errorCode(t, b.do(t, request{method: http.MethodGet, path: "/v1/nothing"})))

	n := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			// A malformed id reaches the route's handler, which answers
			// not_found for it: nothing is changed.
			target := strings.NewReplacer("{id}", "x", "{type}", "x").Replace(path)
			require.NotContains(t, target, "{", "%s: an unexpected path parameter", path)
			resp := b.do(t, request{method: strings.ToUpper(method), path: target})
			require.NotEqual(t, "route_not_found", errorCode(t, resp), "%s %s: body: %s", strings.ToUpper(method), path, resp.body)
			n++
		}
	}
	require.Len(t, admin.RoutesForTest(), n)
}
