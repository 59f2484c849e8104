package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdns"
	"github.com/mono/webhookd/internal/testreceiver"
)

// The tests only ever listen on and connect to 127.0.0.2 and ::1.
const (
	testHost4 = "127.0.0.2:0"
	testHost6 = "[::1]:0"
)

// recordedRequest is what a receiver saw of one request.
type recordedRequest struct {
	Body       []byte
	Header     http.Header
	Method     string
	Proto      string
	RequestURI string
}

// receiver is a webhook receiver on a real listener that records what it
// receives and counts the connections it accepts.
type receiver struct {
	server *httptest.Server

	conns    atomic.Int64
	mu       sync.Mutex
	requests []recordedRequest
}

// startReceiver starts an HTTP receiver listening on addr. A nil handler
// answers 200 "ok".
func startReceiver(t *testing.T, addr string, handler http.HandlerFunc) *receiver {
	t.Helper()
	r := newReceiver(t, addr, handler)
	r.server.Start()
	return r
}

// startTLSReceiver starts an HTTPS receiver (HTTP/2 enabled) listening on
// addr. Its certificate is valid for 127.0.0.1, ::1 and example.com.
func startTLSReceiver(t *testing.T, addr string, handler http.HandlerFunc) *receiver {
	t.Helper()
	r := newReceiver(t, addr, handler)
	r.server.EnableHTTP2 = true
	r.server.StartTLS()
	return r
}

func newReceiver(t *testing.T, addr string, handler http.HandlerFunc) *receiver {
	t.Helper()

	r := &receiver{}
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, recordedRequest{
			Body:       body,
			Header:     req.Header.Clone(),
			Method:     req.Method,
			Proto:      req.Proto,
			RequestURI: req.RequestURI,
		})
		r.mu.Unlock()
		if handler == nil {
			_, _ = io.WriteString(w, "ok")
			return
		}
		handler(w, req)
	}))
	server.Listener.Close()
	server.Listener = listen(t, addr)
	server.Config.ErrorLog = log.New(io.Discard, "", 0)
	server.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.server = server
	t.Cleanup(server.Close)
	return r
}

// URL returns the receiver's base URL, like http://127.0.0.2:41234.
func (r *receiver) URL() string { return r.server.URL }

// HostPort returns the receiver's address, like 127.0.0.2:41234.
func (r *receiver) HostPort() string { return r.server.Listener.Addr().String() }

// Port returns the receiver's port.
func (r *receiver) Port() int { return r.server.Listener.Addr().(*net.TCPAddr).Port }

// RootCAs returns a pool that trusts the receiver's certificate.
func (r *receiver) RootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(r.server.Certificate())
	return pool
}

func (r *receiver) Requests() []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedRequest(nil), r.requests...)
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	return ln
}

// startBlackHole starts a listener on 127.0.0.2 that accepts connections and
// never answers, and returns its address.
func startBlackHole(t *testing.T) string {
	t.Helper()

	ln := listen(t, testHost4)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	})
	return ln.Addr().String()
}

// refusedAddr returns an address on 127.0.0.2 where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln := listen(t, testHost4)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func newTestClient(t *testing.T, policy *Policy, cfg *ClientConfig) *Client {
	t.Helper()
	client, err := NewClient(policy, cfg)
	require.NoError(t, err)
	t.Cleanup(client.CloseIdleConnections)
	return client
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// requireNoConnection checks that r never accepted a connection. Another
// client then connects: connections are accepted in order, so a connection
// made earlier would have been counted first.
func requireNoConnection(t *testing.T, r *receiver) {
	t.Helper()
	require.Zero(t, r.conns.Load())

	probe := newTestClient(t, &Policy{AllowPrivate: true}, nil)
	scheme := "http"
	if r.server.TLS != nil {
		scheme = "https"
	}
	// Over TLS the probe fails verification; it connects either way.
	probe.Post(context.Background(), fmt.Sprintf("%s://%s/probe", scheme, r.HostPort()), nil, nil)
	require.Equal(t, int64(1), r.conns.Load(), "only the probe connected")
}

