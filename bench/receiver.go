package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// receiverHost is the only address the bench's receivers listen on.
const receiverHost = "127.0.0.2"

// receiver answers 200 (or 500 to each event's first request, when
// failFirst) and records each event's first arrival.
type receiver struct {
	failFirst bool
	requests  atomic.Int64
	ok        atomic.Int64
	first     sync.Map // event id -> time.Time
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	r.requests.Add(1)
	_, seen := r.first.LoadOrStore(req.Header.Get("Mono-Event-Id"), now)
	if r.failFirst && !seen {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	r.ok.Add(1)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) firstArrival(eventID string) (time.Time, bool) {
	v, ok := r.first.Load(eventID)
	if !ok {
		return time.Time{}, false
	}
	return v.(time.Time), true
}

// startReceiver serves a new receiver on 127.0.0.2 until the stage closes
// and returns it with its URL.
func (s *stage) startReceiver(failFirst bool) (*receiver, string, error) {
	r := &receiver{failFirst: failFirst}
	ln, err := net.Listen("tcp", receiverHost+":0")
	if err != nil {
		return nil, "", fmt.Errorf("error listening on %s: %w", receiverHost, err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln) //nolint:errcheck // closed with the stage
	s.onClose(func() { srv.Close() })
	return r, "http://" + ln.Addr().String() + "/hook", nil
}

// blackHole accepts connections and never answers; closing the stage closes
// them.
type blackHole struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	closed   bool
	conns    []net.Conn
	wg       sync.WaitGroup
}

// startBlackHole starts a black hole on 127.0.0.2 and returns its URL.
func (s *stage) startBlackHole() (*blackHole, string, error) {
	ln, err := net.Listen("tcp", receiverHost+":0")
	if err != nil {
		return nil, "", fmt.Errorf("error listening on %s: %w", receiverHost, err)
	}
	b := &blackHole{ln: ln}
	b.wg.Add(1)
	go b.accept()
	s.onClose(b.close)
	return b, "http://" + ln.Addr().String() + "/never", nil
}

func (b *blackHole) accept() {
	defer b.wg.Done()
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return // closed
		}
		b.accepted.Add(1)
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			conn.Close()
			continue
		}
		b.conns = append(b.conns, conn)
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			_, _ = io.Copy(io.Discard, conn) // read the requests, answer nothing
		}()
	}
}

func (b *blackHole) close() {
	b.mu.Lock()
	b.closed = true
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.ln.Close()
	b.wg.Wait()
}
