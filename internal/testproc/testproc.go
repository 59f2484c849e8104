// Package testproc builds the webhookd binary and runs it as a child
// process for tests that need a real process (signals, crashes, roles):
// one place for the build, the free address, the output capture and the
// wait until it is ready.
package testproc

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build builds github.com/mono/webhookd/cmd/webhookd into a temporary
// directory, for a TestMain; cleanup removes it.
func Build() (binary string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "webhookd-bin-")
	if err != nil {
		return "", nil, err
	}
	binary = filepath.Join(dir, "webhookd")
	build := exec.Command("go", "build", "-o", binary, "github.com/mono/webhookd/cmd/webhookd")
	build.Env = Env()
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("error building webhookd: %w", err)
	}
	return binary, func() { os.RemoveAll(dir) }, nil
}

// Env is an explicit environment for a child process of a test: PATH,
// HOME and TMPDIR, the Go toolchain's own settings (GO*, for `go build`),
// then extra. Nothing else of the developer's environment gets through —
// above all no DATABASE_URL, PG* or WEBHOOKD_* variable, which would
// change what the child does (the README invites developers to export
// DATABASE_URL for `webhookd dev`).
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "TMPDIR",
			strings.HasPrefix(name, "GO"):
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// FreeAddr returns a loopback address with a port free at the moment.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("testproc: %v", err)
	}
	return addr
}

// Buffer collects a process's output, safe for concurrent use. With Max
// set it keeps only the last Max bytes.
type Buffer struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if b.Max > 0 && len(b.buf) > b.Max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.Max:]...)
	}
	return len(p), nil
}

// Reset empties the buffer.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = nil
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Proc is a running webhookd.
type Proc struct {
	Cmd  *exec.Cmd
	Out  *Buffer
	Base string // http://ADDR, its WEBHOOKD_ADDR
	// Metrics is http://ADDR of its WEBHOOKD_METRICS_ADDR: a free port
	// unless env sets the variable ("" then).
	Metrics string
	Done    chan struct{}
}

// Healthy is a Start condition: /healthz answers 200.
func Healthy(p *Proc) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(p.Base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Start runs `binary args...` with env plus WEBHOOKD_ADDR (and, unless env
// has it, WEBHOOKD_METRICS_ADDR) on a free port,
// writing its output to out, and waits until ready(p) (at most timeout);
// it fails t if the process exits or isn't ready by then. The process is
// killed at cleanup, and its output logged if t failed.
func Start(t testing.TB, name, binary string, env []string, out *Buffer, timeout time.Duration, ready func(*Proc) bool, args ...string) *Proc {
	t.Helper()
	// A free port can be taken by another test between FreeAddr and the
	// child's bind: a start that fails only for that is tried again on new
	// ports.
	const tries = 3
	for try := 1; ; try++ {
		p, inUse := start(t, name, binary, env, out, timeout, ready, try == tries, args...)
		if !inUse {
			return p
		}
		t.Logf("testproc: %s found a port taken (try %d of %d); starting it again on new ports", name, try, tries)
		out.Reset()
	}
}

// start is one try of Start. It reports inUse, with a nil Proc, when the
// process exited early because an address was in use and last is false.
func start(t testing.TB, name, binary string, env []string, out *Buffer, timeout time.Duration, ready func(*Proc) bool, last bool, args ...string) (_ *Proc, inUse bool) {
	t.Helper()
	addr := FreeAddr(t)
	p := &Proc{Out: out, Base: "http://" + addr, Done: make(chan struct{})}
	p.Cmd = exec.Command(binary, args...)
	p.Cmd.Env = append(append([]string(nil), env...), "WEBHOOKD_ADDR="+addr)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "WEBHOOKD_METRICS_ADDR=") }) {
		metrics := FreeAddr(t)
		p.Metrics = "http://" + metrics
		p.Cmd.Env = append(p.Cmd.Env, "WEBHOOKD_METRICS_ADDR="+metrics)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = out, out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("testproc: error starting %s: %v", name, err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.Done) }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.Done
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, tail(out.String(), 8000))
		}
	})
	deadline := time.Now().Add(timeout)
	for !ready(p) {
		select {
		case <-p.Done:
			if !last && strings.Contains(out.String(), "address already in use") {
				return nil, true
			}
			t.Fatalf("%s exited early:\n%s", name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s:\n%s", name, timeout, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p, false
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
