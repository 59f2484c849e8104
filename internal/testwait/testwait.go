// Package testwait is the tests' one way to wait for a condition that no
// signal announces (a row's state, a process's health, a count reached):
// it checks the condition at once and then on a ticker, backing off from
// 5 ms to 100 ms, until it holds or a deadline passes. Prefer a signal
// (internal/testsignal), River's subscription or a receiver's channel
// where one exists; use this instead of a hand-written sleep loop.
package testwait

import "time"

// TB is the part of testing.TB that For uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 100 * time.Millisecond
)

// Until calls cond until it returns true or timeout has passed, and
// reports whether it returned true. cond runs on the caller's goroutine.
func Until(timeout time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	interval := firstInterval
	tick := time.NewTimer(interval)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
			if cond() {
				return true
			}
			interval = min(2*interval, maxInterval)
			tick.Reset(interval)
		}
	}
}

// For is Until that fails tb when timeout passes, with the description of
// the state that cond last returned. cond may call require on tb: it runs
// on the caller's goroutine.
func For(tb TB, timeout time.Duration, cond func() (done bool, state string)) {
	tb.Helper()
	var state string
	if !Until(timeout, func() bool {
		var done bool
		done, state = cond()
		return done
	}) {
		tb.Fatalf("testwait: not done after %s: %s", timeout, state)
	}
}
