// Package testsignal lets a component tell a test that something happened
// (a reconciler pass finished, a replay batch finished) so the test waits
// for that instead of sleeping or polling: River's TestSignals pattern.
//
// A component holds a TestSignal per event, zero in production, where
// Signal does nothing and costs one nil check. A test calls Init on the
// signals of the component it built, then WaitOrTimeout. Standard library
// only, so production code may import it.
package testsignal

import (
	"fmt"
	"time"
)

// bufferSize is how many signals may wait unread before Signal panics: a
// test that inits a signal must read what it needs, and a component that
// signals far more than expected is a bug worth seeing.
const bufferSize = 1000

// Timeout is how long WaitOrTimeout waits: long enough for a loaded CI
// machine, short enough that a missing signal fails the test.
const Timeout = 30 * time.Second

// TB is the part of testing.TB a signal uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// TestSignal carries values of T from a component to a test. The zero
// value is off.
type TestSignal[T any] struct {
	ch chan T
}

// Init turns the signal on. Call it before the component runs.
func (s *TestSignal[T]) Init() { s.ch = make(chan T, bufferSize) }

// Signal sends v to the test when the signal is on.
func (s *TestSignal[T]) Signal(v T) {
	if s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
		panic(fmt.Sprintf("testsignal: %d signals of %T unread", bufferSize, v))
	}
}

// WaitOrTimeout returns the next value, or fails tb after Timeout.
func (s *TestSignal[T]) WaitOrTimeout(tb TB) T {
	tb.Helper()
	if s.ch == nil {
		tb.Fatalf("testsignal: WaitOrTimeout on a signal that was not Init")
	}
	select {
	case v := <-s.ch:
		return v
	case <-time.After(Timeout):
		tb.Fatalf("testsignal: no signal within %s", Timeout)
	}
	var zero T
	return zero
}

// Drain discards the values already sent and returns how many there were.
func (s *TestSignal[T]) Drain() int {
	n := 0
	for {
		select {
		case <-s.ch:
			n++
		default:
			return n
		}
	}
}
