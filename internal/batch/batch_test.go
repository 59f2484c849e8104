package batch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mono/webhookd/internal/testwait"
)

// echo is a batch function that records each batch and answers every
// request with its own text.
type echo struct {
	mu      sync.Mutex
	batches [][]int
	running atomic.Int32
	peak    atomic.Int32
	hold    chan struct{} // when set, each batch waits for it to close
}

func (e *echo) run(_ context.Context, reqs []int) ([]string, error) {
	n := e.running.Add(1)
	defer e.running.Add(-1)
	for {
		p := e.peak.Load()
		if n <= p || e.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if e.hold != nil {
		<-e.hold
	}
	e.mu.Lock()
	e.batches = append(e.batches, append([]int(nil), reqs...))
	e.mu.Unlock()
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = strconv.Itoa(r)
	}
	return out, nil
}

func TestAloneRunsAtOnce(t *testing.T) {
	e := &echo{}
	b := New(e.run, 2, 10, time.Second)
	got, err := b.Do(context.Background(), 7)
	if err != nil || got != "7" {
		t.Fatalf("Do = %q, %v; want 7", got, err)
	}
	if len(e.batches) != 1 || len(e.batches[0]) != 1 {
		t.Fatalf("batches = %v, want one of one", e.batches)
	}
}

// While the executions allowed are busy, calls queue and the next
// execution takes them together, at most maxBatch at a time; every caller
// gets its own answer.
func TestQueuedCallsShareBatches(t *testing.T) {
	e := &echo{hold: make(chan struct{})}
	b := New(e.run, 1, 8, 5*time.Second)

	const n = 41
	results := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the first call holds the only execution
		defer wg.Done()
		results[0], errs[0] = b.Do(context.Background(), 0)
	}()
	waitFor(t, func() bool { return e.running.Load() == 1 })
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = b.Do(context.Background(), i)
		}()
	}
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.queue) == n-1 })
	close(e.hold)
	wg.Wait()

	for i := range n {
		if errs[i] != nil || results[i] != strconv.Itoa(i) {
			t.Errorf("call %d = %q, %v", i, results[i], errs[i])
		}
	}
	// 1 alone, then 40 queued in batches of at most 8: 5 more executions.
	if len(e.batches) != 6 {
		t.Errorf("%d batches, want 6: %v", len(e.batches), e.batches)
	}
	seen := map[int]bool{}
	for _, batch := range e.batches {
		if len(batch) > 8 {
			t.Errorf("batch of %d exceeds maxBatch 8", len(batch))
		}
		for _, r := range batch {
			if seen[r] {
				t.Errorf("request %d executed twice", r)
			}
			seen[r] = true
		}
	}
	if len(seen) != n {
		t.Errorf("%d requests executed, want %d", len(seen), n)
	}
	if p := e.peak.Load(); p != 1 {
		t.Errorf("peak concurrent executions %d, want 1", p)
	}
}

// Callers pile up against the bound: while the allowed executions run,
// every other call queues, and no more than the bound ever run at once.
func TestConcurrencyBound(t *testing.T) {
	const n, concurrency = 200, 3
	e := &echo{hold: make(chan struct{})}
	var held atomic.Int32 // requests of the executions started
	b := New(func(ctx context.Context, reqs []int) ([]string, error) {
		held.Add(int32(len(reqs)))
		return e.run(ctx, reqs)
	}, concurrency, 4, 5*time.Second)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := b.Do(context.Background(), i); err != nil || got != strconv.Itoa(i) {
				t.Errorf("call %d = %q, %v", i, got, err)
			}
		}()
	}
	// Every call is in: the bound's executions hold theirs, the rest wait.
	testwait.For(t, 5*time.Second, func() (bool, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		running, held, queued := int(e.running.Load()), int(held.Load()), len(b.queue)
		return running == concurrency && held+queued == n, fmt.Sprintf("%d executions running (want %d), %d calls held, %d queued", running, concurrency, held, queued)
	})
	close(e.hold)
	wg.Wait()
	if p := e.peak.Load(); p != concurrency {
		t.Errorf("peak concurrent executions %d, want %d", p, concurrency)
	}
	// Every call is answered, and the executors then leave: the last one
	// gives its slot back just after answering its batch, so a moment
	// after wg.Wait returns, not necessarily before.
	testwait.For(t, 5*time.Second, func() (bool, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.running == 0 && len(b.queue) == 0, fmt.Sprintf("after all calls: running %d, queued %d; want 0, 0", b.running, len(b.queue))
	})
}

