package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/signer"
)

// adminKey is the bootstrap admin key every test server accepts.
const adminKey = "test-admin-key-0123456789"

// noAuth, as a request's auth, sends no Authorization header at all.
const noAuth = "-"

// testBundle is an in-process webhookd (API and workers) on a database of
// its own, talked to over real HTTP.
type testBundle struct {
	srv     *server.Server
	pool    *pgxpool.Pool
	keys    *keyring.Keyring
	baseURL string
	client  *http.Client
	// signals are the server's test signals; batchesDone the bulk
	// replays they said are done (see waitBatchDone).
	signals     *server.TestSignals
	batchesMu   sync.Mutex
	batchesDone map[string]bool
}

// startServer starts webhookd on 127.0.0.1:0 with a fresh database. Private
// network targets are allowed only if allowPrivate; the retry schedule runs
// at 0.001 scale (30 ms for the first retry).
func startServer(t *testing.T, allowPrivate bool) *testBundle {
	t.Helper()
	return startServerWith(t, allowPrivate, nil)
}

// startServerWith is startServer with modify applied to the config last.
func startServerWith(t *testing.T, allowPrivate bool, modify func(*server.Config)) *testBundle {
	t.Helper()
	signals := newTestSignals()
	started := testserver.Start(t, func(c *server.Config) {
		c.BootstrapAdminKey = adminKey
		c.AllowPrivateNetworks = allowPrivate
		c.DBMaxConns = 8
		c.MaxWorkers = 20
		c.TestSignals = signals
		if modify != nil {
			modify(c)
		}
	})
	srv, keys := started.Server, started.Keys
	return &testBundle{
		srv:     srv,
		pool:    srv.Pool(),
		keys:    keys,
		baseURL: "http://" + srv.Addr(),
		// Generous: a 20,000-delivery batch takes over 10 s on a loaded
		// machine; a hung request still fails the test.
		client:  &http.Client{Timeout: time.Minute},
		signals: signals,
	}
}

// newTestSignals returns the server test signals the tests wait on.
func newTestSignals() *server.TestSignals {
	s := &server.TestSignals{}
	s.ReplayBatch.Done.Init()
	return s
}

// request is one HTTP request to the API.
type request struct {
	method string
	path   string
	body   string
	// auth is the Authorization header: "" sends the admin key as a bearer
	// token, noAuth sends none.
	auth string
	// header holds extra headers.
	header map[string]string
}

// response is an API answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (b *testBundle) do(t *testing.T, req request) *response {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	httpReq, err := http.NewRequest(req.method, b.baseURL+req.path, body)
	require.NoError(t, err)
	if req.body != "" {
		httpReq.Header.Set("Content-Type", "application/json")
	}
	switch req.auth {
	case "":
		httpReq.Header.Set("Authorization", "Bearer "+adminKey)
	case noAuth:
	default:
		httpReq.Header.Set("Authorization", req.auth)
	}
	for k, v := range req.header {
		httpReq.Header.Set(k, v)
	}
	resp, err := b.client.Do(httpReq)
	require.NoError(t, err)
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &response{status: resp.StatusCode, header: resp.Header, body: respBody}
}

// jsonBody asserts that resp is JSON with status and decodes it into dst.
func jsonBody(t *testing.T, resp *response, status int, dst any) {
	t.Helper()
	require.Equal(t, status, resp.status, "body: %s", resp.body)
	require.Equal(t, "application/json", resp.header.Get("Content-Type"))
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(dst), "body: %s", resp.body)
}

// requireError asserts that resp is the one JSON error shape,
// {"error":{"code","message","field"}}, with status, code and field (""
// meaning no field).
func requireError(t *testing.T, resp *response, status int, code, field string) {
	t.Helper()
	require.Equal(t, status, resp.status, "body: %s", resp.body)
	require.Equal(t, "application/json", resp.header.Get("Content-Type"), "body: %s", resp.body)

	var outer map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(resp.body, &outer), "body: %s", resp.body)
	require.Len(t, outer, 1, "body: %s", resp.body)
	var inner map[string]any
	require.NoError(t, json.Unmarshal(outer["error"], &inner), "body: %s", resp.body)
	for k := range inner {
		require.Contains(t, []string{"code", "message", "field"}, k, "body: %s", resp.body)
	}
	require.Equal(t, code, inner["code"], "body: %s", resp.body)
	message, _ := inner["message"].(string)
	require.NotEmpty(t, message, "body: %s", resp.body)
	if field == "" {
		require.NotContains(t, inner, "field", "body: %s", resp.body)
	} else {
		require.Equal(t, field, inner["field"], "body: %s", resp.body)
	}
}

// rowCounts is how many rows each of our tables (and River's delivery jobs)
// holds.
type rowCounts struct {
	Webhooks, LiveWebhooks, Events, Deliveries, Attempts, IdempotencyKeys, DeliveryJobs int
}

