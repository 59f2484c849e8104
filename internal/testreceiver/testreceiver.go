// Package testreceiver is a real HTTP webhook receiver for tests: it listens
// on 127.0.0.2 (webhooks may never target localhost or 127.0.0.1), records
// every request and answers as the test says.
package testreceiver

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Request is one request as received.
type Request struct {
	// At is when the request arrived.
	At     time.Time
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Respond decides the answer to the n-th request (1-based). It may block
// (a receiver that never answers) until req.Context() is done.
type Respond func(n int, w http.ResponseWriter, req *http.Request)

// Status answers every request with code.
func Status(code int) Respond {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// Sequence answers the n-th request with codes[n-1], and the last code after.
func Sequence(codes ...int) Respond {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		if n > len(codes) {
			n = len(codes)
		}
		w.WriteHeader(codes[n-1])
	}
}

// Receiver records requests.
type Receiver struct {
	// URL is the receiver's base URL, http://127.0.0.2:PORT.
	URL string

	mu      sync.Mutex
	reqs    []Request
	changed chan struct{}
	respond Respond
	server  *http.Server
}

// New starts a receiver that answers with respond; it stops at test cleanup.
func New(t testing.TB, respond Respond) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("testreceiver: error listening on 127.0.0.2: %v", err)
	}
	r := &Receiver{URL: "http://" + ln.Addr().String(), respond: respond, changed: make(chan struct{})}
	r.server = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.server.Serve(ln) //nolint:errcheck // closed at cleanup
	t.Cleanup(func() { r.server.Close() })
	return r
}

// SetRespond replaces how the receiver answers.
func (r *Receiver) SetRespond(respond Respond) {
	r.mu.Lock()
	r.respond = respond
	r.mu.Unlock()
}

// ServeHTTP records req and answers it.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, Request{At: time.Now(), Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body})
	n := len(r.reqs)
	respond := r.respond
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	respond(n, w, req)
}

// Requests returns a copy of every request so far.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Count is the number of requests so far.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// Wait blocks until at least n requests have arrived or timeout passes, and
// fails the test on timeout.
func (r *Receiver) Wait(t testing.TB, n int, timeout time.Duration) []Request {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if len(r.reqs) >= n {
			reqs := append([]Request(nil), r.reqs...)
			r.mu.Unlock()
			return reqs
		}
		changed := r.changed
		got := len(r.reqs)
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("testreceiver: %d requests after %s, want %d", got, timeout, n)
			return nil
		}
	}
}
