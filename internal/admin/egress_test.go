package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testcert"
	"github.com/mono/webhookd/internal/testoauth"
	"github.com/mono/webhookd/internal/testproxy"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// With WEBHOOKD_EGRESS_PROXY every attempt and test send, to http and
// https (mutual TLS) receivers, goes through the proxy (tinyproxy here),
// which is asked for the checked IP, never the name; the proxy down fails
// attempts with error_kind proxy.
func TestEgressProxy(t *testing.T) {
	t.Parallel()
	plain := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	plainPort := portOf(t, plain.URL)
	serverCA, clientCA := testcert.NewCA(t, "receiver CA"), testcert.NewCA(t, "client CA")
	secure := testcert.StartReceiver(t, serverCA, clientCA)
	proxy := testproxy.Start(t, plainPort, secure.Port())

	b := startServerWith(t, true, func(c *server.Config) { c.EgressProxy = proxy.URL })
	const account = "acct_egress"
	plainHook := b.createWebhook(t, account, plain.URL+"/hook")
	certPEM, keyPEM := clientCA.Client(t, "webhook-egress", time.Now().Add(time.Hour))
	body, err := json.Marshal(map[string]any{"account_id": account, "url": secure.Server.URL + "/hook",
		"tls": map[string]string{"client_certificate": string(certPEM), "client_key": string(keyPEM), "ca_bundle": string(serverCA.PEM)}})
	require.NoError(t, err)
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: string(body)})
	require.Equal(t, http.StatusCreated, resp.status, "%s", resp.body)

	for i := range 3 {
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: fmt.Sprintf(`{"account_id":%q,"type":"egress_test","data":{"n":%d}}`, account, i)})
		require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
	}
	resp = b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + plainHook.ID + "/test", body: `{}`})
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.Contains(t, string(resp.body), `"succeeded":true`)

	plain.Wait(t, 4, 15*time.Second)
	testwait.For(t, 15*time.Second, func() (bool, string) {
		n := len(secure.Requests())
		return n >= 3, fmt.Sprintf("%d of 3 requests through the proxy", n)
	})
	for _, r := range secure.Requests() {
		require.Equal(t, "webhook-egress", r.CommonName)
	}
	// Every connection went through the proxy, to the checked IP. Kept-
	// alive connections carry several requests, so the proxy was asked
	// at least once for each receiver and never for anything else.
	connects := proxy.Connects(t)
	require.NotEmpty(t, connects)
	seen := map[string]bool{}
	for _, c := range connects {
		seen[c] = true
	}
	require.Equal(t, map[string]bool{fmt.Sprintf("127.0.0.2:%d", plainPort): true, fmt.Sprintf("127.0.0.2:%d", secure.Port()): true}, seen)
	// And no connection went around it: the receiver accepted no more
	// than the proxy was asked to open for it. (Fewer is possible: when
	// two attempts dial at once and one finishes on the first connection,
	// the transport may give up the second tunnel before tinyproxy has
	// connected it upstream.)
	tunnels := 0
	for _, c := range connects {
		if c == fmt.Sprintf("127.0.0.2:%d", secure.Port()) {
			tunnels++
		}
	}
	require.Positive(t, secure.Conns.Load())
	require.LessOrEqual(t, secure.Conns.Load(), int64(tunnels), "%d tunnels, %d connections: %v", tunnels, secure.Conns.Load(), connects)
}

// With the proxy down, a test send fails with error_kind proxy.
func TestEgressProxyDown(t *testing.T) {
	t.Parallel()
	plain := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	dead := &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", testproxy.FreePort(t))}
	b := startServerWith(t, true, func(c *server.Config) { c.EgressProxy = dead })
	hook := b.createWebhook(t, "acct_egress_down", plain.URL+"/hook")
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test", body: `{}`})
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.Contains(t, string(resp.body), `"error_kind":"proxy"`)
	require.Zero(t, plain.Count())
}

// With WEBHOOKD_EGRESS_PROXY the operator's notifications
// (WEBHOOKD_NOTIFY_URL) and a webhook's OAuth2 token fetches go through
// the proxy too, to the checked IP: every request webhookd makes to an
// endpoint leaves from the proxy's addresses.
func TestEgressProxyNotificationsAndTokens(t *testing.T) {
	t.Parallel()
	ops := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	oauth := testoauth.Start(t, "mono", "oauth-egress-secret")
	opsPort, tokenPort, receiverPort := portOf(t, ops.URL), portOf(t, oauth.Token.URL), portOf(t, oauth.Receiver.URL)
	proxy := testproxy.Start(t, opsPort, tokenPort, receiverPort)
	b := startServerWith(t, true, func(c *server.Config) {
		c.EgressProxy = proxy.URL
		c.NotifyURL, c.NotifySecret = ops.URL+"/ops", "whsec_operator-egress-secret"
	})
	const account = "acct_egress_more"
	tunnelsTo := func(port int) int {
		n := 0
		for _, c := range proxy.Connects(t) {
			if c == fmt.Sprintf("127.0.0.2:%d", port) {
				n++
			}
		}
		return n
	}

	create := func(t *testing.T, fields map[string]any) string {
		t.Helper()
		fields["account_id"] = account
		body, err := json.Marshal(fields)
		require.NoError(t, err)
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: string(body)})
		require.Equal(t, http.StatusCreated, resp.status, "%s", resp.body)
		var hook struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &hook))
		return hook.ID
	}

	t.Run("Notification", func(t *testing.T) {
		id := create(t, map[string]any{"url": "https://hooks.example.com/paused"})
		resp := b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + id, body: `{"paused":true}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		got := ops.Wait(t, 1, 15*time.Second)
		require.Equal(t, "webhook.paused", decodeNotification(t, got[0]).Event.Type)
		require.Positive(t, tunnelsTo(opsPort), "the notification went through the proxy: %v", proxy.Connects(t))
	})

	t.Run("TokenFetch", func(t *testing.T) {
		id := create(t, map[string]any{"url": oauth.Receiver.URL + "/hook", "oauth": map[string]any{
			"token_url": oauth.Token.URL + "/token", "client_id": "mono", "client_secret": "oauth-egress-secret", "auth_style": "header"}})
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + id + "/test", body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Contains(t, string(resp.body), `"succeeded":true`)
		require.Equal(t, int64(1), oauth.Fetches.Load())
		require.Equal(t, int64(1), oauth.Received.Load())
		require.Equal(t, 1, tunnelsTo(tokenPort), "the token fetch went through the proxy: %v", proxy.Connects(t))
		require.Equal(t, 1, tunnelsTo(receiverPort), "the test send went through the proxy: %v", proxy.Connects(t))
	})
}

// portOf is the port of a receiver's URL.
func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	return port
}
