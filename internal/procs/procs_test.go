package procs

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	const up, down, after = 0.5, 0.25, time.Second
	tick := 100 * time.Millisecond
	quiet, busy := state{}, state{busy: true}
	for _, c := range []struct {
		name string
		from state
		used float64
		want state
	}{
		{"quiet stays quiet under up", quiet, 0.49, quiet},
		{"quiet goes busy at up", quiet, 0.5, busy},
		{"busy stays busy between down and up", state{busy: true, under: 900 * time.Millisecond}, 0.3, busy},
		{"busy counts time under down", busy, 0.1, state{busy: true, under: tick}},
		{"busy goes quiet after downAfter under down", state{busy: true, under: 900 * time.Millisecond}, 0.1, quiet},
		{"busy over up starts counting again", state{busy: true, under: 900 * time.Millisecond}, 1.2, busy},
	} {
		if got := decide(c.from, c.used, tick, up, down, after); got != c.want {
			t.Errorf("%s: decide(%+v, %.2f) = %+v, want %+v", c.name, c.from, c.used, got, c.want)
		}
	}
}

// TestGovernorFollowsLoad runs a governor on this process's real CPU time:
// a goroutine spinning takes it to Max, and once it stops, one processor.
func TestGovernorFollowsLoad(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	g, err := Start(Config{Max: 2, Interval: 20 * time.Millisecond, DownAfter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if _, err := Start(Config{}); !errors.Is(err, ErrRunning) {
		t.Fatalf("a second governor: %v, want ErrRunning", err)
	}

	waitFor(t, "one processor while the test idles", func() bool { return runtime.GOMAXPROCS(0) == 1 })

	var stop atomic.Bool
	spun := make(chan struct{})
	go func() { // bounded: stops when told, or after 30 s
		defer close(spun)
		for end := time.Now().Add(30 * time.Second); !stop.Load() && time.Now().Before(end); {
		}
	}()
	waitFor(t, "two processors while a goroutine spins", func() bool { return runtime.GOMAXPROCS(0) == 2 })
	stop.Store(true)
	<-spun
	waitFor(t, "one processor again once it stopped", func() bool { return runtime.GOMAXPROCS(0) == 1 })

	g.Stop()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("after Stop GOMAXPROCS is %d, want the busy count 2", n)
	}
	g2, err := Start(Config{Max: 2})
	if err != nil {
		t.Fatalf("a governor after the first stopped: %v", err)
	}
	g2.Stop()
}

func TestStartRejectsDownOverUp(t *testing.T) {
	if _, err := Start(Config{Up: 0.3, Down: 0.3}); err == nil {
		t.Fatal("Start accepted Down = Up")
	}
}

// waitFor polls cond for up to 20 s (a loaded CI machine's margin).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not reached within 20 s: %s", what)
}