// countRows counts every table a request could write to. River jobs are
// counted on the deliveries queue only: the periodic reconciler inserts jobs
// of its own on the default queue at any time.
func countRows(t *testing.T, pool *pgxpool.Pool) rowCounts {
	t.Helper()
	var c rowCounts
	require.NoError(t, pool.QueryRow(context.Background(), `
SELECT (SELECT count(*) FROM webhooks),
       (SELECT count(*) FROM webhooks WHERE deleted_at IS NULL),
       (SELECT count(*) FROM events),
       (SELECT count(*) FROM deliveries),
       (SELECT count(*) FROM attempt_log),
       (SELECT count(*) FROM idempotency_keys),
       (SELECT count(*) FROM river_job WHERE queue = $1)`, engine.QueueDeliveries).
		Scan(&c.Webhooks, &c.LiveWebhooks, &c.Events, &c.Deliveries, &c.Attempts, &c.IdempotencyKeys, &c.DeliveryJobs))
	return c
}

// unsettledQuery counts the deliveries of account $1 (of every account
// when it is empty) still pending, and their delivery jobs ($2) not
// finalized: available, running, scheduled or retryable.
const unsettledQuery = `
SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending' AND ($1 = '' OR account_id = $1)),
       (SELECT count(*) FROM river_job j WHERE j.kind = $2 AND j.finalized_at IS NULL
          AND ($1 = '' OR EXISTS (SELECT 1 FROM deliveries d WHERE d.id = j.args->>'delivery_id' AND d.account_id = $1)))`

// waitSettled waits until no delivery is pending and every delivery job
// has finished, so that row counts and the receivers' requests stop
// changing: only a job sends, and its request has reached the receiver
// before the job finishes.
func waitSettled(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	waitAccountSettled(t, pool, "", 30*time.Second)
}

// waitAccountSettled is waitSettled for the deliveries of one account.
func waitAccountSettled(t *testing.T, pool *pgxpool.Pool, account string, timeout time.Duration) {
	t.Helper()
	testwait.For(t, timeout, func() (bool, string) {
		var pending, jobs int
		require.NoError(t, pool.QueryRow(context.Background(), unsettledQuery, account, engine.DeliveryArgs{}.Kind()).Scan(&pending, &jobs))
		return pending == 0 && jobs == 0, fmt.Sprintf("%d deliveries pending, %d delivery jobs not finished", pending, jobs)
	})
}

func (b *testBundle) createWebhook(t *testing.T, accountID, url string) *apitype.Webhook {
	t.Helper()
	body, err := json.Marshal(map[string]string{"account_id": accountID, "url": url})
	require.NoError(t, err)
	var out apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: string(body)}), http.StatusCreated, &out)
	return &out
}

