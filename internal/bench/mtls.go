package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime/pprof"
	"time"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/procs"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// fanoutAccount is the account of the fan-out drains.
const fanoutAccount = "acct_fanout"

// MTLSSetup is what the mutual TLS fan-out drain needs that a test makes:
// the receiver's TLS configuration (its certificate, and the client CA it
// requires), and one TLS setting per webhook (a client certificate of its
// own, the receiver's CA as its bundle).
type MTLSSetup struct {
	Server *tls.Config
	Hooks  []outbound.TLSMaterial
}

// fanoutDrain is one fan-out drain's outcome.
type fanoutDrain struct {
	Throughput
	// CPU is the user and system CPU the bench process (webhookd's
	// workers and the receiver, both sides of every TLS handshake) used
	// from the workers' start until every delivery was recorded.
	CPU time.Duration
	// Conns is how many connections the receiver accepted.
	Conns int64
}

// CPUPerDelivery is CPU ÷ deliveries.
func (d *fanoutDrain) CPUPerDelivery() time.Duration {
	return d.CPU / time.Duration(max(d.Deliveries, 1))
}

// drainFanout inserts events events of one account with hooks webhooks on
// one receiver (so events × hooks deliveries) with the workers stopped,
// then starts them and times until every delivery has succeeded. With
// setup, the receiver speaks TLS and requires client certificates, and
// each webhook presents its own (a transport and TLS session cache per
// webhook); without, it is plain HTTP on the shared transport, the drain
// scenario's path.
func (e *env) drainFanout(ctx context.Context, hooks, events int, setup *MTLSSetup) (*fanoutDrain, error) {
	// A CPU profile (go test -cpuprofile) tells the drains apart by the
	// label drain, which every goroutine started from here inherits (the
	// workers', the transports', the receiver's; not the runtime's GC).
	kind := "plain"
	switch {
	case setup == nil:
	case len(setup.Hooks) > 0 && len(setup.Hooks[0].CertificatePEM) > 0:
		kind = "mtls"
	case len(setup.Hooks) > 1:
		kind = "https-per-webhook"
	default:
		kind = "https"
	}
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("drain", kind)))
	defer pprof.SetGoroutineLabels(ctx)
	s, err := e.newStage(ctx, ScenarioDrain, 1)
	if err != nil {
		return nil, err
	}
	defer s.close()
	recv := &receiver{}
	serve := recv.serve
	scheme := "http"
	if setup != nil {
		scheme = "https"
		serve = func(conn net.Conn) {
			tc := tls.Server(conn, setup.Server)
			hs, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := tc.HandshakeContext(hs); err != nil {
				return
			}
			recv.serve(tc)
		}
	}
	cs, err := s.startConnServer(serve)
	if err != nil {
		return nil, err
	}
	for i := range hooks {
		hook := &store.Webhook{ID: ident.New(ident.Webhook), AccountID: fanoutAccount, CreatedAt: time.Now()}
		hook.URL = fmt.Sprintf("%s://%s/hook/%d", scheme, cs.ln.Addr(), i)
		hook.URLNormalized = hook.URL
		if hook.SecretCiphertext, hook.SecretKeyID, err = s.keys.Encrypt([]byte("whsec_bench"), []byte(hook.ID)); err != nil {
			return nil, err
		}
		if setup != nil {
			m := &setup.Hooks[i%len(setup.Hooks)]
			if hook.TLS.Ciphertext, hook.TLS.KeyID, err = webhookrule.EncryptTLS(s.keys, hook.ID, m); err != nil {
				return nil, err
			}
			bundle := string(m.CABundlePEM)
			hook.TLS.CABundle = &bundle
		}
		if err := store.InsertWebhook(ctx, s.pool(), hook); err != nil {
			return nil, fmt.Errorf("error creating webhook %d: %w", i, err)
		}
	}
	if err := s.insertBacklog(ctx, fanoutAccount, events); err != nil {
		return nil, err
	}
	total := hooks * events
	cpu0, err := procs.ProcessCPU()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(e.cfg.Timeout)
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	s.progress("workers started: draining %s deliveries to %d webhooks (%s)", count(total), hooks, kind)
	if err := s.waitAnswered(ctx, recv, total, deadline); err != nil {
		return nil, err
	}
	err = s.waitFor(ctx, "every delivery to be recorded as succeeded", time.Until(deadline), 5*time.Millisecond, func() (bool, string, error) {
		pending, err := s.pendingOf(ctx, fanoutAccount)
		return pending == 0, fmt.Sprintf("%s still pending", count(pending)), err
	})
	if err != nil {
		return nil, err
	}
	out := &fanoutDrain{Throughput: Throughput{Deliveries: total, Elapsed: time.Since(start)}, Conns: cs.accepted.Load()}
	cpu1, err := procs.ProcessCPU()
	if err != nil {
		return nil, err
	}
	out.CPU = cpu1 - cpu0
	if out.Snoozes, err = s.snoozes(ctx); err != nil {
		return nil, err
	}
	if err := s.checkSentOnce(ctx, fanoutAccount, recv.requests.Load(), total); err != nil {
		return nil, err
	}
	s.progress("%d connections accepted for %s deliveries", cs.accepted.Load(), count(total))
	return out, nil
}
