// Package batch turns many concurrent single-item calls into few batched
// ones ("natural batching"): while a batch is being executed, new calls
// queue, and the next execution takes all of them at once. An idle caller
// waits for nothing (its call runs alone, at once); under load the batches
// grow by themselves, so the database sees one statement and one commit for
// many items instead of one each.
//
// There are no background goroutines: the first caller to find fewer than
// the allowed number of executions running becomes an executor and runs
// batches until its own call is answered, then hands any calls still queued
// to a new goroutine that runs until the queue is empty.
//
// At low rates natural batching gathers nothing: each call finds the
// executor idle and runs alone. A Batcher with a linger (Linger) waits for
// company instead when a call finds no execution running and is alone, but
// the call before it came less than the linger earlier: the executor waits
// until enough other calls have come (one, or a whole batch: the caller's
// choice) or the linger ends, so calls that come every few milliseconds
// share executions. Callers that wait for their answers and come back
// together (producers each waiting for a 202) want the wait to end at the
// first company: at high rates it comes within a fraction of a
// millisecond, and a wait for more stalls the execution that the queue
// behind it needs (measured: intake fell from 0.37 to 0.30 of River and its
// paced p99 rose from 39 to 114 ms when its waits lasted the whole
// linger). A call that comes after a quiet spell, one queued behind a
// running execution (a stream that batches by itself) and one made with
// DoAtOnce never wait. Nor does any call while waits have stopped paying:
// when most recent waits gathered nothing (one caller calling again only
// once answered, whom a wait only slows), the Batcher tries a wait again
// once a second only, until one gathers company again.
package batch

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Func executes one batch. It returns one result per request, in order, or
// an error that answers every request of the batch.
type Func[Req, Res any] func(ctx context.Context, reqs []Req) ([]Res, error)

// Batcher batches calls to one Func.
type Batcher[Req, Res any] struct {
	run         Func[Req, Res]
	concurrency int
	maxBatch    int
	timeout     time.Duration
	linger      time.Duration

	mu      sync.Mutex
	queue   []*call[Req, Res]
	running int
	last    time.Time        // when the latest call came (with a linger)
	enough  int              // the company that ends a wait (with a linger)
	cut     chan struct{}    // while an executor lingers: closed when enough company has come
	cutFrom uint64           // calls when the wait began
	calls   uint64           // calls so far (with a linger): did a wait gather any?
	yield   float64          // recent waits' share that gathered company (decaying)
	probeAt time.Time        // with yield low: no wait before this (set after each wait)
	waits   int              // waits so far (the tests count them)
	clock   func() time.Time // time.Now; the tests' own
}

// Waits that stop paying: the share of recent waits that gathered company
// (each wait weighs lingerYieldWeight) under lingerYieldLow stops them,
// but for one every lingerProbe to see whether company comes again.
const (
	lingerYieldWeight = 0.25
	lingerYieldLow    = 0.5
	lingerProbe       = time.Second
)

type call[Req, Res any] struct {
	req      Req
	res      Res
	err      error
	done     chan struct{}
	gap      time.Duration // since the call before it (with a linger)
	atOnce   bool          // DoAtOnce: never waits for company
	lingered bool          // an executor has waited for company for it
}

// New returns a Batcher that runs at most concurrency executions of run at
// once, each with at most maxBatch requests and a context bounded by
// timeout, detached from any caller's (a caller that gives up must not
// cancel the batch of the others).
func New[Req, Res any](run Func[Req, Res], concurrency, maxBatch int, timeout time.Duration) *Batcher[Req, Res] {
	return &Batcher[Req, Res]{run: run, concurrency: max(concurrency, 1), maxBatch: max(maxBatch, 1), timeout: timeout}
}

// Linger sets how long an executor waits for company for a call that is
// alone in the queue when the call before it came less than d earlier (0,
// the default: never). Set it before the first call. The wait ends
// earlier when enough other calls have come (at least 1; more than the
// batch's room: a full batch), or a DoAtOnce call.
func (b *Batcher[Req, Res]) Linger(d time.Duration, enough int) *Batcher[Req, Res] {
	b.linger = max(d, 0)
	b.enough = min(max(enough, 1), b.maxBatch-1)
	b.yield = 1
	if b.clock == nil {
		b.clock = time.Now
	}
	return b
}

// Do runs req in the next batch and returns its result. When ctx ends while
// Do waits for another executor, Do returns ctx's error (the request may
// still be executed); a caller executing a batch itself returns when that
// batch ends, which the timeout bounds.
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	return b.do(ctx, req, false)
}

