package outbound

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testcert"
	"github.com/mono/webhookd/internal/testdns"
	"github.com/mono/webhookd/internal/testproxy"
)

func TestClientEgressProxy(t *testing.T) {
	t.Parallel()

	var (
		mu    sync.Mutex
		hosts []string
	)
	recordHost := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
	}
	plain := startReceiver(t, testHost4, recordHost)
	secure := startTLSReceiver(t, testHost4, recordHost) // valid for example.com
	serverCA, clientCA := testcert.NewCA(t, "receiver CA"), testcert.NewCA(t, "client CA")
	mutual := testcert.StartReceiver(t, serverCA, clientCA)
	mutualPortOnly := mutual.Port()
	closed := startReceiver(t, testHost4, nil) // its port is not allowed by the proxy

	proxy := testproxy.Start(t, plain.Port(), secure.Port(), mutualPortOnly)
	resolver := testdns.Start(t, map[string][]netip.Addr{
		"hooks.example.test":  {netip.MustParseAddr("127.0.0.2")},
		"example.com":         {netip.MustParseAddr("127.0.0.2")},
		"rebind.example.test": {netip.MustParseAddr("127.0.0.5")},
		"always.example.test": {netip.MustParseAddr("127.0.0.1")},
	})
	// 127.0.0.2 is the only non-public address allowed: the test's
	// stand-in for the public internet.
	policy := &Policy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	client := newTestClient(t, policy, &ClientConfig{
		EgressProxy: proxy.URL,
		Resolver:    resolver,
		TLSConfig:   &tls.Config{RootCAs: secure.RootCAs()},
	})

	t.Run("PlainHTTP", func(t *testing.T) {
		res := client.Post(t.Context(), fmt.Sprintf("http://hooks.example.test:%d/hook", plain.Port()), nil, []byte(`{}`))
		require.True(t, res.Succeeded(), "%+v", res)
	})

	t.Run("HTTPS", func(t *testing.T) {
		// CONNECT to the checked IP; SNI, verification and Host stay
		// example.com's.
		res := client.Post(t.Context(), fmt.Sprintf("https://example.com:%d/hook", secure.Port()), nil, []byte(`{}`))
		require.True(t, res.Succeeded(), "%+v", res)
		require.Equal(t, "HTTP/2.0", secure.Requests()[0].Proto)
	})

	t.Run("MutualTLS", func(t *testing.T) {
		certPEM, keyPEM := clientCA.Client(t, "webhook-a", time.Now().Add(time.Hour))
		res := client.PostWith(t.Context(), fmt.Sprintf("https://hooks.example.test:%d/hook", mutualPortOnly), nil, []byte(`{}`),
			&PostOptions{TLS: &TLSMaterial{CertificatePEM: certPEM, KeyPEM: keyPEM, CABundlePEM: serverCA.PEM}})
		require.True(t, res.Succeeded(), "%+v", res)
		require.Equal(t, []string{"webhook-a"}, mutual.CommonNames())
	})

	t.Run("ProxySawEveryAttemptByIP", func(t *testing.T) {
		require.Equal(t, []string{
			fmt.Sprintf("127.0.0.2:%d", plain.Port()),
			fmt.Sprintf("127.0.0.2:%d", secure.Port()),
			fmt.Sprintf("127.0.0.2:%d", mutualPortOnly),
		}, proxy.Connects(t))
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []string{fmt.Sprintf("hooks.example.test:%d", plain.Port()), fmt.Sprintf("example.com:%d", secure.Port())}, hosts)
	})

	t.Run("TokenFetchThroughTheProxy", func(t *testing.T) {
		client.CloseIdleConnections() // a new connection for the token request
		before := len(proxy.Connects(t))
		auth := client.Authorizer("wh_egress", &OAuthConfig{TokenURL: fmt.Sprintf("http://hooks.example.test:%d/token", plain.Port()),
			ClientID: "id", ClientSecret: "secret", AuthStyle: OAuthAuthStyleBody})
		res := client.PostWith(t.Context(), fmt.Sprintf("http://hooks.example.test:%d/hook", plain.Port()), nil, []byte(`{}`), &PostOptions{Authorize: auth})
		// The plain receiver answers the token request with "ok", no token.
		require.Equal(t, ErrorKindOAuthToken, res.ErrorKind, res.ErrorMessage)
		require.Contains(t, res.ErrorMessage, "without an access_token")
		require.Greater(t, len(proxy.Connects(t)), before, "the token request went through the proxy")
	})

	t.Run("RebindRefusedBeforeTheProxy", func(t *testing.T) {
		before := len(proxy.Connects(t))
		for _, host := range []string{"rebind.example.test", "always.example.test"} {
			res := client.Post(t.Context(), fmt.Sprintf("http://%s:%d/hook", host, plain.Port()), nil, []byte(`{}`))
			require.Equal(t, ErrorKindBlockedAddress, res.ErrorKind, res.ErrorMessage)
			require.Equal(t, BlockedMessage, res.ErrorMessage)
			require.Contains(t, res.BlockedReason(), "the host resolved to 127.0.0.")
		}
		// A literal address too.
		res := client.Post(t.Context(), fmt.Sprintf("http://127.0.0.5:%d/hook", plain.Port()), nil, []byte(`{}`))
		require.Equal(t, ErrorKindBlockedAddress, res.ErrorKind, res.ErrorMessage)
		require.Len(t, proxy.Connects(t), before, "the proxy was never asked")
	})

	t.Run("ProxyRefusesPort", func(t *testing.T) {
		res := client.Post(t.Context(), fmt.Sprintf("http://hooks.example.test:%d/hook", closed.Port()), nil, []byte(`{}`))
		require.Equal(t, ErrorKindProxy, res.ErrorKind, res.ErrorMessage)
		require.Equal(t, "the egress proxy refused the tunnel: 403 Access violation", res.ErrorMessage)
		require.Empty(t, closed.Requests())
	})

	t.Run("ReceiverDownBehindProxy", func(t *testing.T) {
		down := testproxy.Start(t, 1)
		c := newTestClient(t, policy, &ClientConfig{EgressProxy: down.URL, Resolver: resolver})
		res := c.Post(t.Context(), "http://hooks.example.test:1/hook", nil, []byte(`{}`))
		require.Equal(t, ErrorKindConnect, res.ErrorKind, res.ErrorMessage)
		require.NotContains(t, res.ErrorMessage, "127.0.0.2")
	})

	t.Run("ProxyDown", func(t *testing.T) {
		dead := &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", testproxy.FreePort(t))}
		c := newTestClient(t, policy, &ClientConfig{EgressProxy: dead, Resolver: resolver})
		res := c.Post(t.Context(), fmt.Sprintf("http://hooks.example.test:%d/hook", plain.Port()), nil, []byte(`{}`))
		require.Equal(t, ErrorKindProxy, res.ErrorKind, res.ErrorMessage)
		require.Contains(t, res.ErrorMessage, "could not connect to the egress proxy")
	})
}

func TestParseEgressProxy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		raw string
		ok  bool
	}{
		{"http://squid.internal:3128", true},
		{"http://user:pw@10.0.0.1:3128/", true},
		{"https://squid.internal:3128", false},
		{"socks5://squid.internal:1080", false},
		{"http://squid.internal", false},
		{"http://squid.internal:3128/path", false},
		{"squid.internal:3128", false},
	} {
		_, err := ParseEgressProxy(tt.raw)
		require.Equal(t, tt.ok, err == nil, "%s: %v", tt.raw, err)
	}
}
