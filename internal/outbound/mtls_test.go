package outbound

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testcert"
)

func TestClientMutualTLS(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		serverCA, clientCA *testcert.CA
		receiver           *testcert.Receiver
		client             *Client
		url                string
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		b := &testBundle{serverCA: testcert.NewCA(t, "receiver private CA"), clientCA: testcert.NewCA(t, "client CA")}
		b.receiver = testcert.StartReceiver(t, b.serverCA, b.clientCA)
		b.client = newTestClient(t, &Policy{AllowPrivate: true}, nil)
		b.url = b.receiver.Server.URL + "/hook"
		return b
	}
	material := func(b *testBundle, ca *testcert.CA, cn string, notAfter time.Time) *TLSMaterial {
		certPEM, keyPEM := ca.Client(t, cn, notAfter)
		return &TLSMaterial{CertificatePEM: certPEM, KeyPEM: keyPEM, CABundlePEM: b.serverCA.PEM}
	}
	tomorrow := time.Now().Add(24 * time.Hour)

	// A fresh client's first requests on its shared transport and on a
	// webhook's own transport may start at once: building the webhook's
	// transport must not read the shared one's TLS config while its first
	// request writes it (go test -race found this).
	t.Run("FirstRequestsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		plain := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		plain.Listener = ln
		plain.Start()
		t.Cleanup(plain.Close)
		m := material(b, b.clientCA, "webhook-a", tomorrow)
		var wg sync.WaitGroup
		results := make([]*Result, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			results[0] = b.client.PostWith(t.Context(), plain.URL+"/", nil, []byte(`{}`), nil)
		}()
		go func() {
			defer wg.Done()
			results[1] = b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: m})
		}()
		wg.Wait()
		for _, res := range results {
			require.True(t, res.Succeeded(), "%+v", res)
		}
	})

	t.Run("GoodCertificate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: material(b, b.clientCA, "webhook-a", tomorrow)})
		require.True(t, res.Succeeded(), "%+v", res)
		require.Equal(t, []string{"webhook-a"}, b.receiver.CommonNames())
	})

	t.Run("PrivateCAWithoutBundle", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m := material(b, b.clientCA, "webhook-a", tomorrow)
		m.CABundlePEM = nil
		res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: m})
		require.Equal(t, ErrorKindTLS, res.ErrorKind, res.ErrorMessage)
		require.Equal(t, "the TLS handshake failed: the certificate is signed by an unknown authority", res.ErrorMessage)
	})

	t.Run("MissingCertificate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: &TLSMaterial{CABundlePEM: b.serverCA.PEM}})
		// The receiver's alert races our request: usually read as the
		// TLS alert, sometimes the write hits the closed connection first.
		require.Contains(t, []string{ErrorKindTLS, ErrorKindNetwork}, res.ErrorKind, res.ErrorMessage)
		require.Regexp(t, "certificate required|does it require a client certificate|broken pipe|connection reset|closed the connection", res.ErrorMessage)
		require.Empty(t, b.receiver.CommonNames())
	})

	t.Run("WrongCA", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: material(b, testcert.NewCA(t, "another CA"), "webhook-a", tomorrow)})
		require.Equal(t, ErrorKindTLS, res.ErrorKind, res.ErrorMessage)
		// The receiver asks for certificates of its CA; Go offers none of
		// another, and the receiver refuses the handshake.
		require.Contains(t, res.ErrorMessage, "certificate required")
		require.Empty(t, b.receiver.CommonNames())
	})

	t.Run("ExpiredCertificate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: material(b, b.clientCA, "webhook-a", time.Now().Add(-time.Hour))})
		require.Equal(t, ErrorKindClientCertificateExpired, res.ErrorKind, res.ErrorMessage)
		require.Zero(t, b.receiver.Conns.Load(), "checked before dialing")
	})

	t.Run("TwoCertificatesSameHost", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, c := material(b, b.clientCA, "webhook-a", tomorrow), material(b, b.clientCA, "webhook-b", tomorrow)
		var want []string
		for i := range 10 {
			m, cn := a, "webhook-a"
			if i%3 == 1 {
				m, cn = c, "webhook-b"
			}
			res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: m})
			require.True(t, res.Succeeded(), "%+v", res)
			want = append(want, cn)
		}
		// And concurrently, each on its own connections.
		var wg sync.WaitGroup
		for i := range 20 {
			m := a
			if i%2 == 1 {
				m = c
			}
			wg.Go(func() {
				res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: m})
				require.True(t, res.Succeeded(), "%+v", res)
			})
		}
		wg.Wait()
		got := b.receiver.CommonNames()
		require.Equal(t, want, got[:10], "each request arrives with its own webhook's certificate")
		require.Len(t, got, 30)
		countA := 0
		for _, cn := range got[10:] {
			if cn == "webhook-a" {
				countA++
			}
		}
		require.Equal(t, 10, countA)
		require.Equal(t, 2, b.client.tls.len())
		// Keep-alive still works per configuration: far fewer connections
		// than requests.
		require.Less(t, b.receiver.Conns.Load(), int64(30))

		// The default path (no TLS settings) never borrows them: no client
		// certificate, refused.
		res := b.client.Post(t.Context(), b.url, nil, []byte(`{}`))
		require.Equal(t, ErrorKindTLS, res.ErrorKind, res.ErrorMessage)
	})

	// A TLSRef opens its material once per transport, however many
	// attempts use it; a changed setting (a new digest) is opened and
	// presented at its next attempt; two refs with different certificates
	// each present their own, at once; a ref that can't be opened fails
	// the attempt with its own result, having dialled nothing.
	t.Run("Refs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		type counted struct {
			ref   *TLSRef
			loads atomic.Int64
		}
		refOf := func(id string, m *TLSMaterial) *counted {
			c := &counted{}
			c.ref = &TLSRef{ID: TLSRefID([]byte(id)), Load: func() (*TLSMaterial, *Result) {
				c.loads.Add(1)
				return m, nil
			}}
			return c
		}
		a1 := refOf("hook-a v1", material(b, b.clientCA, "webhook-a", tomorrow))
		a2 := refOf("hook-a v2", material(b, b.clientCA, "webhook-a2", tomorrow))
		c := refOf("hook-c", material(b, b.clientCA, "webhook-c", tomorrow))
		post := func(r *counted) *Result {
			return b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLSRef: r.ref})
		}
		for range 5 {
			require.True(t, post(a1).Succeeded())
		}
		require.Equal(t, int64(1), a1.loads.Load(), "opened once")
		require.Equal(t, []string{"webhook-a", "webhook-a", "webhook-a", "webhook-a", "webhook-a"}, b.receiver.CommonNames())

		// The webhook's setting changes: its new digest is opened, and
		// every attempt after presents the new certificate.
		for range 3 {
			require.True(t, post(a2).Succeeded())
		}
		require.Equal(t, int64(1), a2.loads.Load())
		require.Equal(t, []string{"webhook-a2", "webhook-a2", "webhook-a2"}, b.receiver.CommonNames()[5:])

		var wg sync.WaitGroup
		for i := range 20 {
			r := a2
			if i%2 == 1 {
				r = c
			}
			wg.Go(func() { require.True(t, post(r).Succeeded()) })
		}
		wg.Wait()
		names := map[string]int{}
		for _, cn := range b.receiver.CommonNames()[8:] {
			names[cn]++
		}
		require.Equal(t, map[string]int{"webhook-a2": 10, "webhook-c": 10}, names)
		require.Equal(t, int64(1), a2.loads.Load())
		require.LessOrEqual(t, c.loads.Load(), int64(10), "opened by the first attempts only")

		conns := b.receiver.Conns.Load()
		failed := &TLSRef{ID: TLSRefID([]byte("hook-d")), Load: func() (*TLSMaterial, *Result) {
			return nil, &Result{ErrorKind: "secret_unavailable", ErrorMessage: "can't decrypt"}
		}}
		res := b.client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLSRef: failed})
		require.Equal(t, "secret_unavailable", res.ErrorKind)
		require.Equal(t, conns, b.receiver.Conns.Load(), "nothing dialled")
	})

	// Two refs of the same material share its transport; a transport
	// evicted takes its refs along, and the next attempt opens the
	// material again.
	t.Run("RefsFollowTheirTransport", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{MaxTLSTransports: 1})
		ma, mb := material(b, b.clientCA, "a", tomorrow), material(b, b.clientCA, "b", tomorrow)
		var loads atomic.Int64
		ref := func(id string, m *TLSMaterial) *PostOptions {
			return &PostOptions{TLSRef: &TLSRef{ID: TLSRefID([]byte(id)), Load: func() (*TLSMaterial, *Result) {
				loads.Add(1)
				return m, nil
			}}}
		}
		require.True(t, client.PostWith(t.Context(), b.url, nil, nil, ref("one", ma)).Succeeded())
		require.True(t, client.PostWith(t.Context(), b.url, nil, nil, ref("two", ma)).Succeeded())
		require.Equal(t, 1, client.tls.len(), "one material, one transport")
		require.Equal(t, int64(2), loads.Load())
		require.True(t, client.PostWith(t.Context(), b.url, nil, nil, ref("three", mb)).Succeeded())
		require.Equal(t, 1, client.tls.len())
		client.tls.mu.RLock()
		require.Len(t, client.tls.refs, 1, "the evicted transport's refs went with it")
		client.tls.mu.RUnlock()
		require.True(t, client.PostWith(t.Context(), b.url, nil, nil, ref("one", ma)).Succeeded())
		require.Equal(t, int64(4), loads.Load(), "opened again")
		require.Equal(t, []string{"a", "a", "b", "a"}, b.receiver.CommonNames())
	})

	// A reconnection resumes the TLS session of its own certificate (an
	// abbreviated handshake: no certificates sent or verified), never
	// another's: each certificate's transport has a session cache of its
	// own.
	t.Run("SessionsResumedPerCertificate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		type seen struct {
			cn      string
			resumed bool
		}
		var (
			mu   sync.Mutex
			reqs []seen
		)
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			reqs = append(reqs, seen{cn: r.TLS.PeerCertificates[0].Subject.CommonName, resumed: r.TLS.DidResume})
		}))
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		srv.Listener.Close()
		srv.Listener = ln
		srv.TLS = testcert.ServerConfig(t, b.serverCA, b.clientCA)
		srv.StartTLS()
		t.Cleanup(srv.Close)

		a, c := material(b, b.clientCA, "webhook-a", tomorrow), material(b, b.clientCA, "webhook-c", tomorrow)
		for _, m := range []*TLSMaterial{a, a, c, c} {
			res := b.client.PostWith(t.Context(), srv.URL+"/", nil, []byte(`{}`), &PostOptions{TLS: m})
			require.True(t, res.Succeeded(), "%+v", res)
			// A new connection each time: the session (ticket) must carry it.
			b.client.CloseIdleConnections()
		}
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []seen{{"webhook-a", false}, {"webhook-a", true}, {"webhook-c", false}, {"webhook-c", true}}, reqs)
	})

	t.Run("BoundedTransports", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		client := newTestClient(t, &Policy{AllowPrivate: true}, &ClientConfig{MaxTLSTransports: 2})
		for _, cn := range []string{"a", "b", "c", "a"} {
			res := client.PostWith(t.Context(), b.url, nil, []byte(`{}`), &PostOptions{TLS: material(b, b.clientCA, cn, tomorrow)})
			require.True(t, res.Succeeded(), "%+v", res)
			require.LessOrEqual(t, client.tls.len(), 2)
		}
	})

	t.Run("IdleEvicted", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		client := newTestClient(t, &Policy{AllowPrivate: true}, nil)
		now := time.Now()
		client.tls.now = func() time.Time { return now }
		require.True(t, client.PostWith(t.Context(), b.url, nil, nil, &PostOptions{TLS: material(b, b.clientCA, "a", tomorrow)}).Succeeded())
		require.Equal(t, 1, client.tls.len())
		now = now.Add(2 * idleConnTimeout)
		require.True(t, client.PostWith(t.Context(), b.url, nil, nil, &PostOptions{TLS: material(b, b.clientCA, "b", tomorrow)}).Succeeded())
		require.Equal(t, 1, client.tls.len(), "the idle one is gone")
	})
}

