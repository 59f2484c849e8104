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

	mu      sync.Mutex
	queue   []*call[Req, Res]
	running int
}

type call[Req, Res any] struct {
	req  Req
	res  Res
	err  error
	done chan struct{}
}

// New returns a Batcher that runs at most concurrency executions of run at
// once, each with at most maxBatch requests and a context bounded by
// timeout, detached from any caller's (a caller that gives up must not
// cancel the batch of the others).
func New[Req, Res any](run Func[Req, Res], concurrency, maxBatch int, timeout time.Duration) *Batcher[Req, Res] {
	return &Batcher[Req, Res]{run: run, concurrency: max(concurrency, 1), maxBatch: max(maxBatch, 1), timeout: timeout}
}

// Do runs req in the next batch and returns its result. When ctx ends while
// Do waits for another executor, Do returns ctx's error (the request may
// still be executed); a caller executing a batch itself returns when that
// batch ends, which the timeout bounds.
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	c := &call[Req, Res]{req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
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
// empty), then leaves what is still queued to another goroutine.
func (b *Batcher[Req, Res]) execute(own *call[Req, Res]) {
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
		n := min(len(b.queue), b.maxBatch)
		calls := make([]*call[Req, Res], n)
		copy(calls, b.queue)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()

		b.runBatch(calls)
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