// DoAtOnce is Do for a call that must not wait for company (a caller whose
// next step waits for the answer): its batch starts at once, and it ends a
// wait under way.
func (b *Batcher[Req, Res]) DoAtOnce(ctx context.Context, req Req) (Res, error) {
	return b.do(ctx, req, true)
}

func (b *Batcher[Req, Res]) do(ctx context.Context, req Req, atOnce bool) (Res, error) {
	c := &call[Req, Res]{req: req, done: make(chan struct{}), atOnce: atOnce}
	var now time.Time
	if b.linger > 0 {
		now = b.clock()
	}
	b.mu.Lock()
	if b.linger > 0 {
		b.calls++
		c.gap = now.Sub(b.last)
		if b.last.IsZero() {
			c.gap = b.linger // the first call: nothing came before it
		}
		b.last = now
	}
	b.queue = append(b.queue, c)
	if b.cut != nil && (atOnce || b.calls-b.cutFrom >= uint64(b.enough)) { // the wait is over
		close(b.cut)
		b.cut = nil
	}
	execute := b.running < b.concurrency
	if execute {
		b.running++
	}
	b.mu.Unlock()
	if execute {
		b.execute(c)
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

// execute runs batches until own is answered (own nil: until the queue is
// empty), then leaves what is still queued to another goroutine. Only an
// executor's first batch may wait for company: a call queued behind a
// running batch has come in a stream that batches by itself.
func (b *Batcher[Req, Res]) execute(own *call[Req, Res]) {
	first := own != nil
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		if own != nil && isDone(own) {
			// Our answer is in; keep the executor slot for a goroutine that
			// serves the rest, so this caller returns at once.
			b.mu.Unlock()
			go b.execute(nil)
			return
		}
		if first && b.lingers() {
			b.queue[0].lingered = true
			b.waits++
			calls := b.calls
			cut := make(chan struct{})
			b.cut, b.cutFrom = cut, calls
			b.mu.Unlock()
			t := time.NewTimer(b.linger)
			select {
			case <-t.C:
			case <-cut:
			}
			t.Stop()
			b.mu.Lock()
			if b.cut == cut {
				b.cut = nil
			}
			b.waited(b.calls > calls)
			b.mu.Unlock()
			continue // the queue is looked at again (another executor may have taken it)
		}
		n := min(len(b.queue), b.maxBatch)
		calls := make([]*call[Req, Res], n)
		copy(calls, b.queue)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()

		b.runBatch(calls)
		first = false
	}
}

// lingers reports whether the executor should wait for company before
// taking the queue (b.mu held): one call, alone, that came less than the
// linger after the one before it, and not waited for already.
func (b *Batcher[Req, Res]) lingers() bool {
	if b.linger <= 0 || len(b.queue) != 1 {
		return false
	}
	c := b.queue[0]
	if c.atOnce || c.lingered || c.gap >= b.linger {
		return false
	}
	// With the yield low, one wait (a probe) a lingerProbe.
	return b.yield >= lingerYieldLow || !b.clock().Before(b.probeAt)
}

// waited weighs a wait that gathered company, or not, into the yield
// (b.mu held).
func (b *Batcher[Req, Res]) waited(gathered bool) {
	g := 0.0
	if gathered {
		g = 1
	}
	b.yield = (1-lingerYieldWeight)*b.yield + lingerYieldWeight*g
	if gathered && b.yield < lingerYieldLow {
		b.yield = lingerYieldLow // a probe that gathered company: waits resume
	}
	if b.yield < lingerYieldLow {
		b.probeAt = b.clock().Add(lingerProbe) // the next probe
	}
}

func (b *Batcher[Req, Res]) runBatch(calls []*call[Req, Res]) {
	reqs := make([]Req, len(calls))
	for i, c := range calls {
		reqs[i] = c.req
	}
	res, err := b.call(reqs)
	if err == nil && len(res) != len(calls) {
		err = errMismatch
	}
	for i, c := range calls {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}

// call runs one batch, turning a panic into the batch's error (an executor
// may be a goroutine of its own, where a panic would end the process).
func (b *Batcher[Req, Res]) call(reqs []Req) (res []Res, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("batch: panic: %v", p)
		}
	}()
	return b.run(ctx, reqs)
}

func isDone[Req, Res any](c *call[Req, Res]) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

type mismatchError struct{}

func (mismatchError) Error() string {
	return "batch: the batch function returned the wrong number of results"
}

var errMismatch error = mismatchError{}
