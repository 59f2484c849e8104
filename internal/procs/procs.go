// Package procs fits the Go scheduler's processor count (GOMAXPROCS) to
// what a webhookd process is doing: one while it uses little CPU, the
// runtime's own count (the machine's CPUs, or its cgroup's limit) once it
// needs more (WEBHOOKD_ADAPTIVE_PROCS).
//
// Why: at the quiet rates most deployments live at (a few hundred events a
// second and less), each event is a handful of goroutine hand-offs (the
// HTTP request, the intake's statement, the attempt's POST, its record).
// With a second processor idle, every hand-off wakes another OS thread to
// look for the work and put itself back to sleep (futex calls and the
// scheduler's spinning): measured at 100 and 200 events/s, one processor
// took 13 and 20 % off the process's CPU per event, with the same
// first-attempt latency (BENCHMARKS.md, "One Go processor while quiet"). At
// saturation one processor would cap the process at a core, so the
// governor goes back to the full count as soon as the process uses more
// than Up of a core over one Interval, and back to one only after it has
// used less than Down for DownAfter.
package procs

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRunning is Start's error while another governor runs in the process:
// there is one GOMAXPROCS to govern.
var ErrRunning = errors.New("procs: a governor already runs in this process")

// running says whether a governor runs in the process.
var running atomic.Bool

// Defaults of Config.
const (
	// IntervalDefault is how often the governor reads the process's CPU
	// time: a burst waits at most this long for the second processor.
	IntervalDefault = 100 * time.Millisecond
	// UpDefault: over half a core within one interval, the full count.
	UpDefault = 0.5
	// DownDefault and DownAfterDefault: under a quarter of a core for
	// five seconds, one processor.
	DownDefault      = 0.25
	DownAfterDefault = 5 * time.Second
)

// Config configures a Governor. The zero value of each field is its
// default.
type Config struct {
	// Max is the processor count while busy. 0: the runtime's default
	// (runtime.SetDefaultGOMAXPROCS: the CPUs, or the cgroup's limit, and
	// kept up to date with it as the runtime does).
	Max       int
	Interval  time.Duration
	Up        float64
	Down      float64
	DownAfter time.Duration
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = IntervalDefault
	}
	if c.Up <= 0 {
		c.Up = UpDefault
	}
	if c.Down <= 0 {
		c.Down = DownDefault
	}
	if c.DownAfter <= 0 {
		c.DownAfter = DownAfterDefault
	}
	return c
}

// Governor sets GOMAXPROCS as Config says until Stop.
type Governor struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
	stop   sync.Once
	// busy is what setBusy gave last: the busy count, or one. Only Start,
	// then run, then Stop touch it, one after the other.
	busy bool
}

// Start starts a governor. It returns an error when Down is not under Up,
// when the process can't read its CPU time, or when another governor runs
// (ErrRunning).
func Start(cfg Config) (*Governor, error) {
	cfg = cfg.withDefaults()
	if cfg.Down >= cfg.Up {
		return nil, errors.New("procs: Down must be under Up")
	}
	if _, err := ProcessCPU(); err != nil {
		return nil, err
	}
	if !running.CompareAndSwap(false, true) {
		return nil, ErrRunning
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Governor{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	g.setBusy(true) // busy starts false: this sets the busy count
	go g.run(ctx)
	return g, nil
}

// Stop stops the governor and gives the process its full count back. On
// nil it does nothing.
func (g *Governor) Stop() {
	if g == nil {
		return
	}
	g.stop.Do(func() {
		g.cancel()
		<-g.done
		g.setBusy(true)
		running.Store(false)
	})
}

// setBusy gives the process its busy count (busy) or one processor, when
// that is not what it last gave.
func (g *Governor) setBusy(busy bool) {
	if busy == g.busy {
		return
	}
	g.busy = busy
	switch {
	case !busy:
		runtime.GOMAXPROCS(1)
	case g.cfg.Max > 0:
		runtime.GOMAXPROCS(g.cfg.Max)
	default:
		runtime.SetDefaultGOMAXPROCS()
	}
}

func (g *Governor) run(ctx context.Context) {
	defer close(g.done)
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	last := time.Now()
	lastCPU, _ := ProcessCPU()
	// It starts busy, at the runtime's count: a process starts to work at
	// once (a backlog to drain), and goes to one processor only once it
	// has been quiet for DownAfter.
	st := state{busy: true}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu, err := ProcessCPU()
			if err != nil {
				continue
			}
			wall := now.Sub(last)
			if wall <= 0 {
				continue
			}
			used := float64(cpu-lastCPU) / float64(wall)
			last, lastCPU = now, cpu
			st = decide(st, used, wall, g.cfg.Up, g.cfg.Down, g.cfg.DownAfter)
			g.setBusy(st.busy)
		}
	}
}

// state is the governor's: busy (the full count) or quiet (one), and how
// long it has been under Down while busy.
type state struct {
	busy  bool
	under time.Duration
}

// decide is the next state after an interval of wall time in which the
// process used used cores of CPU: busy at once over up; quiet once under
// down for downAfter in a row.
func decide(s state, used float64, wall time.Duration, up, down float64, downAfter time.Duration) state {
	switch {
	case used >= up:
		return state{busy: true}
	case !s.busy:
		return s
	case used < down:
		s.under += wall
		if s.under >= downAfter {
			return state{}
		}
		return s
	default:
		s.under = 0
		return s
	}
}
