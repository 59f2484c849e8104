// Package stacks runs functions on long-lived goroutines whose stacks have
// already grown.
//
// River starts a new goroutine for every job. A delivery goes deep (JSON,
// pgx, net/http), so each of those goroutines grows its stack from the
// starting size two or three times, and every growth copies the stack: in
// the drain benchmark that copying was about a tenth of webhookd's CPU.
// Handing the work to a goroutine that has done it before costs two
// goroutine switches instead.
package stacks

import (
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Pool runs functions on at most Max goroutines kept between calls; a
// goroutine idle for IdleTimeout exits. The zero value is not usable: use
// New.
type Pool struct {
	work chan *call
	idle time.Duration

	mu      sync.Mutex
	running int
	max     int
	closed  bool
	quit    chan struct{}
}

type call struct {
	f     func()
	done  chan struct{}
	panic *Panic
	ok    bool // f returned normally
}

// New returns a pool of at most limit goroutines, each exiting after idle
// without work.
func New(limit int, idle time.Duration) *Pool {
	return &Pool{work: make(chan *call), idle: idle, max: limit, quit: make(chan struct{})}
}

// Run calls f on one of the pool's goroutines and returns when it returns.
// A panic in f is raised again in the caller's goroutine as a *Panic, so
// the caller's recovery (River's, for a job) sees it with the stack where
// it happened. When every goroutine is busy and the pool is full, or the
// pool is closed, f runs in the caller's goroutine.
func (p *Pool) Run(f func()) {
	c := &call{f: f, done: make(chan struct{})}
	select {
	case p.work <- c: // an idle goroutine took it
	default:
		if !p.start(c) {
			f()
			return
		}
	}
	<-c.done
	if !c.ok {
		panic(c.panic)
	}
}

// Panic is a panic in a function Run ran on a pool goroutine: the value
// and that goroutine's stack when it panicked.
type Panic struct {
	Value any
	Stack []byte
}

func (p *Panic) Error() string {
	return fmt.Sprintf("%v\n\npanicked on a pooled goroutine:\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic's value when it is an error.
func (p *Panic) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// Close makes the pool's idle goroutines exit, and busy ones once their
// call returns; later calls run in their callers' goroutines.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
}

// start starts a goroutine serving c, unless the pool is full or closed.
func (p *Pool) start(c *call) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.running >= p.max {
		return false
	}
	p.running++
	go p.serve(c)
	return true
}

func (p *Pool) serve(c *call) {
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()
	timer := time.NewTimer(p.idle)
	defer timer.Stop()
	for {
		c.run()
		timer.Reset(p.idle)
		select {
		case c = <-p.work:
		case <-p.quit:
			return
		case <-timer.C:
			// Callers never wait to hand work over (they run it
			// themselves or start a goroutine), so nothing is stranded.
			return
		}
	}
}

func (c *call) run() {
	defer close(c.done)
	defer func() {
		if !c.ok {
			c.panic = &Panic{Value: recover(), Stack: debug.Stack()}
		}
	}()
	c.f()
	c.ok = true
}