func TestClientPost(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		client   *Client
		receiver *receiver
	}

	setup := func(t *testing.T, handler http.HandlerFunc) *testBundle {
		t.Helper()
		return &testBundle{
			client:   newTestClient(t, &Policy{AllowPrivate: true}, nil),
			receiver: startReceiver(t, testHost4, handler),
		}
	}

	t.Run("HeadersAndBody", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, nil)

		body := []byte(`{"event":{"data":{"id":"1"},"type":"bank_transfer_approved"},"timestamp":"2022-12-29T15:42:08.325158Z"}`)
		header := http.Header{}
		header.Set("Mono-Signature", "t=1672774221,v1=abc")
		header.Set("Mono-Event-Id", "evt_123")

		result := bundle.client.Post(t.Context(), bundle.receiver.URL()+"/hooks/mono?account=acc_1&x=%20y", header, body)
		require.True(t, result.Succeeded(), "%+v", result)
		require.Equal(t, http.StatusOK, result.StatusCode)
		require.Empty(t, result.ErrorKind)
		require.Empty(t, result.ErrorMessage)
		require.Equal(t, []byte("ok"), result.ResponseExcerpt)
		require.Positive(t, result.Duration)

		requests := bundle.receiver.Requests()
		require.Len(t, requests, 1)
		req := requests[0]
		require.Equal(t, http.MethodPost, req.Method)
		require.Equal(t, "/hooks/mono?account=acc_1&x=%20y", req.RequestURI)
		require.Equal(t, body, req.Body)
		require.Equal(t, "application/json", req.Header.Get("Content-Type"))
		require.Equal(t, UserAgentDefault, req.Header.Get("User-Agent"))
		require.Equal(t, "t=1672774221,v1=abc", req.Header.Get("Mono-Signature"))
		require.Equal(t, "evt_123", req.Header.Get("Mono-Event-Id"))
		require.Equal(t, fmt.Sprint(len(body)), req.Header.Get("Content-Length"))
		require.Empty(t, req.Header.Get("Accept-Encoding"))
		require.Empty(t, header.Get("Content-Type"), "the caller's header is not modified")
	})

	t.Run("ConfiguredUserAgent", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, nil)
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{UserAgent: "Mono-Webhooks/1.2.3"})

		result := client.Post(t.Context(), bundle.receiver.URL(), nil, []byte(`{}`))
		require.True(t, result.Succeeded(), "%+v", result)
		require.Equal(t, "Mono-Webhooks/1.2.3", bundle.receiver.Requests()[0].Header.Get("User-Agent"))
	})

	t.Run("CallerHeadersWin", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, nil)

		header := http.Header{"Content-Type": {"application/cloudevents+json"}, "User-Agent": {"Custom/1"}}
		result := bundle.client.Post(t.Context(), bundle.receiver.URL(), header, []byte(`{}`))
		require.True(t, result.Succeeded(), "%+v", result)
		req := bundle.receiver.Requests()[0]
		require.Equal(t, "application/cloudevents+json", req.Header.Get("Content-Type"))
		require.Equal(t, "Custom/1", req.Header.Get("User-Agent"))
	})

	t.Run("SuccessStatuses", func(t *testing.T) {
		t.Parallel()

		for _, code := range []int{200, 201, 202, 204, 299} {
			bundle := setup(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) })
			result := bundle.client.Post(t.Context(), bundle.receiver.URL(), nil, nil)
			require.True(t, result.Succeeded(), "%d: %+v", code, result)
			require.Equal(t, code, result.StatusCode)
		}
	})

	t.Run("FailureStatus", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"busy"}`)
		})

		result := bundle.client.Post(t.Context(), bundle.receiver.URL(), nil, nil)
		require.False(t, result.Succeeded())
		require.Equal(t, http.StatusServiceUnavailable, result.StatusCode)
		require.Equal(t, ErrorKindHTTPStatus, result.ErrorKind)
		require.Equal(t, "the receiver answered with status 503 Service Unavailable", result.ErrorMessage)
		require.Equal(t, []byte(`{"error":"busy"}`), result.ResponseExcerpt)
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		t.Parallel()

		for _, code := range []int{301, 302, 303, 307, 308} {
			target := startReceiver(t, testHost4, nil)
			bundle := setup(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL()+"/stolen", code)
			})

			result := bundle.client.Post(t.Context(), bundle.receiver.URL(), nil, []byte(`{}`))
			require.False(t, result.Succeeded())
			require.Equal(t, code, result.StatusCode)
			require.Equal(t, ErrorKindHTTPStatus, result.ErrorKind)
			require.Contains(t, result.ErrorMessage, "redirects are not followed")
			require.Len(t, bundle.receiver.Requests(), 1)
			requireNoConnection(t, target)
		}
	})

	t.Run("HugeBodyReadOnlyToTheCap", func(t *testing.T) {
		t.Parallel()

		const bodySize = 10 << 20
		for _, code := range []int{http.StatusOK, http.StatusInternalServerError} {
			bundle := setup(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(bodySize))
				w.WriteHeader(code)
				chunk := []byte(strings.Repeat("x", 32<<10))
				for written := 0; written < bodySize; written += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			})
			var read atomic.Int64
			dial := bundle.client.transport.DialContext
			bundle.client.transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &countingConn{Conn: conn, read: &read}, nil
			}

			result := bundle.client.Post(t.Context(), bundle.receiver.URL(), nil, nil)
			require.Equal(t, code, result.StatusCode)
			require.Equal(t, code == http.StatusOK, result.Succeeded(), "%+v", result)
			require.Len(t, result.ResponseExcerpt, ExcerptSizeDefault)
			// The status line, headers and one buffer of read-ahead at most.
			require.LessOrEqual(t, read.Load(), int64(MaxResponseReadDefault+8<<10))
			require.GreaterOrEqual(t, read.Load(), int64(MaxResponseReadDefault))
		}
	})

	t.Run("ConfiguredReadAndExcerptSizes", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "0123456789abcdefghij")
		})
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{MaxResponseRead: 15, ExcerptSize: 5})

		result := client.Post(t.Context(), bundle.receiver.URL(), nil, nil)
		require.True(t, result.Succeeded())
		require.Equal(t, []byte("01234"), result.ResponseExcerpt)
	})

	t.Run("SuccessWhenTheBodyFails", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, func(w http.ResponseWriter, _ *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
			_ = buf.Flush()
		})

		result := bundle.client.Post(t.Context(), bundle.receiver.URL(), nil, nil)
		require.True(t, result.Succeeded(), "%+v", result)
		require.Equal(t, http.StatusOK, result.StatusCode)
		require.Equal(t, []byte("partial"), result.ResponseExcerpt)
	})

	t.Run("KeepAlive", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, nil)

		for range 3 {
			result := bundle.client.Post(t.Context(), bundle.receiver.URL(), nil, []byte(`{}`))
			require.True(t, result.Succeeded(), "%+v", result)
		}
		require.Equal(t, int64(1), bundle.receiver.conns.Load())
	})

	t.Run("IPv6Loopback", func(t *testing.T) {
		t.Parallel()
		r := startReceiver(t, testHost6, nil)
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		result := client.Post(t.Context(), r.URL(), nil, nil)
		require.True(t, result.Succeeded(), "%+v", result)
	})

	t.Run("ServerClosesConnection", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})

		result := bundle.client.Post(t.Context(), bundle.receiver.URL(), nil, nil)
		require.Zero(t, result.StatusCode)
		require.Equal(t, ErrorKindNetwork, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "the receiver closed the connection while waiting for the response", result.ErrorMessage)
	})

	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		result := client.Post(t.Context(), "http://"+refusedAddr(t)+"/", nil, nil)
		require.Zero(t, result.StatusCode)
		require.Equal(t, ErrorKindConnect, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "connection refused while connecting", result.ErrorMessage)
	})

	t.Run("InvalidURL", func(t *testing.T) {
		t.Parallel()
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		result := client.Post(t.Context(), "ftp://127.0.0.2/", nil, nil)
		require.Equal(t, ErrorKindInvalidURL, result.ErrorKind)
		require.Equal(t, "the webhook URL is not valid: the URL scheme is not supported: only https and http are", result.ErrorMessage)
	})

	t.Run("BlockedLiteralAddress", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t, nil)
		strict := newTestClient(t, nil, nil)

		result := strict.Post(t.Context(), bundle.receiver.URL()+"/hook", nil, []byte(`{}`))
		require.Zero(t, result.StatusCode)
		require.Equal(t, ErrorKindBlockedAddress, result.ErrorKind)
		require.Equal(t, BlockedMessage, result.ErrorMessage)
		require.Equal(t, "the host is a loopback address (127.0.0.0/8)", result.BlockedReason())
		requireNoConnection(t, bundle.receiver)
	})

	t.Run("UnresolvableHost", func(t *testing.T) {
		t.Parallel()
		resolver := testdns.Start(t, nil)
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{Resolver: resolver})

		result := client.Post(t.Context(), "http://missing.example.test/hook", nil, nil)
		require.Equal(t, ErrorKindDNS, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "the webhook host name could not be resolved: no such host", result.ErrorMessage)
	})
}

// The timing tests assert what must always hold: never early, and not much
// later than the deadline. The deadline is long enough that the connection to
// the black hole is established before it on a loaded CI machine (at 300 ms
// one dial did not finish in time there, and the message named the connect
// phase instead of the wait for the response).
func TestClientPostTimeouts(t *testing.T) {
	t.Parallel()

	const timeout = time.Second

	t.Run("ReceiverNeverAnswers", func(t *testing.T) {
		t.Parallel()
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{Timeout: timeout})

		result := client.Post(t.Context(), "http://"+startBlackHole(t)+"/hook", nil, []byte(`{}`))
		require.Zero(t, result.StatusCode)
		require.Equal(t, ErrorKindTimeout, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "the receiver did not answer within the timeout of 1s", result.ErrorMessage)
		require.GreaterOrEqual(t, result.Duration, timeout)
		require.Less(t, result.Duration, timeout+time.Second)
	})

	t.Run("SlowBodyAfterSuccessStatus", func(t *testing.T) {
		t.Parallel()
		r := startReceiver(t, testHost4, func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.WriteString(w, "start")
			_ = http.NewResponseController(w).Flush()
			<-req.Context().Done()
		})
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{Timeout: timeout})

		result := client.Post(t.Context(), r.URL(), nil, nil)
		require.True(t, result.Succeeded(), "the status line decides: %+v", result)
		require.Equal(t, []byte("start"), result.ResponseExcerpt)
		require.GreaterOrEqual(t, result.Duration, timeout)
		require.Less(t, result.Duration, timeout+time.Second)
	})

	t.Run("CallerDeadline", func(t *testing.T) {
		t.Parallel()
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		result := client.Post(ctx, "http://"+startBlackHole(t)+"/hook", nil, nil)
		require.Equal(t, ErrorKindTimeout, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "the receiver did not answer before the attempt's deadline", result.ErrorMessage)
		require.Less(t, result.Duration, timeout+time.Second)
	})

	t.Run("CallerCancels", func(t *testing.T) {
		t.Parallel()
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		time.AfterFunc(timeout, cancel)
		result := client.Post(ctx, "http://"+startBlackHole(t)+"/hook", nil, nil)
		require.Equal(t, ErrorKindCanceled, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "the attempt was canceled while waiting for the response", result.ErrorMessage)
		// The cancel timer starts just before Post does, so the attempt's
		// own clock can read a hair under timeout.
		require.GreaterOrEqual(t, result.Duration, timeout-50*time.Millisecond)
		require.Less(t, result.Duration, timeout+time.Second)
	})

	t.Run("AlreadyCanceled", func(t *testing.T) {
		t.Parallel()
		r := startReceiver(t, testHost4, nil)
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		result := client.Post(ctx, r.URL(), nil, nil)
		require.Equal(t, ErrorKindCanceled, result.ErrorKind, result.ErrorMessage)
	})
}

func TestClientDialTimeGuard(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		receiver4 *receiver
		receiver6 *receiver
		resolver  *net.Resolver
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{
			receiver4: startReceiver(t, testHost4, nil),
			receiver6: startReceiver(t, testHost6, nil),
			resolver: testdns.Start(t, map[string][]netip.Addr{
				"rebind.example.test": {netip.MustParseAddr("127.0.0.2")},
				"v6.example.test":     {netip.MustParseAddr("::1")},
			}),
		}
	}

	t.Run("HostNameResolvingToPrivateAddressIsRefused", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		client := newTestClient(t, nil, &ClientConfig{Resolver: bundle.resolver})

		for _, target := range []struct {
			url      string
			receiver *receiver
			reason   string
		}{
			{fmt.Sprintf("http://rebind.example.test:%d/hook", bundle.receiver4.Port()), bundle.receiver4, "the host resolved to 127.0.0.2, a loopback address (127.0.0.0/8)"},
			{fmt.Sprintf("http://v6.example.test:%d/hook", bundle.receiver6.Port()), bundle.receiver6, "the host resolved to ::1, a loopback address"},
		} {
			result := client.Post(t.Context(), target.url, nil, []byte(`{}`))
			require.Zero(t, result.StatusCode)
			require.Equal(t, ErrorKindBlockedAddress, result.ErrorKind, result.ErrorMessage)
			require.Equal(t, BlockedMessage, result.ErrorMessage)
			require.Equal(t, target.reason, result.BlockedReason())
			requireNoConnection(t, target.receiver)
		}
	})

	// What a host name resolved to is not the account's to know: a test
	// send would otherwise map the internal DNS. The attempt says "the
	// address is not allowed"; the range is kept for the server log. The
	// addresses are refused before connecting, so none is ever contacted.
	t.Run("ResolvedRangeIsNotNamed", func(t *testing.T) {
		t.Parallel()
		ranges := map[string]string{
			"10.20.30.40":     "a private network address (10.0.0.0/8)",
			"172.16.5.6":      "a private network address (172.16.0.0/12)",
			"100.64.1.2":      "a carrier-grade NAT (shared address space) address (100.64.0.0/10)",
			"169.254.169.254": "a link-local address (169.254.0.0/16)",
			"127.0.0.3":       "a loopback address (127.0.0.0/8)",
			"fd00::1":         "a unique local (private) address (fc00::/7)",
		}
		records := map[string][]netip.Addr{}
		for addr := range ranges {
			records[strings.ReplaceAll(addr, ":", "-")+".internal.example.test"] = []netip.Addr{netip.MustParseAddr(addr)}
		}
		client := newTestClient(t, nil, &ClientConfig{Resolver: testdns.Start(t, records)})

		for addr, what := range ranges {
			result := client.Post(t.Context(), "http://"+strings.ReplaceAll(addr, ":", "-")+".internal.example.test/hook?token=SECRET123", nil, []byte(`{}`))
			require.Equal(t, ErrorKindBlockedAddress, result.ErrorKind, result.ErrorMessage)
			require.Equal(t, "the address is not allowed: webhooks must be reachable on the public internet", result.ErrorMessage)
			require.NotContains(t, result.ErrorMessage, addr)
			require.NotContains(t, result.ErrorMessage, "/")
			require.Equal(t, "the host resolved to "+addr+", "+what, result.BlockedReason())
		}
	})

	t.Run("AllowPrivateReachesIt", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{Resolver: bundle.resolver})

		result := client.Post(t.Context(), fmt.Sprintf("http://rebind.example.test:%d/hook", bundle.receiver4.Port()), nil, nil)
		require.True(t, result.Succeeded(), "%+v", result)
		result = client.Post(t.Context(), fmt.Sprintf("http://v6.example.test:%d/hook", bundle.receiver6.Port()), nil, nil)
		require.True(t, result.Succeeded(), "%+v", result)
	})

	t.Run("AllowedCIDRReachesIt", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		policy := &Policy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
		client := newTestClient(t, policy, &ClientConfig{Resolver: bundle.resolver})

		result := client.Post(t.Context(), fmt.Sprintf("http://rebind.example.test:%d/hook", bundle.receiver4.Port()), nil, nil)
		require.True(t, result.Succeeded(), "%+v", result)
		result = client.Post(t.Context(), fmt.Sprintf("http://v6.example.test:%d/hook", bundle.receiver6.Port()), nil, nil)
		require.Equal(t, ErrorKindBlockedAddress, result.ErrorKind)
	})

	t.Run("ThePolicyIsCopied", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		policy := &Policy{}
		client := newTestClient(t, policy, &ClientConfig{Resolver: bundle.resolver})
		policy.AllowPrivate = true

		result := client.Post(t.Context(), fmt.Sprintf("http://rebind.example.test:%d/hook", bundle.receiver4.Port()), nil, nil)
		require.Equal(t, ErrorKindBlockedAddress, result.ErrorKind)
	})

	// The control function refuses forbidden addresses that a host name
	// resolves to. The dialer below aborts every dial after the control
	// function, so no address outside the test ranges is ever contacted.
	t.Run("ResolvedAddressesAreCheckedBeforeConnecting", func(t *testing.T) {
		t.Parallel()

		errWouldConnect := errors.New("the guard allowed the address")
		resolver := testdns.Start(t, map[string][]netip.Addr{
			"loopback.example.test": {netip.MustParseAddr("127.0.0.1")},
			"private.example.test":  {netip.MustParseAddr("10.0.0.1")},
			"metadata.example.test": {netip.MustParseAddr("169.254.169.254")},
			"mapped.example.test":   {netip.MustParseAddr("::ffff:10.0.0.1")},
			"nat64.example.test":    {netip.MustParseAddr("64:ff9b::a9fe:a9fe")},
			"public.example.test":   {netip.MustParseAddr("8.8.8.8")},
		})

		for _, tt := range []struct {
			policy  *Policy
			host    string
			allowed bool
		}{
			{nil, "loopback.example.test", false},
			{nil, "private.example.test", false},
			{nil, "metadata.example.test", false},
			{nil, "mapped.example.test", false},
			{nil, "nat64.example.test", false},
			{nil, "public.example.test", true},
			{&Policy{AllowPrivate: true}, "loopback.example.test", false},
			{&Policy{AllowPrivate: true}, "private.example.test", true},
			{&Policy{AllowPrivate: true}, "metadata.example.test", true},
			{&Policy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "loopback.example.test", false},
			{&Policy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "mapped.example.test", true},
		} {
			client := newTestClient(t, tt.policy, nil)
			dialer := &net.Dialer{
				Resolver: resolver,
				ControlContext: func(ctx context.Context, network, address string, raw syscall.RawConn) error {
					if err := client.control(ctx, network, address, raw); err != nil {
						return err
					}
					return errWouldConnect
				},
			}
			_, err := dialer.DialContext(t.Context(), "tcp", tt.host+":80")
			if tt.allowed {
				require.ErrorIs(t, err, errWouldConnect, tt.host)
				continue
			}
			require.ErrorIs(t, err, ErrBlockedAddress, tt.host)
			require.NotErrorIs(t, err, errWouldConnect, tt.host)
		}
	})

	t.Run("ControlFunction", func(t *testing.T) {
		t.Parallel()
		strict := newTestClient(t, nil, nil)
		lenient := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		for _, tt := range []struct {
			network, address       string
			strictOK, allowPrivate bool
		}{
			{"tcp4", "127.0.0.1:443", false, false},
			{"tcp4", "0.0.0.0:80", false, false},
			{"tcp6", "[::]:80", false, false},
			{"tcp6", "[::ffff:127.0.0.1]:80", false, false},
			{"tcp4", "127.0.0.2:443", false, true},
			{"tcp4", "10.0.0.1:443", false, true},
			{"tcp4", "169.254.169.254:80", false, true},
			{"tcp6", "[::1]:443", false, true},
			{"tcp6", "[::ffff:10.0.0.1]:80", false, true},
			{"tcp6", "[64:ff9b::a00:1]:80", false, true},
			{"tcp6", "[2002:a00:1::]:80", false, true},
			{"tcp6", "[fe80::1%eth0]:80", false, true},
			{"tcp4", "8.8.8.8:443", true, true},
			{"tcp6", "[2606:4700:4700::1111]:443", true, true},
			{"udp4", "8.8.8.8:53", false, false},
			{"tcp4", "not-an-address", false, false},
		} {
			for _, c := range []struct {
				client *Client
				ok     bool
			}{{strict, tt.strictOK}, {lenient, tt.allowPrivate}} {
				err := c.client.control(t.Context(), tt.network, tt.address, nil)
				if c.ok {
					require.NoError(t, err, tt.address)
				} else {
					require.ErrorIs(t, err, ErrBlockedAddress, tt.address)
				}
			}
		}
	})
}

func TestClientTLS(t *testing.T) {
	t.Parallel()

	t.Run("UnknownAuthority", func(t *testing.T) {
		t.Parallel()
		r := startTLSReceiver(t, testHost6, nil) // the certificate is valid for ::1
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		result := client.Post(t.Context(), r.URL()+"/hook", nil, nil)
		require.Zero(t, result.StatusCode)
		require.Equal(t, ErrorKindTLS, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "the TLS handshake failed: the certificate is signed by an unknown authority", result.ErrorMessage)
		require.Empty(t, r.Requests())
	})

	t.Run("WrongHost", func(t *testing.T) {
		t.Parallel()
		r := startTLSReceiver(t, testHost4, nil) // the certificate is for 127.0.0.1, ::1, example.com
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{TLSConfig: &tls.Config{RootCAs: r.RootCAs()}})

		result := client.Post(t.Context(), r.URL()+"/hook", nil, nil)
		require.Equal(t, ErrorKindTLS, result.ErrorKind, result.ErrorMessage)
		require.Equal(t, "the TLS handshake failed: the certificate is not valid for the webhook host", result.ErrorMessage)
		require.Empty(t, r.Requests())
	})

	t.Run("NotTLS", func(t *testing.T) {
		t.Parallel()
		r := startReceiver(t, testHost4, nil)
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)

		result := client.Post(t.Context(), "https://"+r.HostPort()+"/hook", nil, nil)
		require.Equal(t, ErrorKindTLS, result.ErrorKind, result.ErrorMessage)
		require.Empty(t, r.Requests())
	})

	t.Run("TrustedIPv6WithHTTP2", func(t *testing.T) {
		t.Parallel()
		r := startTLSReceiver(t, testHost6, nil)
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{TLSConfig: &tls.Config{RootCAs: r.RootCAs()}})

		result := client.Post(t.Context(), r.URL()+"/hook", nil, []byte(`{}`))
		require.True(t, result.Succeeded(), "%+v", result)
		require.Equal(t, "HTTP/2.0", r.Requests()[0].Proto)
	})

	t.Run("TrustedHostName", func(t *testing.T) {
		t.Parallel()
		r := startTLSReceiver(t, testHost4, nil)
		resolver := testdns.Start(t, map[string][]netip.Addr{"example.com": {netip.MustParseAddr("127.0.0.2")}})
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{
			Resolver:  resolver,
			TLSConfig: &tls.Config{RootCAs: r.RootCAs()},
		})

		result := client.Post(t.Context(), fmt.Sprintf("https://example.com:%d/hook", r.Port()), nil, []byte(`{}`))
		require.True(t, result.Succeeded(), "%+v", result)
		require.Equal(t, "HTTP/2.0", r.Requests()[0].Proto)
	})

	t.Run("MinimumVersion", func(t *testing.T) {
		t.Parallel()
		client := newTestClient(t, nil, &ClientConfig{TLSConfig: &tls.Config{MinVersion: tls.VersionTLS10}})
		require.Equal(t, uint16(tls.VersionTLS12), client.transport.TLSClientConfig.MinVersion)
		require.False(t, client.transport.TLSClientConfig.InsecureSkipVerify)

		client = newTestClient(t, nil, &ClientConfig{TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13}})
		require.Equal(t, uint16(tls.VersionTLS13), client.transport.TLSClientConfig.MinVersion)
	})
}

// Not parallel: it sets environment variables.
func TestClientIgnoresProxyEnvironment(t *testing.T) {
	proxy := startReceiver(t, testHost4, nil)
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"} {
		t.Setenv(name, proxy.URL())
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	plain := startReceiver(t, testHost4, nil)
	secure := startTLSReceiver(t, testHost4, nil)
	// Proxies are never used for loopback literals, whatever the
	// environment says, so the receivers are reached through host names.
	resolver := testdns.Start(t, map[string][]netip.Addr{
		"hooks.example.test": {netip.MustParseAddr("127.0.0.2")},
		"example.com":        {netip.MustParseAddr("127.0.0.2")},
	})
	client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{
		Resolver:  resolver,
		TLSConfig: &tls.Config{RootCAs: secure.RootCAs()},
	})
	require.Nil(t, client.transport.Proxy)

	result := client.Post(t.Context(), fmt.Sprintf("http://hooks.example.test:%d/hook", plain.Port()), nil, []byte(`{}`))
	require.True(t, result.Succeeded(), "%+v", result)
	require.Len(t, plain.Requests(), 1)

	result = client.Post(t.Context(), fmt.Sprintf("https://example.com:%d/hook", secure.Port()), nil, []byte(`{}`))
	require.True(t, result.Succeeded(), "%+v", result)
	require.Len(t, secure.Requests(), 1)

	require.Zero(t, proxy.conns.Load())
}

// Customers put tokens in query strings (and paths): no error message may
// repeat any part of the URL.
func TestClientErrorMessagesNeverContainTheURL(t *testing.T) {
	t.Parallel()

	const (
		querySecret = "SECRET123"
		pathSecret  = "PATHSECRET456"
		suffix      = "/hooks/" + pathSecret + "?token=" + querySecret
	)

	resolver := testdns.Start(t, map[string][]netip.Addr{
		"rebind.example.test": {netip.MustParseAddr("127.0.0.2")},
		"example.com":         {netip.MustParseAddr("127.0.0.2")},
	})
	plain := startReceiver(t, testHost4, nil)
	tlsReceiver := startTLSReceiver(t, testHost4, nil)
	redirecting := startReceiver(t, testHost4, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.2:1"+suffix, http.StatusFound)
	})
	closing := startReceiver(t, testHost4, func(w http.ResponseWriter, _ *http.Request) {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	blackHole := startBlackHole(t)

	// 2 s: long enough for a TLS handshake on a loaded CI machine (300 ms
	// once timed out before the certificate was refused), short for the
	// black-hole case, which waits it out.
	lenient := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{Resolver: resolver, Timeout: 2 * time.Second})
	trusting := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{Resolver: resolver, TLSConfig: &tls.Config{RootCAs: tlsReceiver.RootCAs()}})
	strict := newTestClient(t, nil, &ClientConfig{Resolver: resolver})

	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name   string
		client *Client
		ctx    context.Context
		url    string
		kind   string
	}{
		{"BlockedLiteral", strict, t.Context(), plain.URL() + suffix, ErrorKindBlockedAddress},
		{"BlockedAtDial", strict, t.Context(), fmt.Sprintf("http://rebind.example.test:%d%s", plain.Port(), suffix), ErrorKindBlockedAddress},
		{"Connect", lenient, t.Context(), "http://" + refusedAddr(t) + suffix, ErrorKindConnect},
		{"DNS", lenient, t.Context(), "http://missing.example.test" + suffix, ErrorKindDNS},
		{"TLSUnknownAuthority", lenient, t.Context(), fmt.Sprintf("https://example.com:%d%s", tlsReceiver.Port(), suffix), ErrorKindTLS},
		{"TLSWrongHost", trusting, t.Context(), fmt.Sprintf("https://rebind.example.test:%d%s", tlsReceiver.Port(), suffix), ErrorKindTLS},
		{"TLSNotTLS", lenient, t.Context(), fmt.Sprintf("https://rebind.example.test:%d%s", plain.Port(), suffix), ErrorKindTLS},
		{"Timeout", lenient, t.Context(), "http://" + blackHole + suffix, ErrorKindTimeout},
		{"Canceled", lenient, canceled, plain.URL() + suffix, ErrorKindCanceled},
		{"HTTPStatus", lenient, t.Context(), redirecting.URL() + suffix, ErrorKindHTTPStatus},
		{"Network", lenient, t.Context(), closing.URL() + suffix, ErrorKindNetwork},
		{"InvalidURL", lenient, t.Context(), "http://127.0.0.2:0" + suffix, ErrorKindInvalidURL},
		{"InvalidURLUserinfo", lenient, t.Context(), "http://user:" + querySecret + "@127.0.0.2" + suffix, ErrorKindInvalidURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			result := tt.client.Post(tt.ctx, tt.url, nil, nil)
			require.Equal(t, tt.kind, result.ErrorKind, result.ErrorMessage)
			require.NotEmpty(t, result.ErrorMessage)
			for _, part := range []string{querySecret, pathSecret, "token=", "/hooks", "127.0.0.2", "example", fmt.Sprint(plain.Port())} {
				require.NotContains(t, result.ErrorMessage, part)
			}
			for _, part := range []string{querySecret, pathSecret, "token=", "/hooks", "example"} {
				require.NotContains(t, result.BlockedReason(), part, "the server log names no part of the URL")
			}
		})
	}
}

func TestNewClient(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		client, err := NewClient(nil, nil)
		require.NoError(t, err)

		require.Equal(t, &ClientConfig{
			ConnectTimeout:      ConnectTimeoutDefault,
			ExcerptSize:         ExcerptSizeDefault,
			MaxIdleConnsPerHost: MaxIdleConnsPerHostDefault,
			MaxResponseRead:     MaxResponseReadDefault,
			Timeout:             TimeoutDefault,
			TLSHandshakeTimeout: TLSHandshakeTimeoutDefault,
			UserAgent:           UserAgentDefault,
			MaxTLSTransports:    MaxTLSTransportsDefault,
		}, client.cfg)
		require.Equal(t, &Policy{}, client.policy)

		transport := client.transport
		require.Nil(t, transport.Proxy)
		require.True(t, transport.ForceAttemptHTTP2)
		require.Equal(t, MaxIdleConnsPerHostDefault, transport.MaxIdleConnsPerHost)
		require.NotNil(t, transport.TLSClientConfig.ClientSessionCache)
		require.Equal(t, TLSHandshakeTimeoutDefault, transport.TLSHandshakeTimeout)
		require.Equal(t, uint16(tls.VersionTLS12), transport.TLSClientConfig.MinVersion)
		require.ErrorIs(t, client.httpClient.CheckRedirect(nil, nil), http.ErrUseLastResponse)
	})

	t.Run("ConnectTimeoutCappedAtTimeout", func(t *testing.T) {
		t.Parallel()
		cfg := (&ClientConfig{Timeout: time.Second}).WithDefaults()
		require.Equal(t, time.Second, cfg.ConnectTimeout)
		require.Equal(t, ExcerptSizeDefault, cfg.ExcerptSize)

		cfg = (&ClientConfig{MaxResponseRead: 100}).WithDefaults()
		require.Equal(t, 100, cfg.ExcerptSize)
	})

	t.Run("InvalidConfig", func(t *testing.T) {
		t.Parallel()

		for _, tt := range []struct {
			cfg  *ClientConfig
			want string
		}{
			{&ClientConfig{Timeout: -1}, "ClientConfig.Timeout"},
			{&ClientConfig{ConnectTimeout: -1}, "ClientConfig.ConnectTimeout"},
			{&ClientConfig{TLSHandshakeTimeout: -1}, "ClientConfig.TLSHandshakeTimeout"},
			{&ClientConfig{MaxResponseRead: -1}, "ClientConfig.MaxResponseRead"},
			{&ClientConfig{ExcerptSize: -1}, "ClientConfig.ExcerptSize"},
			{&ClientConfig{MaxResponseRead: 10, ExcerptSize: 11}, "ClientConfig.ExcerptSize"},
			{&ClientConfig{MaxIdleConnsPerHost: -1}, "ClientConfig.MaxIdleConnsPerHost"},
			{&ClientConfig{TLSConfig: &tls.Config{InsecureSkipVerify: true}}, "InsecureSkipVerify"}, //nolint:gosec // Refused.
		} {
			_, err := NewClient(nil, tt.cfg)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "error validating client config: ")
		}
	})
}

func TestResultSucceeded(t *testing.T) {
	t.Parallel()

	tests := []struct {
		result Result
		want   bool
	}{
		{Result{StatusCode: 200}, true},
		{Result{StatusCode: 204}, true},
		{Result{StatusCode: 299}, true},
		{Result{StatusCode: 199}, false},
		{Result{StatusCode: 300}, false},
		{Result{StatusCode: 500}, false},
		{Result{}, false},
		{Result{StatusCode: 200, ErrorKind: ErrorKindHTTPStatus}, false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.result.Succeeded(), "%+v", tt.result)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()

	const raw = "https://Hooks.Example.com:8443/services/T0KEN-PATH/x?token=SECRET123&v=1"
	normalized, err := (&Policy{}).ValidateURL(raw)
	require.NoError(t, err)

	tests := []struct {
		text string
		want string
	}{
		{`Post "` + raw + `": EOF`, `Post "[redacted]": EOF`},
		{`Post "` + normalized + `": EOF`, `Post "[redacted]": EOF`},
		{"dial tcp hooks.example.com:8443: refused", "dial tcp [redacted]: refused"},
		{"lookup hooks.example.com failed", "lookup [redacted] failed"},
		{"bad value SECRET123", "bad value [redacted]"},
		{"bad path /services/T0KEN-PATH/x", "bad path [redacted]"},
		{"segment T0KEN-PATH", "segment [redacted]"},
		{"v=1 is short and kept", "v=1 is short and kept"},
		{"connection reset by peer", "connection reset by peer"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, redact(tt.text, raw, normalized))
	}
}

func TestDNSReason(t *testing.T) {
	t.Parallel()

	for text, want := range map[string]string{
		"read udp 10.0.0.2:41000->10.0.0.53:53: read: connection refused": "connection refused",
		"dial udp [fd00::53]:53: connect: network is unreachable":         "network is unreachable",
		"server misbehaving": "server misbehaving",
	} {
		require.Equal(t, want, dnsReason(text), text)
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()

	const raw = "http://127.0.0.2:9/hook?token=SECRET123"
	err := &url.Error{Op: "Post", URL: raw, Err: &net.OpError{
		Op:   "read",
		Net:  "tcp",
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9},
		Err:  errors.New("connection reset by peer"),
	}}
	require.Equal(t, "read: connection reset by peer", errorText(err))
	require.Equal(t, "EOF", errorText(&url.Error{Op: "Post", URL: raw, Err: io.EOF}))
}

// A URL's verdict is remembered per client: a refused URL stays refused on
// every attempt, without a connection, and the map stays bounded.
func TestClientRemembersURLVerdicts(t *testing.T) {
	t.Parallel()
	recv := startReceiver(t, testHost4, nil)
	client := newTestClient(t, nil, nil)
	url := fmt.Sprintf("http://127.0.0.2:%d/hook", recv.Port())
	for range 3 {
		result := client.Post(t.Context(), url, nil, []byte(`{}`))
		require.Equal(t, ErrorKindBlockedAddress, result.ErrorKind, result.ErrorMessage)
	}
	requireNoConnection(t, recv)
	client.urls.mu.RLock()
	require.Len(t, client.urls.m, 1)
	client.urls.mu.RUnlock()

	for i := range urlVerdictsMax + 5 {
		_, _ = client.validateURL(fmt.Sprintf("https://example.com/%d", i))
	}
	client.urls.mu.RLock()
	defer client.urls.mu.RUnlock()
	require.LessOrEqual(t, len(client.urls.m), urlVerdictsMax)

	allowed := newTestClient(t, &Policy{AllowPrivate: true}, nil)
	for range 2 {
		result := allowed.Post(t.Context(), url, nil, []byte(`{}`))
		require.True(t, result.Succeeded(), "%+v", result)
	}
}

// A receiver that resets the connection after reading the request is a
// network failure (the connection was up), not a failure to connect.
func TestClientResetAfterRequestIsNetwork(t *testing.T) {
	t.Parallel()
	addr := testreceiver.Raw(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		_, _ = c.Read(buf) // the request has arrived
		_ = c.(*net.TCPConn).SetLinger(0)
		// Closed on return, with linger 0: a reset.
	})
	client := newTestClient(t, &Policy{AllowPrivate: true}, nil)
	result := client.Post(t.Context(), "http://"+addr+"/hook", nil, []byte(`{}`))
	require.Zero(t, result.StatusCode)
	require.Equal(t, ErrorKindNetwork, result.ErrorKind, result.ErrorMessage)
	require.Contains(t, []string{
		"connection reset by peer while waiting for the response",
		"connection reset by peer while sending the request",
		"the receiver closed the connection while waiting for the response",
	}, result.ErrorMessage)
}
