package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/testcert"
	"github.com/mono/webhookd/internal/testdb"
)

// TestDrainMTLS drains a fan-out backlog (one account, many webhooks on one
// receiver) three times: plain HTTP on the shared transport, HTTPS (every
// webhook with the same CA bundle, so one transport), and mutual TLS with
// a client certificate per webhook (so a transport and TLS session cache
// per webhook); River's reference from the same run comes first. Tiny by
// default (a smoke test); WEBHOOKD_BENCH_MTLS_HOOKS and
// WEBHOOKD_BENCH_MTLS_EVENTS size a measurement (BENCHMARKS.md).
// WEBHOOKD_BENCH_MTLS_KEY picks the client certificates' key: ecdsa
// (P-256, the default) or rsa (RSA-2048; one key certified under every
// webhook's name, since generating a thousand takes minutes).
func TestDrainMTLS(t *testing.T) {
	hooks, events := envSize(t, "WEBHOOKD_BENCH_MTLS_HOOKS", 20), envSize(t, "WEBHOOKD_BENCH_MTLS_EVENTS", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg := (&Config{DatabaseURL: testdb.BaseURL(), Backlog: hooks * events, Timeout: 10 * time.Minute, Progress: logWriter{t}}).WithDefaults()
	e := &env{cfg: cfg, baseURL: testdb.BaseURL()}

	serverCA, clientCA := testcert.NewCA(t, "receiver CA"), testcert.NewCA(t, "client CA")
	setup := &MTLSSetup{Server: testcert.ServerConfig(t, serverCA, clientCA)}
	var rsaKey crypto.Signer
	switch kind := os.Getenv("WEBHOOKD_BENCH_MTLS_KEY"); kind {
	case "", "ecdsa":
	case "rsa":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		rsaKey = key
	default:
		t.Fatalf("WEBHOOKD_BENCH_MTLS_KEY=%q: want ecdsa or rsa", kind)
	}
	for i := range hooks {
		var c, k []byte
		if rsaKey != nil {
			c, k = clientCA.ClientWithKey(t, fmt.Sprintf("webhook-%d", i), time.Now().Add(24*time.Hour), rsaKey)
		} else {
			c, k = clientCA.Client(t, fmt.Sprintf("webhook-%d", i), time.Now().Add(24*time.Hour))
		}
		setup.Hooks = append(setup.Hooks, outbound.TLSMaterial{CertificatePEM: c, KeyPEM: k, CABundlePEM: serverCA.PEM})
	}

	ref, err := e.reference(ctx)
	require.NoError(t, err)
	plain, err := e.drainFanout(ctx, hooks, events, nil)
	require.NoError(t, err)
	// HTTPS without client certificates: every webhook has the same CA
	// bundle, so they share one transport.
	tlsOnly := &MTLSSetup{Server: &tls.Config{Certificates: setup.Server.Certificates}, Hooks: []outbound.TLSMaterial{{CABundlePEM: serverCA.PEM}}}
	https, err := e.drainFanout(ctx, hooks, events, tlsOnly)
	require.NoError(t, err)
	mtls, err := e.drainFanout(ctx, hooks, events, setup)
	require.NoError(t, err)
	// With WEBHOOKD_BENCH_MTLS_SPLIT=1, a fourth drain tells the two
	// costs of mutual TLS apart: HTTPS without client certificates but
	// with a transport per webhook (each webhook's CA bundle adds a CA of
	// its own, never used), so as many connections and server-only
	// handshakes as mutual TLS has mutual ones.
	var perHook *fanoutDrain
	if os.Getenv("WEBHOOKD_BENCH_MTLS_SPLIT") == "1" {
		split := &MTLSSetup{Server: tlsOnly.Server}
		for i := range hooks {
			unused := testcert.NewCA(t, fmt.Sprintf("unused CA %d", i))
			split.Hooks = append(split.Hooks, outbound.TLSMaterial{CABundlePEM: append(append([]byte(nil), serverCA.PEM...), unused.PEM...)})
		}
		perHook, err = e.drainFanout(ctx, hooks, events, split)
		require.NoError(t, err)
	}
	line := func(d *fanoutDrain) string {
		return fmt.Sprintf("%.0f/s (%.2f of River, %s, %d connections, %.0f µs CPU per delivery)", d.PerSecond(), d.PerSecond()/ref.PerSecond(),
			d.Elapsed.Round(time.Millisecond), d.Conns, float64(d.CPUPerDelivery().Nanoseconds())/1e3)
	}
	t.Logf("%d webhooks × %d events: River reference %.0f/s; plain HTTP %s; HTTPS, one shared transport %s; mutual TLS, a transport per webhook %s",
		hooks, events, ref.PerSecond(), line(plain), line(https), line(mtls))
	t.Logf("mutual TLS ÷ HTTPS: throughput %.2f, CPU per delivery %.2f; mutual TLS ÷ plain: throughput %.2f, CPU per delivery %.2f",
		mtls.PerSecond()/https.PerSecond(), float64(mtls.CPUPerDelivery())/float64(https.CPUPerDelivery()),
		mtls.PerSecond()/plain.PerSecond(), float64(mtls.CPUPerDelivery())/float64(plain.CPUPerDelivery()))
	if perHook != nil {
		t.Logf("HTTPS, a transport per webhook (no client certificates) %s; mutual TLS ÷ that: throughput %.2f, CPU per delivery %.2f",
			line(perHook), mtls.PerSecond()/perHook.PerSecond(), float64(mtls.CPUPerDelivery())/float64(perHook.CPUPerDelivery()))
	}
}

// envSize is the whole number in the environment variable name, or def
// when it is unset: how a bench test is sized for a measurement.
func envSize(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	return n
}
