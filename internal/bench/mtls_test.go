package bench

import (
	"context"
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
// receiver) twice: plain HTTP on the shared transport, and mutual TLS with
// a client certificate per webhook (so a transport and TLS session cache
// per webhook); River's reference from the same run comes first. Tiny by
// default (a smoke test); WEBHOOKD_BENCH_MTLS_HOOKS and
// WEBHOOKD_BENCH_MTLS_EVENTS size a measurement (BENCHMARKS.md).
func TestDrainMTLS(t *testing.T) {
	hooks, events := envSize(t, "WEBHOOKD_BENCH_MTLS_HOOKS", 20), envSize(t, "WEBHOOKD_BENCH_MTLS_EVENTS", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg := (&Config{DatabaseURL: testdb.BaseURL(), Backlog: hooks * events, Timeout: 10 * time.Minute, Progress: logWriter{t}}).WithDefaults()
	e := &env{cfg: cfg, baseURL: testdb.BaseURL()}

	serverCA, clientCA := testcert.NewCA(t, "receiver CA"), testcert.NewCA(t, "client CA")
	setup := &MTLSSetup{Server: testcert.ServerConfig(t, serverCA, clientCA)}
	for i := range hooks {
		c, k := clientCA.Client(t, fmt.Sprintf("webhook-%d", i), time.Now().Add(24*time.Hour))
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
	t.Logf("%d webhooks × %d events: River reference %.0f/s; plain HTTP %.0f/s (%s); HTTPS, one shared transport %.0f/s (%s); mutual TLS, a transport per webhook %.0f/s (%s): %.0f%% of HTTPS, %.0f%% of plain",
		hooks, events, ref.PerSecond(), plain.PerSecond(), plain.Elapsed.Round(time.Millisecond), https.PerSecond(), https.Elapsed.Round(time.Millisecond),
		mtls.PerSecond(), mtls.Elapsed.Round(time.Millisecond), 100*mtls.PerSecond()/https.PerSecond(), 100*mtls.PerSecond()/plain.PerSecond())
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