func TestErrorsAnswerTheWholeBatch(t *testing.T) {
	boom := errors.New("boom")
	b := New(func(context.Context, []int) ([]string, error) { return nil, boom }, 1, 10, time.Second)
	if _, err := b.Do(context.Background(), 1); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}

	short := New(func(context.Context, []int) ([]string, error) { return nil, nil }, 1, 10, time.Second)
	if _, err := short.Do(context.Background(), 1); err == nil {
		t.Fatal("a batch function returning too few results gave no error")
	}

	panicky := New(func(context.Context, []int) ([]string, error) { panic("kaboom") }, 1, 10, time.Second)
	if _, err := panicky.Do(context.Background(), 1); err == nil || err.Error() != "batch: panic: kaboom" {
		t.Fatalf("err = %v, want the panic as an error", err)
	}
	// The batcher still works after a panic.
	if _, err := panicky.Do(context.Background(), 2); err == nil {
		t.Fatal("second call: want the panic again")
	}
}

// A caller whose context ends stops waiting; the batch runs with its own
// context (bounded by the timeout), not the caller's.
func TestCallerGivesUp(t *testing.T) {
	hold := make(chan struct{})
	var batchCtxErr atomic.Value
	var running atomic.Bool
	b := New(func(ctx context.Context, reqs []int) ([]string, error) {
		running.Store(true)
		<-hold
		batchCtxErr.Store(ctx.Err() == nil)
		return make([]string, len(reqs)), nil
	}, 1, 10, 5*time.Second)
	go func() { _, _ = b.Do(context.Background(), 0) }() // holds the execution
	waitFor(t, running.Load)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Do(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	close(hold)
	waitFor(t, func() bool { v := batchCtxErr.Load(); return v != nil && v.(bool) })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !testwait.Until(5*time.Second, cond) {
		t.Fatal("condition not met within 5 s")
	}
}

// lingering reports whether an executor is waiting for company.
func lingering[Req, Res any](b *Batcher[Req, Res]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cut != nil
}

// doAsync runs b.Do (or DoAtOnce) on a goroutine; the channel gets its
// answer.
func doAsync(b *Batcher[int, string], req int, atOnce bool) <-chan string {
	out := make(chan string, 1)
	go func() {
		do := b.Do
		if atOnce {
			do = b.DoAtOnce
		}
		got, err := do(context.Background(), req)
		if err != nil {
			got = err.Error()
		}
		out <- got
	}()
	return out
}

func answer(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("answer %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no answer for %s within 5 s", want)
	}
}

// A call alone in the queue that came soon after the one before it waits
// for company, and the call that comes meanwhile shares its batch; the
// first call, which came after nothing, runs at once. The linger is long
// (an hour), so a call that waited for the timer would never answer in
// the test: the company ends the wait.
func TestLingerGathersCallsThatComeClose(t *testing.T) {
	e := &echo{}
	b := New(e.run, 1, 10, 5*time.Second).Linger(time.Hour, 1)
	answer(t, doAsync(b, 1, false), "1") // the first call: no wait

	second := doAsync(b, 2, false) // soon after the first: it waits
	waitFor(t, func() bool { return lingering(b) })
	time.Sleep(20 * time.Millisecond)
	e.mu.Lock()
	if len(e.batches) != 1 {
		t.Fatalf("batches %v while the second call waits, want only the first", e.batches)
	}
	e.mu.Unlock()
	third := doAsync(b, 3, false) // company: the wait ends
	answer(t, second, "2")
	answer(t, third, "3")
	if len(e.batches) != 2 || len(e.batches[1]) != 2 {
		t.Fatalf("batches %v, want [1] and the two that came close together", e.batches)
	}
	if lingering(b) {
		t.Fatal("an executor still waits after the batch")
	}

	// A DoAtOnce call ends a wait too.
	fourth := doAsync(b, 4, false)
	waitFor(t, func() bool { return lingering(b) })
	answer(t, doAsync(b, 5, true), "5")
	answer(t, fourth, "4")
	if len(e.batches) != 3 || len(e.batches[2]) != 2 {
		t.Fatalf("batches %v, want the wait's call and the DoAtOnce call together", e.batches)
	}
}