func TestWebhooks(t *testing.T) {
	t.Parallel()

	// One server for every subtest; each uses accounts of its own.
	bundle := startServer(t, false)
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return bundle
	}

	t.Run("Create", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		before := time.Now().Add(-time.Second)
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: `{"account_id":"acct_create","url":"https://Example.com./hooks?x=1"}`})
		var raw map[string]any
		require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
		require.NoError(t, json.Unmarshal(resp.body, &raw))
		for _, k := range []string{"id", "account_id", "url", "secret", "created_at"} {
			require.Contains(t, raw, k)
		}
		var hook apitype.Webhook
		jsonBody(t, resp, http.StatusCreated, &hook)
		require.True(t, ident.Valid(ident.Webhook, hook.ID), hook.ID)
		require.Equal(t, "acct_create", hook.AccountID)
		require.Equal(t, "https://example.com/hooks?x=1", hook.URL)
		require.True(t, strings.HasPrefix(hook.Secret, "whsec_"), hook.Secret)
		require.Greater(t, len(hook.Secret), len("whsec_")+32)
		require.WithinRange(t, hook.CreatedAt, before, time.Now().Add(time.Second))

		// The secret is stored encrypted, bound to the webhook's id.
		var (
			ciphertext []byte
			keyID      string
		)
		require.NoError(t, b.pool.QueryRow(context.Background(),
			"SELECT secret_ciphertext, secret_key_id FROM webhooks WHERE id = $1", hook.ID).Scan(&ciphertext, &keyID))
		require.NotContains(t, string(ciphertext), hook.Secret)
		require.NotContains(t, string(ciphertext), strings.TrimPrefix(hook.Secret, "whsec_"))
		plaintext, err := b.keys.Decrypt(ciphertext, keyID, []byte(hook.ID))
		require.NoError(t, err)
		require.Equal(t, hook.Secret, string(plaintext))
	})

	t.Run("DeleteTwice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		hook := b.createWebhook(t, "acct_delete", "https://example.com/delete")
		resp := b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + hook.ID})
		require.Equal(t, http.StatusNoContent, resp.status, "body: %s", resp.body)
		require.Empty(t, resp.body)

		requireError(t, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + hook.ID}), http.StatusNotFound, "not_found", "id")
	})

	t.Run("RecreateAfterDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		first := b.createWebhook(t, "acct_recreate", "https://example.com/recreate")
		require.Equal(t, http.StatusNoContent, b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + first.ID}).status)

		second := b.createWebhook(t, "acct_recreate", "https://example.com/recreate")
		require.NotEqual(t, first.ID, second.ID)
		require.NotEqual(t, first.Secret, second.Secret)
		require.Equal(t, first.URL, second.URL)
	})

	t.Run("DuplicateURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		b.createWebhook(t, "acct_dup_a", "http://example.com/x")
		for _, url := range []string{"http://example.com/x", "HTTP://Example.COM/x", "http://example.com:80/x", "http://EXAMPLE.com./x"} {
			body := `{"account_id":"acct_dup_a","url":"` + url + `"}`
			requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: body}), http.StatusConflict, "duplicate_url", "url")
		}

		// The same URL is fine for another account.
		other := b.createWebhook(t, "acct_dup_b", "http://example.com/x")
		require.Equal(t, "acct_dup_b", other.AccountID)
	})

	t.Run("BearerSchemeCaseInsensitive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", auth: "bearer " + adminKey, body: `{"account_id":"acct_bearer","url":"https://example.com/bearer"}`})
		require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	})

	t.Run("Healthz", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		var out map[string]string
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/healthz", auth: noAuth}), http.StatusOK, &out)
		require.Equal(t, "ok", out["status"])
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()

	// Private networks are allowed so that webhooks can point at the test
	// receiver on 127.0.0.2. The subtests count rows, so they run in turn.
	bundle := startServer(t, true)
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return bundle
	}

	t.Run("CreateAndDeliver", func(t *testing.T) {
		b := setup(t)

		rcv := testreceiver.New(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, "try again later")
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		hook := b.createWebhook(t, "acct_deliver", rcv.URL+"/hook?token=s3cret")

		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_deliver","type":"bank_transfer_approved","data":{"amount":100,"note":"<&>"}}`})
		var ev apitype.Enqueued
		jsonBody(t, resp, http.StatusAccepted, &ev)
		require.True(t, ident.Valid(ident.Event, ev.ID), ev.ID)
		require.Len(t, ev.Deliveries, 1)
		require.True(t, ident.Valid(ident.Delivery, ev.Deliveries[0].ID), ev.Deliveries[0].ID)
		require.Equal(t, hook.ID, ev.Deliveries[0].WebhookID)

		// Wait, through the API, for the delivery to finish.
		var raw map[string]json.RawMessage
		testwait.For(t, 10*time.Second, func() (bool, string) {
			resp := b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + ev.Deliveries[0].ID})
			require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
			require.Equal(t, "application/json", resp.header.Get("Content-Type"))
			raw = nil
			require.NoError(t, json.Unmarshal(resp.body, &raw))
			return string(raw["state"]) != `"pending"`, string(resp.body)
		})
		require.JSONEq(t, `"succeeded"`, string(raw["state"]))
		require.JSONEq(t, `"`+ev.Deliveries[0].ID+`"`, string(raw["id"]))
		require.JSONEq(t, `"`+ev.ID+`"`, string(raw["event_id"]))
		require.JSONEq(t, `"`+hook.ID+`"`, string(raw["webhook_id"]))
		require.Contains(t, raw, "next_attempt_at")

		var rawAttempts []map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw["attempts"], &rawAttempts))
		require.Len(t, rawAttempts, 2)
		for _, at := range rawAttempts {
			for _, k := range []string{"number", "generation", "counted", "scheduled_at", "started_at", "duration_ms", "status_code", "error_kind", "error_message", "response_excerpt", "signature_t"} {
				require.Contains(t, at, k)
			}
		}

		var attempts []apitype.Attempt
		require.NoError(t, json.Unmarshal(raw["attempts"], &attempts))

		reqs := rcv.Requests()
		require.Len(t, reqs, 2)
		for i, at := range attempts {
			require.Equal(t, i+1, at.Number)
			require.Equal(t, 1, at.Generation)
			require.True(t, at.Counted)
			require.False(t, at.ScheduledAt.IsZero())
			require.False(t, at.StartedAt.IsZero())
			require.False(t, at.StartedAt.Before(at.ScheduledAt.Add(-time.Second)), "started %s, scheduled %s", at.StartedAt, at.ScheduledAt)
			require.GreaterOrEqual(t, at.DurationMS, 0.0)
			require.Less(t, at.DurationMS, 5000.0)
			require.NotNil(t, at.StatusCode)
			require.NotNil(t, at.ResponseExcerpt)

			// signature_t is the t= sent, and the signature verifies with
			// the secret the API returned.
			sig, err := signer.Parse(reqs[i].Header.Get(signer.Header))
			require.NoError(t, err)
			require.Equal(t, sig.Timestamp.Unix(), at.SignatureT)
			require.NoError(t, signer.Verify(reqs[i].Header.Get(signer.Header), reqs[i].Body, hook.Secret, time.Now(), 0))
			require.Equal(t, ev.ID, reqs[i].Header.Get("Mono-Event-Id"))
			require.Equal(t, "/hook?token=s3cret", reqs[i].Path)
		}

		first, second := attempts[0], attempts[1]
		require.Equal(t, http.StatusInternalServerError, *first.StatusCode)
		require.NotNil(t, first.ErrorKind)
		require.Equal(t, "http_status", *first.ErrorKind)
		require.NotNil(t, first.ErrorMessage)
		require.NotEmpty(t, *first.ErrorMessage)
		require.NotContains(t, *first.ErrorMessage, "s3cret")
		require.Equal(t, "try again later", *first.ResponseExcerpt)

		require.Equal(t, http.StatusOK, *second.StatusCode)
		require.Nil(t, second.ErrorKind)
		require.Nil(t, second.ErrorMessage)
		require.Equal(t, "ok", *second.ResponseExcerpt)
		require.True(t, second.ScheduledAt.After(first.StartedAt))
	})

	t.Run("NoWebhooks", func(t *testing.T) {
		b := setup(t)

		before := countRows(t, b.pool)
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_nobody","type":"x","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
		require.Contains(t, string(resp.body), `"deliveries":[]`)
		after := countRows(t, b.pool)
		require.Equal(t, before.Events+1, after.Events)
		require.Equal(t, before.Deliveries, after.Deliveries)
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		b := setup(t)

		rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
		b.createWebhook(t, "acct_idem", rcv.URL+"/a")
		b.createWebhook(t, "acct_idem", rcv.URL+"/b")

		body := `{"account_id":"acct_idem","type":"payment.created","data":{"n":1},"idempotency_key":"key-1"}`
		first := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: body})
		var ev apitype.Enqueued
		jsonBody(t, first, http.StatusAccepted, &ev)
		require.Len(t, ev.Deliveries, 2)
		rcv.Wait(t, 2, 10*time.Second)
		waitSettled(t, b.pool)

		// The same key and payload (spelt differently): 200, the original
		// answer, nothing new.
		before := countRows(t, b.pool)
		repeat := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"idempotency_key":"key-1", "data":{ "n" : 1 },"type":"payment.created","account_id":"acct_idem"}`})
		require.Equal(t, http.StatusOK, repeat.status, "body: %s", repeat.body)
		require.Equal(t, "application/json", repeat.header.Get("Content-Type"))
		require.JSONEq(t, string(first.body), string(repeat.body))
		require.Equal(t, before, countRows(t, b.pool))

		// The same key with another payload: 409, nothing stored.
		for _, other := range []string{
			`{"account_id":"acct_idem","type":"payment.created","data":{"n":2},"idempotency_key":"key-1"}`,
			`{"account_id":"acct_idem","type":"payment.updated","data":{"n":1},"idempotency_key":"key-1"}`,
		} {
			requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: other}), http.StatusConflict, "idempotency_key_reused", "idempotency_key")
			require.Equal(t, before, countRows(t, b.pool))
		}

		// The key is the account's: another account may use it.
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_idem_other","type":"payment.created","data":{"n":2},"idempotency_key":"key-1"}`})
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)

		// The repeats enqueued nothing (the counts above) and every job has
		// finished: nothing more can reach the receiver.
		waitSettled(t, b.pool)
		require.Equal(t, 2, rcv.Count(), "a repeat must not be delivered again")
	})

	t.Run("IdempotencyKeyHeader", func(t *testing.T) {
		b := setup(t)

		body := `{"account_id":"acct_idem_header","type":"payment.created","data":{"n":1}}`
		header := map[string]string{"Idempotency-Key": "header-key-1"}
		first := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: body, header: header})
		require.Equal(t, http.StatusAccepted, first.status, "body: %s", first.body)

		before := countRows(t, b.pool)
		repeat := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: body, header: header})
		require.Equal(t, http.StatusOK, repeat.status, "body: %s", repeat.body)
		require.JSONEq(t, string(first.body), string(repeat.body))

		// The header and the body field name the same key.
		inBody := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_idem_header","type":"payment.created","data":{"n":1},"idempotency_key":"header-key-1"}`})
		require.Equal(t, http.StatusOK, inBody.status, "body: %s", inBody.body)
		require.JSONEq(t, string(first.body), string(inBody.body))

		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_idem_header","type":"payment.created","data":{"n":2}}`, header: header}),
			http.StatusConflict, "idempotency_key_reused", "idempotency_key")
		require.Equal(t, before, countRows(t, b.pool))
	})

	t.Run("PrivateNetworksAllowed", func(t *testing.T) {
		b := setup(t)

		// Creating a webhook sends nothing; with no event for these
		// accounts, no traffic goes anywhere.
		for _, tc := range []struct{ url, normalized string }{
			{"http://127.0.0.2:9/", "http://127.0.0.2:9/"},
			{"http://10.0.0.1/", "http://10.0.0.1/"},
			{"http://[::1]:9/", "http://[::1]:9/"},
		} {
			hook := b.createWebhook(t, "acct_private", tc.url)
			require.Equal(t, tc.normalized, hook.URL)
		}
	})
}

