package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// externalReceiverEnv, set to "1" in a process's environment, makes it the
// bench's external receiver (Config.ExternalReceiver) instead of whatever
// it would have been: startExternalReceiver re-executes the running binary
// (webhookd, or this package's test binary) with it, and
// ServeChildIfAsked serves.
const externalReceiverEnv = "WEBHOOKD_BENCH_RECEIVER_PROCESS"

// externalReceiverStart bounds how long the receiver process may take to
// say where it listens, and to answer a count.
const externalReceiverStart = 30 * time.Second

// serveExternalReceiver is the external receiver's process: it serves the
// bench's receiver (the same code as the in-process one) on 127.0.0.2
// until its standard input closes. It prints "listening ADDR", then
// answers each "count" line on its standard input with "REQUESTS OK BAD".
func serveExternalReceiver(_ context.Context, in io.Reader, out io.Writer) error {
	r := &receiver{}
	cs, err := listenConnServer(r.serve)
	if err != nil {
		return err
	}
	defer cs.close()
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "listening %s\n", cs.ln.Addr())
	if err := w.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != "count" {
			return fmt.Errorf("unknown command %q", sc.Text())
		}
		fmt.Fprintf(w, "%d %d %d\n", r.requests.Load(), r.ok.Load(), r.bad.Load())
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// externalReceiver is the bench's receiver running in a process of its own.
type externalReceiver struct {
	*child
	mu sync.Mutex // one count at a time
}

// startExternalReceiver starts the bench's receiver (answering 200) in a
// process of its own, stopped when the stage closes, and returns it with
// its URL. Its counts are read with refresh.
func (s *stage) startExternalReceiver() (*receiver, string, error) {
	c, err := startChild("external receiver", externalReceiverEnv)
	if err != nil {
		return nil, "", err
	}
	x := &externalReceiver{child: c}
	line, err := c.next(context.Background(), externalReceiverStart)
	addr, found := strings.CutPrefix(line, "listening ")
	if err != nil || !found {
		x.stop()
		return nil, "", fmt.Errorf("the external receiver did not say where it listens within %s (said %q): %w", externalReceiverStart, line, err)
	}
	s.onClose(x.stop)
	if s.e != nil {
		s.progress("external receiver: process %d on %s", c.pid(), addr)
	}
	return &receiver{ext: x}, "http://" + addr + "/hook", nil
}

// counts asks the process for its counts.
func (x *externalReceiver) counts() (requests, ok, bad int64, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.send("count"); err != nil {
		return 0, 0, 0, err
	}
	line, err := x.next(context.Background(), externalReceiverStart)
	if err != nil {
		return 0, 0, 0, err
	}
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return 0, 0, 0, fmt.Errorf("external receiver: unexpected answer %q", line)
	}
	var n [3]int64
	for i, f := range fields {
		if n[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("external receiver: unexpected answer %q", line)
		}
	}
	return n[0], n[1], n[2], nil
}

// stop closes the process's standard input, which ends it, and waits for
// it (killing it after stopTimeout).
func (x *externalReceiver) stop() { x.child.stop(stopTimeout) }

// refresh copies the counts of r's process into r; a receiver in this
// process needs none.
func (r *receiver) refresh() error {
	if r.ext == nil {
		return nil
	}
	requests, ok, bad, err := r.ext.counts()
	if err != nil {
		return err
	}
	r.requests.Store(requests)
	r.ok.Store(ok)
	r.bad.Store(bad)
	return nil
}