func TestValidateTLSMaterial(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t, "client CA")
	certPEM, keyPEM := ca.Client(t, "webhook-a", time.Now().Add(24*time.Hour))
	_, otherKey := ca.Client(t, "webhook-b", time.Now().Add(24*time.Hour))
	expiredCert, expiredKey := ca.Client(t, "old", time.Now().Add(-time.Hour))
	block, _ := pem.Decode(keyPEM)
	//nolint:staticcheck // an encrypted key is what the test needs
	encrypted, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", block.Bytes, []byte("pw"), x509.PEMCipherAES256)
	require.NoError(t, err)
	encryptedPEM := pem.EncodeToMemory(encrypted)
	pkcs8Encrypted := []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")

	info, err := ValidateTLSMaterial(&TLSMaterial{CertificatePEM: append(append([]byte{}, certPEM...), ca.PEM...), KeyPEM: keyPEM, CABundlePEM: ca.PEM}, time.Now())
	require.NoError(t, err)
	require.Equal(t, "CN=webhook-a,O=Mono test", info.Subject)
	require.Equal(t, "CN=client CA", info.Issuer)
	require.NotEmpty(t, info.Serial)
	require.Equal(t, []string{"CN=client CA"}, info.CASubjects)

	for _, tt := range []struct {
		name  string
		m     TLSMaterial
		field string
		code  string
	}{
		{"Garbage", TLSMaterial{CertificatePEM: []byte("hello"), KeyPEM: keyPEM}, FieldClientCertificate, "invalid_certificate"},
		{"KeyAsCertificate", TLSMaterial{CertificatePEM: keyPEM, KeyPEM: keyPEM}, FieldClientCertificate, "invalid_certificate"},
		{"GarbageKey", TLSMaterial{CertificatePEM: certPEM, KeyPEM: []byte("nope")}, FieldClientKey, "invalid_key"},
		{"EncryptedKey", TLSMaterial{CertificatePEM: certPEM, KeyPEM: encryptedPEM}, FieldClientKey, "encrypted_key"},
		{"EncryptedPKCS8Key", TLSMaterial{CertificatePEM: certPEM, KeyPEM: pkcs8Encrypted}, FieldClientKey, "encrypted_key"},
		{"KeyMismatch", TLSMaterial{CertificatePEM: certPEM, KeyPEM: otherKey}, FieldClientKey, "key_mismatch"},
		{"MissingKey", TLSMaterial{CertificatePEM: certPEM}, FieldClientKey, "missing_field"},
		{"MissingCertificate", TLSMaterial{KeyPEM: keyPEM}, FieldClientCertificate, "missing_field"},
		{"Expired", TLSMaterial{CertificatePEM: expiredCert, KeyPEM: expiredKey}, FieldClientCertificate, "certificate_expired"},
		{"GarbageCABundle", TLSMaterial{CABundlePEM: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}, FieldCABundle, "invalid_certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ValidateTLSMaterial(&tt.m, time.Now())
			var fieldErr *TLSFieldError
			require.ErrorAs(t, err, &fieldErr)
			require.Equal(t, tt.field, fieldErr.Field, fieldErr.Message)
			require.Equal(t, tt.code, fieldErr.Code, fieldErr.Message)
		})
	}
}