// badCase is one request that must be refused with nothing stored.
type badCase struct {
	name string
	// private sends the request to the server that allows private networks.
	private bool
	req     request
	status  int
	code    string
	field   string
}

func TestBadInput(t *testing.T) {
	t.Parallel()

	// Two servers of their own (private networks off and on), on databases
	// no other test writes to, so that row counts mean something.
	strict := startServer(t, false)
	lenient := startServer(t, true)

	// A live webhook to duplicate, and to target with unauthenticated deletes.
	existing := strict.createWebhook(t, "acct_existing", "http://example.com/x")
	unknownWebhook := ident.New(ident.Webhook)
	unknownDelivery := ident.New(ident.Delivery)

	webhook := func(body string) request {
		return request{method: http.MethodPost, path: "/v1/webhooks", body: body}
	}
	event := func(body string) request {
		return request{method: http.MethodPost, path: "/v1/events", body: body}
	}
	webhookURL := func(url string) request {
		body, err := json.Marshal(map[string]string{"account_id": "acct_url", "url": url})
		require.NoError(t, err)
		return webhook(string(body))
	}
	const (
		goodWebhook = `{"account_id":"acct_1","url":"https://example.com/hook"}`
		goodEvent   = `{"account_id":"acct_1","type":"bank_transfer_approved","data":{"a":1}}`
	)
	long := func(n int) string { return strings.Repeat("a", n) }

	cases := []badCase{
		// Malformed JSON and wrong JSON types: 400.
		{name: "WebhookInvalidJSON", req: webhook(`{"account_id":`), status: 400, code: "invalid_json"},
		{name: "WebhookNotJSON", req: webhook(`account_id=a&url=b`), status: 400, code: "invalid_json"},
		{name: "WebhookEmptyBody", req: request{method: http.MethodPost, path: "/v1/webhooks"}, status: 400, code: "invalid_json"},
		{name: "WebhookTrailingGarbage", req: webhook(goodWebhook + `x`), status: 400, code: "invalid_json"},
		{name: "WebhookSecondObject", req: webhook(goodWebhook + goodWebhook), status: 400, code: "invalid_json"},
		{name: "WebhookArray", req: webhook(`[` + goodWebhook + `]`), status: 400, code: "invalid_json"},
		{name: "WebhookNull", req: webhook(`null`), status: 400, code: "invalid_json"},
		{name: "WebhookString", req: webhook(`"https://example.com/"`), status: 400, code: "invalid_json"},
		{name: "WebhookUnknownField", req: webhook(`{"account_id":"acct_1","url":"https://example.com/hook","secret":"whsec_mine"}`), status: 400, code: "unknown_field", field: "secret"},
		{name: "WebhookAccountIDNumber", req: webhook(`{"account_id":42,"url":"https://example.com/hook"}`), status: 400, code: "invalid_type", field: "account_id"},
		{name: "WebhookURLBool", req: webhook(`{"account_id":"acct_1","url":true}`), status: 400, code: "invalid_type", field: "url"},
		{name: "WebhookURLObject", req: webhook(`{"account_id":"acct_1","url":{"href":"https://example.com/"}}`), status: 400, code: "invalid_type", field: "url"},
		{name: "WebhookTextPlain", req: request{method: http.MethodPost, path: "/v1/webhooks", body: goodWebhook, header: map[string]string{"Content-Type": "text/plain"}}, status: 415, code: "unsupported_media_type"},
		{name: "WebhookBodyTooLarge", req: webhook(`{"account_id":"acct_1","url":"https://example.com/hook","description":"` + long(260<<10) + `"}`), status: 413, code: "body_too_large"}, // admin.WebhookBodyLimit
		{name: "EventInvalidJSON", req: event(`{"account_id":"acct_1",`), status: 400, code: "invalid_json"},
		{name: "EventEmptyBody", req: request{method: http.MethodPost, path: "/v1/events"}, status: 400, code: "invalid_json"},
		{name: "EventTrailingGarbage", req: event(goodEvent + `]`), status: 400, code: "invalid_json"},
		{name: "EventArray", req: event(`[` + goodEvent + `]`), status: 400, code: "invalid_json"},
		{name: "EventUnknownField", req: event(`{"account_id":"acct_1","type":"a","data":{},"webhook_id":"wh_1"}`), status: 400, code: "unknown_field", field: "webhook_id"},
		{name: "EventAccountIDNumber", req: event(`{"account_id":1,"type":"a","data":{}}`), status: 400, code: "invalid_type", field: "account_id"},
		{name: "EventTypeNumber", req: event(`{"account_id":"acct_1","type":7,"data":{}}`), status: 400, code: "invalid_type", field: "type"},
		{name: "EventDataString", req: event(`{"account_id":"acct_1","type":"a","data":"{}"}`), status: 400, code: "invalid_data", field: "data"},
		{name: "EventDataArray", req: event(`{"account_id":"acct_1","type":"a","data":[{"a":1}]}`), status: 400, code: "invalid_data", field: "data"},
		{name: "EventDataNumber", req: event(`{"account_id":"acct_1","type":"a","data":1}`), status: 400, code: "invalid_data", field: "data"},
		{name: "EventIdempotencyKeyNumber", req: event(`{"account_id":"acct_1","type":"a","data":{},"idempotency_key":5}`), status: 400, code: "invalid_type", field: "idempotency_key"},
		{name: "EventBodyTooLarge", req: event(`{"account_id":"acct_1","type":"a","data":{"blob":"` + long(300<<10) + `"}}`), status: 413, code: "body_too_large"},
		{name: "EventBodyJustTooLarge", req: event(`{"account_id":"acct_1","type":"a","data":{"blob":"` + long(256<<10) + `"}}`), status: 413, code: "body_too_large"},

		// Well-formed but invalid: 422.
		{name: "WebhookMissingAccountID", req: webhook(`{"url":"https://example.com/hook"}`), status: 422, code: "missing_field", field: "account_id"},
		{name: "WebhookNullAccountID", req: webhook(`{"account_id":null,"url":"https://example.com/hook"}`), status: 422, code: "missing_field", field: "account_id"},
		{name: "WebhookAccountIDSpace", req: webhook(`{"account_id":"acct 1","url":"https://example.com/hook"}`), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "WebhookAccountID65", req: webhook(`{"account_id":"` + long(65) + `","url":"https://example.com/hook"}`), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "WebhookAccountIDUnicode", req: webhook(`{"account_id":"cuenta_año","url":"https://example.com/hook"}`), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "WebhookMissingURL", req: webhook(`{"account_id":"acct_1"}`), status: 422, code: "missing_field", field: "url"},
		{name: "WebhookDescriptionTooLong", req: webhook(`{"account_id":"acct_1","url":"https://example.com/hook","description":"` + long(501) + `"}`), status: 422, code: "too_long", field: "description"},
		{name: "EventMissingAccountID", req: event(`{"type":"a","data":{}}`), status: 422, code: "missing_field", field: "account_id"},
		{name: "EventAccountIDSpace", req: event(`{"account_id":" acct","type":"a","data":{}}`), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "EventAccountID65", req: event(`{"account_id":"` + long(65) + `","type":"a","data":{}}`), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "EventAccountIDUnicode", req: event(`{"account_id":"ácct","type":"a","data":{}}`), status: 422, code: "invalid_account_id", field: "account_id"},
		{name: "EventTypeUppercase", req: event(`{"account_id":"acct_1","type":"Bank_transfer","data":{}}`), status: 422, code: "invalid_event_type", field: "type"},
		{name: "EventTypeStartsWithDigit", req: event(`{"account_id":"acct_1","type":"1transfer","data":{}}`), status: 422, code: "invalid_event_type", field: "type"},
		{name: "EventTypeStartsWithDot", req: event(`{"account_id":"acct_1","type":".transfer","data":{}}`), status: 422, code: "invalid_event_type", field: "type"},
		{name: "EventType101", req: event(`{"account_id":"acct_1","type":"` + long(101) + `","data":{}}`), status: 422, code: "invalid_event_type", field: "type"},
		{name: "EventTypeHyphen", req: event(`{"account_id":"acct_1","type":"bank-transfer","data":{}}`), status: 422, code: "invalid_event_type", field: "type"},
		{name: "EventTypeEmpty", req: event(`{"account_id":"acct_1","type":"","data":{}}`), status: 422, code: "missing_field", field: "type"},
		{name: "EventTypeMissing", req: event(`{"account_id":"acct_1","data":{}}`), status: 422, code: "missing_field", field: "type"},
		{name: "EventDataNull", req: event(`{"account_id":"acct_1","type":"a","data":null}`), status: 422, code: "missing_field", field: "data"},
		{name: "EventDataMissing", req: event(`{"account_id":"acct_1","type":"a"}`), status: 422, code: "missing_field", field: "data"},
		{name: "EventIdempotencyKey256", req: event(`{"account_id":"acct_1","type":"a","data":{},"idempotency_key":"` + long(256) + `"}`), status: 422, code: "invalid_idempotency_key", field: "idempotency_key"},
		{name: "EventIdempotencyKeyMultibyte", req: event(`{"account_id":"acct_1","type":"a","data":{},"idempotency_key":"` + strings.Repeat("é", 128) + `"}`), status: 422, code: "invalid_idempotency_key", field: "idempotency_key"},
		{name: "EventIdempotencyKeyControl", req: event(`{"account_id":"acct_1","type":"a","data":{},"idempotency_key":"a\nb"}`), status: 422, code: "invalid_idempotency_key", field: "idempotency_key"},
		{name: "EventIdempotencyKeyHeader256", req: request{method: http.MethodPost, path: "/v1/events", body: goodEvent, header: map[string]string{"Idempotency-Key": long(256)}}, status: 422, code: "invalid_idempotency_key", field: "idempotency_key"},
		{name: "EventIdempotencyKeyHeaderConflict", req: request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_1","type":"a","data":{},"idempotency_key":"one"}`, header: map[string]string{"Idempotency-Key": "two"}}, status: 422, code: "conflicting_idempotency_key", field: "idempotency_key"},

		// URL rules with private networks off.
		{name: "URLSchemeFTP", req: webhookURL("ftp://x.example"), status: 422, code: "unsupported_scheme", field: "url"},
		{name: "URLSchemeJavascript", req: webhookURL("javascript:alert(1)"), status: 422, code: "unsupported_scheme", field: "url"},
		{name: "URLNoScheme", req: webhookURL("example.com"), status: 422, code: "unsupported_scheme", field: "url"},
		{name: "URLLocalhost", req: webhookURL("http://localhost/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLLocalhostUpperTrailingDot", req: webhookURL("http://LOCALHOST./"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLSubLocalhost", req: webhookURL("http://sub.localhost/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLLoopbackPort80", req: webhookURL("http://127.0.0.1:80/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLUnspecified4", req: webhookURL("http://0.0.0.0/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLUnspecified6", req: webhookURL("http://[::]/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLLoopback6", req: webhookURL("http://[::1]/"), status: 422, code: "private_address", field: "url"},
		{name: "URLLoopbackOther", req: webhookURL("http://127.0.0.2:9/"), status: 422, code: "private_address", field: "url"},
		{name: "URLPrivate10", req: webhookURL("http://10.0.0.1/"), status: 422, code: "private_address", field: "url"},
		{name: "URLPrivate192", req: webhookURL("http://192.168.1.1/"), status: 422, code: "private_address", field: "url"},
		{name: "URLLinkLocalMetadata", req: webhookURL("http://169.254.169.254/"), status: 422, code: "private_address", field: "url"},
		{name: "URLMappedPrivate", req: webhookURL("http://[::ffff:10.0.0.1]/"), status: 422, code: "private_address", field: "url"},
		{name: "URLDecimalLoopback", req: webhookURL("http://2130706433/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLHexLoopback", req: webhookURL("http://0x7f.1/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "URLUserinfo", req: webhookURL("http://user:pass@example.com/"), status: 422, code: "userinfo_not_allowed", field: "url"},
		{name: "URLNoHost", req: webhookURL("http:///path"), status: 422, code: "missing_host", field: "url"},
		{name: "URLTooLong", req: webhookURL("https://example.com/" + long(3000)), status: 422, code: "url_too_long", field: "url"},
		{name: "URLEmpty", req: webhookURL(""), status: 422, code: "missing_field", field: "url"},
		{name: "URLBlank", req: webhookURL("   "), status: 422, code: "missing_field", field: "url"},
		{name: "URLSpace", req: webhookURL("https://exa mple.com/"), status: 422, code: "invalid_url", field: "url"},

		// URL rules that hold even with private networks on.
		{name: "PrivateOnLocalhost", private: true, req: webhookURL("http://localhost/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "PrivateOnLoopback", private: true, req: webhookURL("http://127.0.0.1/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "PrivateOnUnspecified4", private: true, req: webhookURL("http://0.0.0.0/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "PrivateOnUnspecified6", private: true, req: webhookURL("http://[::]/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "PrivateOnDecimalLoopback", private: true, req: webhookURL("http://2130706433:8080/"), status: 422, code: "forbidden_host", field: "url"},
		{name: "PrivateOnThisNetwork", private: true, req: webhookURL("http://0.1.2.3/"), status: 422, code: "forbidden_host", field: "url"},

		// Conflicts.
		{name: "DuplicateURL", req: webhook(`{"account_id":"acct_existing","url":"http://example.com/x"}`), status: 409, code: "duplicate_url", field: "url"},
		{name: "DuplicateURLOtherSpelling", req: webhook(`{"account_id":"acct_existing","url":"HTTP://Example.COM/x"}`), status: 409, code: "duplicate_url", field: "url"},

		// Unknown ids and routes.
		{name: "DeleteUnknownWebhook", req: request{method: http.MethodDelete, path: "/v1/webhooks/" + unknownWebhook}, status: 404, code: "not_found", field: "id"},
		{name: "DeleteMalformedWebhook", req: request{method: http.MethodDelete, path: "/v1/webhooks/wh_nope"}, status: 404, code: "not_found", field: "id"},
		{name: "DeleteWebhookWithDeliveryID", req: request{method: http.MethodDelete, path: "/v1/webhooks/" + unknownDelivery}, status: 404, code: "not_found", field: "id"},
		{name: "DeleteWebhookUppercaseID", req: request{method: http.MethodDelete, path: "/v1/webhooks/" + strings.ToUpper(existing.ID)}, status: 404, code: "not_found", field: "id"},
		{name: "GetUnknownDelivery", req: request{method: http.MethodGet, path: "/v1/deliveries/" + unknownDelivery}, status: 404, code: "not_found", field: "id"},
		{name: "GetMalformedDelivery", req: request{method: http.MethodGet, path: "/v1/deliveries/123"}, status: 404, code: "not_found", field: "id"},
		{name: "GetDeliveryWithSQL", req: request{method: http.MethodGet, path: "/v1/deliveries/dlv_'%20OR%201=1--"}, status: 404, code: "not_found", field: "id"},
		{name: "UnknownRoute", req: request{method: http.MethodGet, path: "/v1/nothing"}, status: 404, code: "route_not_found"},
		{name: "UnknownRouteNoAuth", req: request{method: http.MethodGet, path: "/nothing", auth: noAuth}, status: 404, code: "route_not_found"},
		{name: "WrongMethod", req: request{method: http.MethodPut, path: "/v1/webhooks", body: goodWebhook}, status: 405, code: "method_not_allowed"},
		{name: "WrongMethodOnID", req: request{method: http.MethodPut, path: "/v1/deliveries/dlv_00000000000000000000000000000000"}, status: 405, code: "method_not_allowed"},
	}

	// Every /v1 route refuses a missing, wrong or non-bearer key, whatever
	// the request would otherwise do.
	routes := []struct {
		name string
		req  request
	}{
		{"CreateWebhook", webhook(goodWebhook)},
		{"DeleteWebhook", request{method: http.MethodDelete, path: "/v1/webhooks/" + existing.ID}},
		{"CreateEvent", event(`{"account_id":"acct_existing","type":"a","data":{}}`)},
		{"GetDelivery", request{method: http.MethodGet, path: "/v1/deliveries/" + unknownDelivery}},
	}
	auths := []struct {
		name, auth, code string
	}{
		{"NoKey", noAuth, "missing_api_key"},
		{"EmptyBearer", "Bearer ", "missing_api_key"},
		{"WrongKey", "Bearer " + adminKey + "x", "invalid_api_key"},
		{"Basic", "Basic xxx", "missing_api_key"},
		{"BearerNoSpace", "Bearer" + adminKey, "missing_api_key"},
	}
	for _, route := range routes {
		for _, a := range auths {
			req := route.req
			req.auth = a.auth
			cases = append(cases, badCase{name: route.name + a.name, req: req, status: 401, code: a.code, field: "Authorization"})
		}
	}
	require.GreaterOrEqual(t, len(cases), 40)

	// The cases run one after the other: each checks that the database is
	// unchanged, which a concurrent case could not tell apart from its own.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := strict
			if tc.private {
				b = lenient
			}
			before := countRows(t, b.pool)
			resp := b.do(t, tc.req)
			requireError(t, resp, tc.status, tc.code, tc.field)
			if tc.status == http.StatusUnauthorized {
				require.NotEmpty(t, resp.header.Get("WWW-Authenticate"))
			}
			require.Equal(t, before, countRows(t, b.pool), "a refused request stored something")
		})
	}

	// The webhook the unauthenticated deletes aimed at is still live.
	require.Equal(t, 1, countRows(t, strict.pool).LiveWebhooks)
}

// A known path under the wrong method is 405 with Allow, in the JSON shape.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()

	b := startServer(t, false)
	resp := b.do(t, request{method: http.MethodPut, path: "/v1/webhooks"})
	require.Equal(t, http.StatusMethodNotAllowed, resp.status)
	require.Contains(t, resp.header.Get("Allow"), "GET")
	require.Contains(t, resp.header.Get("Allow"), "POST")
	require.Contains(t, string(resp.body), `"code":"method_not_allowed"`)
}
