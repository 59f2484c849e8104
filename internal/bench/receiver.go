package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// receiverHost is the only address the bench's receivers listen on.
const receiverHost = "127.0.0.2"

// receiver answers 200 (or 500 to each event's first request, when
// failFirst) and records each event's first arrival.
//
// It speaks just enough HTTP/1.1 for webhookd's client (a request line,
// headers, a Content-Length body, keep-alive) on raw connections: it shares
// the machine's cores with webhookd and PostgreSQL, and net/http's server
// took about a tenth of the drain's webhookd-side CPU (see BENCHMARKS.md).
// Anything else it does not understand (a chunked body, a malformed
// request) gets 400 and the connection closed, which the scenarios count
// as a failure.
type receiver struct {
	failFirst bool
	// ext, when set, is the process this receiver runs in (see
	// startExternalReceiver): refresh copies its counts into these.
	ext      *externalReceiver
	requests atomic.Int64
	ok       atomic.Int64
	bad      atomic.Int64
	first    sync.Map // event id -> time.Time
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
	cs, err := s.startConnServer(r.serve)
	if err != nil {
		return nil, "", err
	}
	return r, "http://" + cs.ln.Addr().String() + "/hook", nil
}

// connServer accepts connections on 127.0.0.2 and hands each to serve on
// a goroutine of its own, until close closes the listener and every
// connection and waits for those goroutines.
type connServer struct {
	ln       net.Listener
	serve    func(net.Conn)
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]struct{} // nil once closed
	wg       sync.WaitGroup
}

// startConnServer starts a connServer that closes with the stage.
func (s *stage) startConnServer(serve func(net.Conn)) (*connServer, error) {
	cs, err := listenConnServer(serve)
	if err != nil {
		return nil, err
	}
	s.onClose(cs.close)
	return cs, nil
}

// listenConnServer starts a connServer on 127.0.0.2; the caller closes it.
func listenConnServer(serve func(net.Conn)) (*connServer, error) {
	ln, err := net.Listen("tcp", receiverHost+":0")
	if err != nil {
		return nil, fmt.Errorf("error listening on %s: %w", receiverHost, err)
	}
	cs := &connServer{ln: ln, serve: serve, conns: map[net.Conn]struct{}{}}
	cs.wg.Add(1)
	go cs.accept()
	return cs, nil
}

func (cs *connServer) accept() {
	defer cs.wg.Done()
	for {
		conn, err := cs.ln.Accept()
		if err != nil {
			return // closed
		}
		cs.accepted.Add(1)
		cs.mu.Lock()
		if cs.conns == nil {
			cs.mu.Unlock()
			conn.Close()
			continue
		}
		cs.conns[conn] = struct{}{}
		cs.mu.Unlock()
		cs.wg.Add(1)
		go func() {
			defer cs.wg.Done()
			defer func() {
				cs.mu.Lock()
				delete(cs.conns, conn)
				cs.mu.Unlock()
				conn.Close()
			}()
			cs.serve(conn)
		}()
	}
}

func (cs *connServer) close() {
	cs.ln.Close()
	cs.mu.Lock()
	for c := range cs.conns {
		c.Close()
	}
	cs.conns = nil
	cs.mu.Unlock()
	cs.wg.Wait()
}

var (
	answerOK    = []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	answerError = []byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
	answerBad   = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

// serve answers the requests of one connection in turn until it closes.
func (r *receiver) serve(conn net.Conn) {
	br := bufio.NewReaderSize(conn, 16<<10)
	for {
		eventID, length, closing, ok := readRequestHead(br)
		if !ok {
			if _, err := br.Peek(1); err == nil {
				r.bad.Add(1) // bytes we could not read as a request
				_, _ = conn.Write(answerBad)
			}
			return
		}
		now := time.Now()
		if _, err := br.Discard(length); err != nil {
			return
		}
		r.requests.Add(1)
		_, seen := r.first.LoadOrStore(eventID, now)
		answer := answerOK
		if r.failFirst && !seen {
			answer = answerError
		} else {
			r.ok.Add(1)
		}
		if _, err := conn.Write(answer); err != nil || closing {
			return
		}
	}
}

// readRequestHead reads a request line and headers, returning the
// Mono-Event-Id, the body's Content-Length and whether the client asked to
// close. ok is false at the end of the connection or on anything but a
// request with a Content-Length body.
func readRequestHead(br *bufio.Reader) (eventID string, length int, closing, ok bool) {
	line, err := br.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("POST ")) || !bytes.HasSuffix(line, []byte(" HTTP/1.1\r\n")) {
		return "", 0, false, false
	}
	length = -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return "", 0, false, false
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			return "", 0, false, false
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 || n > 1<<20 {
				return "", 0, false, false
			}
			length = n
		case bytes.EqualFold(name, []byte("Mono-Event-Id")):
			eventID = string(value)
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return "", 0, false, false
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	if length < 0 {
		return "", 0, false, false
	}
	return eventID, length, closing, true
}

// blackHole accepts connections and never answers; closing the stage closes
// them.
type blackHole struct {
	*connServer
}

// startBlackHole starts a black hole on 127.0.0.2 and returns its URL.
func (s *stage) startBlackHole() (*blackHole, string, error) {
	cs, err := s.startConnServer(func(conn net.Conn) {
		_, _ = io.Copy(io.Discard, conn) // read the requests, answer nothing
	})
	if err != nil {
		return nil, "", err
	}
	return &blackHole{cs}, "http://" + cs.ln.Addr().String() + "/never", nil
}
