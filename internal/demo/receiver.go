// Package demo is webhookd's demonstration: a receiver that verifies every
// signature and prints each delivery, and the `webhookd dev` orchestration
// that runs the whole engine against it on a throwaway database.
package demo

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mono/webhookd/signer"
)

// ReceiverBodyLimit is the largest body the demo receiver reads.
const ReceiverBodyLimit = 1 << 20

// Receiver is an http.Handler that verifies Mono-Signature on every request
// and prints one line per delivery. It is what an integrator's endpoint does,
// in miniature.
type Receiver struct {
	out    io.Writer
	mu     sync.Mutex
	secret atomic.Pointer[string]
	// FailFirst makes the first N requests of each event answer 500, to show
	// a retry.
	failFirst int
	seen      map[string]int
	count     atomic.Int64
}

// NewReceiver returns a receiver printing to out. secret may be empty (and
// set later with SetSecret); without one, signatures are reported as
// unchecked. failFirst answers the first N requests of each event with 500.
func NewReceiver(out io.Writer, secret string, failFirst int) *Receiver {
	r := &Receiver{out: out, failFirst: failFirst, seen: map[string]int{}}
	r.SetSecret(secret)
	return r
}

// SetSecret sets the webhook secret used to verify signatures.
func (r *Receiver) SetSecret(secret string) { r.secret.Store(&secret) }

// Count is the number of requests received.
func (r *Receiver) Count() int64 { return r.count.Load() }

// ServeHTTP verifies and prints one delivery.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.count.Add(1)
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, ReceiverBodyLimit))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	eventID := req.Header.Get("Mono-Event-Id")
	verdict := "signature not checked (no secret)"
	status := http.StatusOK
	if secret := *r.secret.Load(); secret != "" {
		switch err := signer.Verify(req.Header.Get(signer.Header), body, secret, time.Now(), 0); err {
		case nil:
			verdict = "signature valid"
		default:
			verdict = "SIGNATURE INVALID: " + err.Error()
			status = http.StatusUnauthorized
		}
	}

	r.mu.Lock()
	r.seen[eventID]++
	n := r.seen[eventID]
	r.mu.Unlock()
	if status == http.StatusOK && n <= r.failFirst {
		status = http.StatusInternalServerError
		verdict += "; answering 500 on purpose to show a retry"
	}

	r.mu.Lock()
	fmt.Fprintf(r.out, "receiver: %s attempt %d of %s: %s -> %d\n          %s\n",
		time.Now().Format("15:04:05.000"), n, eventID, verdict, status, body)
	r.mu.Unlock()
	w.WriteHeader(status)
}
