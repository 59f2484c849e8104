package outbound

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testcert"
)

// With the default MaxIdleConnsPerHost, a client keeps a connection for
// every attempt it had under way at once to one receiver: a second wave as
// wide as the first reuses them all and opens none, on the shared
// transport and on a webhook's own (mutual TLS, HTTP/1.1) transport. With
// the 100 idle connections per host kept before, each wave of 120 opened
// 20 connections (and so 20 TLS handshakes) again. The timeouts are
// generous: 120 handshakes at once under -race on a loaded machine are slow.
func TestClientKeepsAConnectionPerConcurrentAttempt(t *testing.T) {
	t.Parallel()
	const width = 120

	type testBundle struct {
		server *httptest.Server
		conns  atomic.Int64
	}
	// setup starts a receiver on 127.0.0.2 that holds every request until
	// width of them have arrived, so each wave has width attempts under
	// way at once (bounded: a request waits at most 60 s).
	setup := func(t *testing.T, tlsConfig *tls.Config) *testBundle {
		t.Helper()
		b := &testBundle{}
		var (
			mu      sync.Mutex
			arrived int
			release = make(chan struct{})
		)
		b.server = httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			mu.Lock()
			arrived++
			wave := release
			if arrived == width {
				close(release)
				arrived, release = 0, make(chan struct{})
			}
			mu.Unlock()
			select {
			case <-wave:
			case <-time.After(60 * time.Second):
			}
		}))
		b.server.Listener.Close()
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		b.server.Listener = ln
		b.server.Config.ErrorLog = log.New(io.Discard, "", 0)
		b.server.Config.ConnState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				b.conns.Add(1)
			}
		}
		if tlsConfig != nil {
			b.server.TLS = tlsConfig
			b.server.StartTLS()
		} else {
			b.server.Start()
		}
		t.Cleanup(b.server.Close)
		return b
	}
	generous := &ClientConfig{Timeout: 90 * time.Second, ConnectTimeout: 30 * time.Second, TLSHandshakeTimeout: 60 * time.Second}
	wave := func(t *testing.T, client *Client, url string, opts *PostOptions) {
		t.Helper()
		results := make([]*Result, width)
		var wg sync.WaitGroup
		for i := range width {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = client.PostWith(t.Context(), url, nil, []byte(`{}`), opts)
			}()
		}
		wg.Wait()
		for _, res := range results {
			require.True(t, res.Succeeded(), "%+v", res)
		}
	}

	t.Run("SharedTransport", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		client := newTestClient(t, &Policy{AllowPrivate: true}, generous)
		wave(t, client, b.server.URL+"/hook", nil)
		require.Equal(t, int64(width), b.conns.Load())
		wave(t, client, b.server.URL+"/hook", nil)
		require.Equal(t, int64(width), b.conns.Load(), "the second wave reused the first's connections")
	})

	t.Run("WebhookTLSTransport", func(t *testing.T) {
		t.Parallel()
		serverCA, clientCA := testcert.NewCA(t, "receiver CA"), testcert.NewCA(t, "client CA")
		b := setup(t, testcert.ServerConfig(t, serverCA, clientCA))
		client := newTestClient(t, &Policy{AllowPrivate: true}, generous)
		clientCert, clientKey := clientCA.Client(t, "webhook-a", time.Now().Add(time.Hour))
		opts := &PostOptions{TLS: &TLSMaterial{CertificatePEM: clientCert, KeyPEM: clientKey, CABundlePEM: serverCA.PEM}}
		wave(t, client, b.server.URL+"/hook", opts)
		require.Equal(t, int64(width), b.conns.Load())
		wave(t, client, b.server.URL+"/hook", opts)
		require.Equal(t, int64(width), b.conns.Load(), "the second wave reused the first's connections")
	})
}