// BenchmarkMutualTLSAttempt is one attempt of a webhook with a client
// certificate (ECDSA P-256, or RSA-2048 where named; found by its TLSRef),
// both sides in this process: on a kept connection; on a new connection
// each time that resumes the certificate's TLS session; on a new
// connection with a full mutual handshake each time (the receiver issues
// no session tickets); and, for comparison, a full handshake without a
// client certificate (the receiver asks for none, the webhook sets only
// its CA bundle). BENCHMARKS.md has the numbers.
func BenchmarkMutualTLSAttempt(b *testing.B) {
	serverCA, clientCA := testcert.NewCA(b, "receiver CA"), testcert.NewCA(b, "client CA")
	certPEM, keyPEM := clientCA.Client(b, "webhook-a", time.Now().Add(24*time.Hour))
	mutual := &TLSMaterial{CertificatePEM: certPEM, KeyPEM: keyPEM, CABundlePEM: serverCA.PEM}
	serverOnly := &TLSMaterial{CABundlePEM: serverCA.PEM}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(b, err)
	rsaCertPEM, rsaKeyPEM := clientCA.ClientWithKey(b, "webhook-rsa", time.Now().Add(24*time.Hour), rsaKey)
	mutualRSA := &TLSMaterial{CertificatePEM: rsaCertPEM, KeyPEM: rsaKeyPEM, CABundlePEM: serverCA.PEM}
	for _, bc := range []struct {
		name      string
		material  *TLSMaterial
		noTickets bool
		mutual    bool
		reconnect bool
	}{
		{"KeptConnection", mutual, false, true, false},
		{"ResumedHandshake", mutual, false, true, true},
		{"FullMutualHandshake", mutual, true, true, true},
		{"FullMutualHandshakeRSA2048", mutualRSA, true, true, true},
		{"ResumedHandshakeRSA2048", mutualRSA, false, true, true},
		{"FullServerOnlyHandshake", serverOnly, true, false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			ln, err := net.Listen("tcp", "127.0.0.2:0")
			require.NoError(b, err)
			srv.Listener.Close()
			srv.Listener = ln
			srv.TLS = testcert.ServerConfig(b, serverCA, clientCA)
			srv.TLS.SessionTicketsDisabled = bc.noTickets
			if !bc.mutual {
				srv.TLS.ClientAuth = tls.NoClientCert
			}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			b.Cleanup(srv.Close)
			client, err := NewClient(&Policy{AllowPrivate: true}, nil)
			require.NoError(b, err)
			b.Cleanup(client.CloseIdleConnections)
			opts := &PostOptions{TLSRef: &TLSRef{ID: TLSRefID([]byte(bc.name)), Load: func() (*TLSMaterial, *Result) { return bc.material, nil }}}
			url := srv.URL + "/"
			require.True(b, client.PostWith(b.Context(), url, nil, []byte(`{}`), opts).Succeeded())
			cpu0 := processCPU(b)
			b.ResetTimer()
			for range b.N {
				if bc.reconnect {
					client.CloseIdleConnections()
				}
				if res := client.PostWith(b.Context(), url, nil, []byte(`{}`), opts); !res.Succeeded() {
					b.Fatalf("%+v", res)
				}
			}
			b.StopTimer()
			// CPU, not wall time, on a shared machine: both sides' work.
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the user and system CPU this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