// A wait for more company goes on until that much has come; without
// company the wait ends with the linger.
func TestLingerEnds(t *testing.T) {
	crowd := &echo{}
	c := New(crowd.run, 1, 10, 5*time.Second).Linger(time.Hour, 2)
	answer(t, doAsync(c, 1, false), "1")
	waiting := doAsync(c, 2, false)
	waitFor(t, func() bool { return lingering(c) })
	second := doAsync(c, 3, false)
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == 2 })
	time.Sleep(20 * time.Millisecond)
	if !lingering(c) {
		t.Fatal("the wait for two ended with one")
	}
	third := doAsync(c, 4, false)
	answer(t, waiting, "2")
	answer(t, second, "3")
	answer(t, third, "4")
	if len(crowd.batches) != 2 || len(crowd.batches[1]) != 3 {
		t.Fatalf("batches %v, want [1] and the three", crowd.batches)
	}

	e := &echo{}
	b := New(e.run, 1, 10, 5*time.Second).Linger(50*time.Millisecond, 1)
	answer(t, doAsync(b, 1, false), "1")
	answer(t, doAsync(b, 2, false), "2") // waits 50 ms, alone, then runs
	if len(e.batches) != 2 {
		t.Fatalf("batches %v, want two of one", e.batches)
	}
	if w := func() int { b.mu.Lock(); defer b.mu.Unlock(); return b.waits }(); w != 1 {
		t.Fatalf("%d waits, want 1", w)
	}
}

// A call after a quiet spell longer than the linger, a DoAtOnce call and
// a Batcher without a linger never wait.
func TestNoLingerAfterQuiet(t *testing.T) {
	e := &echo{}
	b := New(e.run, 1, 10, 5*time.Second).Linger(time.Hour, 1)
	answer(t, doAsync(b, 1, false), "1")
	answer(t, doAsync(b, 2, true), "2") // soon after, but at once
	b.mu.Lock()
	b.last = time.Now().Add(-2 * time.Hour) // the quiet spell
	b.mu.Unlock()
	answer(t, doAsync(b, 3, false), "3")
	if len(e.batches) != 3 {
		t.Fatalf("batches %v, want three of one", e.batches)
	}

	plain := &echo{}
	p := New(plain.run, 1, 10, 5*time.Second)
	for i := range 3 {
		answer(t, doAsync(p, i, false), strconv.Itoa(i))
	}
	if len(plain.batches) != 3 || lingering(p) {
		t.Fatalf("batches %v without a linger, want three of one", plain.batches)
	}
}

// A call queued behind a running batch goes in the next batch at once,
// even alone and soon after the one before it: calls that queue already
// batch by themselves.
func TestNoLingerBehindABatch(t *testing.T) {
	e := &echo{hold: make(chan struct{})}
	b := New(e.run, 1, 10, 5*time.Second).Linger(time.Hour, 1)
	first := doAsync(b, 1, false)
	waitFor(t, func() bool { return e.running.Load() == 1 })
	second := doAsync(b, 2, false) // soon after the first, queued behind it
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.queue) == 1 })
	close(e.hold)
	answer(t, first, "1")
	answer(t, second, "2")
	if len(e.batches) != 2 {
		t.Fatalf("batches %v, want two of one", e.batches)
	}
}

// A caller that calls again only once answered gets no company from a
// wait: after three waits that gathered nothing its calls go at once,
// but for a wait a second that looks for company again; one that finds
// it resumes the waits. The clock moves 1 ms a call (each call soon after
// the one before), and by hand across the second.
func TestLingerStopsWhenItGathersNothing(t *testing.T) {
	e := &echo{}
	b := New(e.run, 1, 10, 5*time.Second).Linger(10*time.Millisecond, 1)
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	b.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Millisecond); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	waits := func() int { b.mu.Lock(); defer b.mu.Unlock(); return b.waits }
	sequential := func(from, n int) {
		for i := from; i < from+n; i++ {
			if got, err := b.Do(context.Background(), i); err != nil || got != strconv.Itoa(i) {
				t.Fatalf("call %d = %q, %v", i, got, err)
			}
		}
	}
	sequential(0, 12) // the first call has nothing before it; three wait; the rest don't
	if w := waits(); w != 3 {
		t.Fatalf("%d waits in 12 calls of one caller, want 3", w)
	}
	advance(2 * lingerProbe)
	sequential(12, 5) // one probe, alone
	if w := waits(); w != 4 {
		t.Fatalf("%d waits after the probe's second, want 4", w)
	}

	// The next probe finds company: waits resume.
	advance(2 * lingerProbe)
	b.mu.Lock()
	b.linger = time.Hour // the company's call ends the wait, not the timer
	b.mu.Unlock()
	probe := doAsync(b, 100, false)
	waitFor(t, func() bool { return lingering(b) })
	answer(t, doAsync(b, 101, true), "101")
	answer(t, probe, "100")
	if w := waits(); w != 5 {
		t.Fatalf("%d waits, want 5 (the probe)", w)
	}
	b.mu.Lock()
	b.linger = 10 * time.Millisecond
	b.mu.Unlock()
	sequential(200, 1) // at once after the probe gathered: waits again
	if w := waits(); w != 6 {
		t.Fatalf("%d waits, want 6: a probe that gathered company resumes them", w)
	}
}
