package stacks

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mono/webhookd/internal/testwait"
)

// goid identifies the goroutine running it (by its stack trace header).
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	for i, b := range buf {
		if b == '[' {
			return string(buf[:i])
		}
	}
	return string(buf)
}

func TestRunReusesGoroutine(t *testing.T) {
	p := New(4, time.Minute)
	caller := goid()
	var first string
	p.Run(func() { first = goid() })
	if first == caller {
		t.Fatalf("f ran in the caller's goroutine %q", caller)
	}
	// Run returns as f does, a moment before its goroutine waits for more
	// work; a call in that moment starts another goroutine. Once it waits,
	// the next call is its: a send on the pool's channel (Run's first
	// choice) is taken only by a waiting goroutine, and there is just one.
	var next string
	c := &call{f: func() { next = goid() }, done: make(chan struct{})}
	select {
	case p.work <- c:
	case <-time.After(5 * time.Second):
		t.Fatal("the first call's goroutine never waited for more work")
	}
	<-c.done
	if next != first {
		t.Fatalf("the next call ran on %q, not on the first call's goroutine %q", next, first)
	}
}

func TestRunWaitsForF(t *testing.T) {
	p := New(2, time.Minute)
	done := false
	p.Run(func() {
		time.Sleep(20 * time.Millisecond) // sleeps because: f must outlast a Run that did not wait
		done = true
	})
	if !done {
		t.Fatal("Run returned before f did")
	}
}

func TestRunBoundedThenInline(t *testing.T) {
	const workers = 3
	p := New(workers, time.Minute)
	release := make(chan struct{})
	var started sync.WaitGroup
	var finished sync.WaitGroup
	started.Add(workers)
	finished.Add(workers)
	for range workers {
		go func() {
			defer finished.Done()
			p.Run(func() {
				started.Done()
				<-release
			})
		}()
	}
	started.Wait()
	// Every pooled goroutine is busy and the pool is full: the next call
	// runs in its caller's goroutine.
	caller := goid()
	var ran string
	p.Run(func() { ran = goid() })
	if ran != caller {
		t.Fatalf("with the pool full, f ran on %q, want the caller's goroutine %q", ran, caller)
	}
	p.mu.Lock()
	running := p.running
	p.mu.Unlock()
	if running != workers {
		t.Fatalf("running = %d, want %d", running, workers)
	}
	close(release)
	finished.Wait()
}

func TestRunPanicReachesCaller(t *testing.T) {
	p := New(2, time.Minute)
	boom := errors.New("boom")
	got := func() (v any) {
		defer func() { v = recover() }()
		p.Run(func() { panic(boom) })
		return nil
	}()
	p2, ok := got.(*Panic)
	if !ok {
		t.Fatalf("recovered %T %v, want a *Panic", got, got)
	}
	if p2.Value != boom || !errors.Is(p2, boom) { //nolint:errorlint // the recovered value must be boom itself, not a wrap of it
		t.Fatalf("recovered value %v, want %v", p2.Value, boom)
	}
	// The stack is the pooled goroutine's, where the panic happened.
	if !strings.Contains(string(p2.Stack), "TestRunPanicReachesCaller") || !strings.Contains(p2.Error(), "boom") {
		t.Fatalf("panic's stack and message do not name its origin:\n%s", p2.Error())
	}
	// The pool still works after a panic.
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Fatal("f did not run after an earlier panic")
	}
}

func TestIdleGoroutinesExit(t *testing.T) {
	p := New(2, 10*time.Millisecond)
	p.Run(func() {})
	waitNoneRunning(t, p, "after a 10 ms idle timeout")
	// A new call starts a new goroutine.
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Fatal("f did not run after the pool emptied")
	}
}

func TestCloseEndsGoroutines(t *testing.T) {
	p := New(4, time.Hour)
	for range 3 {
		p.Run(func() {})
	}
	p.Close()
	waitNoneRunning(t, p, "after Close")
	// After Close, calls run in the caller's goroutine.
	caller := goid()
	var ran string
	p.Run(func() { ran = goid() })
	if ran != caller {
		t.Fatalf("after Close, f ran on %q, want the caller's goroutine %q", ran, caller)
	}
	p.Close() // twice is fine
}

// waitNoneRunning waits up to 5 s for the pool's goroutines to exit.
func waitNoneRunning(t *testing.T, p *Pool, after string) {
	t.Helper()
	testwait.For(t, 5*time.Second, func() (bool, string) {
		p.mu.Lock()
		running := p.running
		p.mu.Unlock()
		return running == 0, fmt.Sprintf("%d goroutines still running %s", running, after)
	})
}
