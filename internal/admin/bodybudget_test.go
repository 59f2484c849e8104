package admin_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testsignal"
)

// A caller that declares a large body and sends it slowly holds its share
// of the body budget; while the budget is spent, other bodies wait and then
// get 503 server_busy with Retry-After, having read nothing; requests
// without a body are not held up; once the slow body is gone, bodies are
// read again.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	// The smallest budget: one largest batch; no share per key or minimum
	// rate to get in the way (they have tests of their own).
	api, err := admin.New(testdb.New(t), enqueuer, keys, &admin.Config{BootstrapAdminKey: adminKey, BodyBudget: 1,
		BodyBudgetPerKey: 2 * admin.BatchBodyLimit, BodyMinRate: -1})
	require.NoError(t, err)
	// The batch's handler says when it first reads the body (it is then
	// past auth and holds the budget) and when it has returned (the budget
	// is back).
	reading, served := make(chan struct{}), make(chan struct{})
	handler := api.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events/batch" {
			handler.ServeHTTP(w, r)
			return
		}
		defer close(served)
		r.Body = &firstRead{ReadCloser: r.Body, reading: reading}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// Declare a largest batch and stall.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() }) // before srv.Close, which waits for it
	_, err = fmt.Fprintf(conn, "POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"events\":[",
		adminKey, admin.BatchBodyLimit)
	require.NoError(t, err)
	waitClosed(t, reading, "the batch's body read")

	post := func() *http.Response {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", strings.NewReader(`{"account_id":"acct_budget","type":"order.created","data":{}}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}
	start := time.Now()
	resp := post()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "body: %s", body)
	require.Contains(t, string(body), `"server_busy"`)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.GreaterOrEqual(t, time.Since(start), admin.BodyBudgetWait, "it waited for room first")

	health, err := http.Get(srv.URL + "/healthz")
	require.NoError(t, err)
	health.Body.Close()
	require.Equal(t, http.StatusOK, health.StatusCode, "requests without a body are not held up")

	conn.Close()
	waitClosed(t, served, "the batch's handler to return")
	resp = post()
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "the budget comes back when the slow body goes")
}

// firstRead is a request body that closes reading when it is first read.
type firstRead struct {
	io.ReadCloser
	reading chan struct{}
	once    sync.Once
}

func (b *firstRead) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.reading) })
	return b.ReadCloser.Read(p)
}

// waitClosed waits for ch to be closed, or fails the test naming what.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testsignal.Timeout):
		t.Fatalf("no %s within %s", what, testsignal.Timeout)
	}
}

// slowBatch opens a connection that declares a largest batch body with
// auth, sends its first bytes and stalls. Its answer, whenever it comes,
// is sent on the returned channel.
func slowBatch(t *testing.T, addr, auth string) <-chan *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = fmt.Fprintf(conn, "POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"events\":[",
		auth, admin.BatchBodyLimit)
	require.NoError(t, err)
	answer := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			close(answer)
			return
		}
		resp.Body = io.NopCloser(strings.NewReader(readAll(resp.Body)))
		answer <- resp
	}()
	return answer
}

func readAll(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

// One key holds at most its share of the body budget: with four slow
// largest batches from one key (the whole budget before there were
// shares), the key's others are refused 429 rate_limited while another
// account's events keep being accepted.
func TestBodyBudgetPerKey(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, func(c *server.Config) {
		c.BodyBudget = 4 * admin.BatchBodyLimit // a share: one batch
		c.BodyMinRate = -1                      // the slow bodies stay
	})
	slowKey := bearer(b.createKey(t, store.ScopeAccount, "acct_slow").Key)
	otherKey := bearer(b.createKey(t, store.ScopeAccount, "acct_busy").Key)

	answers := make(chan *http.Response, 4)
	for range 4 {
		go func(answer <-chan *http.Response) { answers <- <-answer }(slowBatch(t, b.srv.Addr(), slowKey))
	}
	// Three are refused (after BodyBudgetWait): one holds the key's share.
	for refused := 0; refused < 3; refused++ {
		select {
		case resp := <-answers:
			require.NotNil(t, resp)
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
			require.Equal(t, "1", resp.Header.Get("Retry-After"))
			require.Contains(t, readAll(resp.Body), `"rate_limited"`)
		case <-time.After(15 * time.Second):
			t.Fatalf("only %d of the key's slow bodies were refused: it holds more than its share", refused)
		}
	}
	for i := range 5 {
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: otherKey, body: `{"type":"budget.test","data":{}}`})
		require.Equal(t, http.StatusAccepted, resp.status, "event %d: %s", i, resp.body)
	}
	require.Contains(t, scrapeMetrics(t, b), `webhookd_rate_limited_total{budget="body",scope="account"} 3`)
}

// A body arriving slower than the minimum rate is cut with 408
// body_too_slow, and the connection closed.
func TestBodyMinRate(t *testing.T) {
	t.Parallel()

	b := startFastServer(t, nil)
	key := bearer(b.createKey(t, store.ScopeAccount, "acct_trickle").Key)
	start := time.Now()
	resp, ok := <-slowBatch(t, b.srv.Addr(), key)
	require.True(t, ok, "an answer, not a connection left hanging")
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	body := readAll(resp.Body)
	require.Contains(t, body, `"body_too_slow"`)
	require.True(t, resp.Close, "the connection is closed")
	require.GreaterOrEqual(t, time.Since(start), admin.BodyMinRateGrace, "never before the grace")
	require.Zero(t, countTable(t, b.pool, "events"))
	require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events", auth: key, body: `{"type":"trickle.test","data":{}}`}).status)
}
