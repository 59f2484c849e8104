package admin_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/admin"
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/keyring"
)

// A caller that declares a large body and sends it slowly holds its share
// of the body budget; while the budget is spent, other bodies wait and then
// get 503 server_busy with Retry-After, having read nothing; requests
// without a body are not held up; once the slow body is gone, bodies are
// read again.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	enqueuer, err := dispatcher.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	// The smallest budget: one largest batch.
	api, err := admin.New(testdb.New(t), enqueuer, keys, &admin.Config{BootstrapAdminKey: adminKey, BodyBudget: 1})
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	// Declare a largest batch and stall.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() }) // before srv.Close, which waits for it
	_, err = fmt.Fprintf(conn, "POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"events\":[",
		adminKey, admin.BatchBodyLimit)
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // it is past auth and holds the budget

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
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp = post()
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
	}
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "the budget comes back when the slow body goes")
}
