package engine

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/mono/webhookd/internal/outbound"
)

// WebhookConcurrencyDefault is how many attempts to one webhook a process
// makes at once, at most. A slow endpoint that answers can hold at most
// this many of a process's workers (a quarter of MaxWorkersDefault); the
// others keep serving everybody else. It also bounds one healthy endpoint's
// rate to about WebhookConcurrencyDefault / its round trip: at 50, one
// endpoint at 2,000/s on a busy 2-core machine (round trips of 25 ms and
// more) fell behind and its first attempts waited p99 1.1 – 1.2 s, against
// 0.3 – 0.4 s at 100 (BENCHMARKS.md).
const WebhookConcurrencyDefault = 100

// WebhookConcurrencyStart is where a webhook's cap in a process starts (or
// the configured cap, when that is lower). It grows by one with each
// attempt the endpoint answers (any HTTP status), up to the configured cap:
// each answer starts two waiting jobs, so the cap doubles per round trip
// and a healthy endpoint reaches 100 within four. Each attempt that times
// out halves it, never below the start. So an endpoint that has never
// answered (a black hole, a new endpoint that hangs) holds this many
// workers through its timeouts, not the whole cap (before, the isolation
// bench's black hole held 100 of the 400 workers for its 10 s timeout).
const WebhookConcurrencyStart = 10

// attemptEnd is how an attempt ended, for a webhook's cap.
type attemptEnd int

const (
	// endFailed: no answer, but not a hang either (refused, DNS, TLS, a
	// blocked address, cancelled): the cap stays as it is.
	endFailed attemptEnd = iota
	// endAnswered: an HTTP status came back: the cap grows by one.
	endAnswered
	// endTimedOut: no answer within the timeout: the cap halves.
	endTimedOut
)

// Bounds of the snooze of a job whose webhook is saturated, before its turn
// (inflight.turn) is counted in: the delay grows with the job's snooze
// count, so a job looks at most every SaturatedSnoozeMax; its turn, when
// later, spreads a backlog over the times the webhook's slots free.
const (
	SaturatedSnoozeMin = 200 * time.Millisecond
	SaturatedSnoozeMax = 10 * time.Second
)

// SaturatedTurnsMax bounds how far ahead a saturated webhook's turns go
// (see inflight.turn): the most a job waits for its turn. A backlog behind
// an endpoint that recovers does not wait that long: its jobs are woken
// (see inflight.release, Worker.wakeRecovered).
const SaturatedTurnsMax = 5 * time.Minute

// Waking a recovered webhook's backlog (Worker.wakeRecovered): the jobs
// whose turns, given while the endpoint was slow or a black hole, are over
// recoveryLag ahead are woken in rounds recoveryWakeEvery apart, each what
// the endpoint takes in a round at its cap and its recent answers' pace
// (at least the cap, at most recoveryWakeMax).
//
// recoveryWakesAtOnce bounds a process's wake statements in flight, over
// all webhooks: after an outage of the process's own egress every webhook
// with a backlog recovers at once, and a statement each per second would
// take the pool's connections from the intake and the worker's batches.
const (
	recoveryLag         = 5 * time.Second
	recoveryWakeEvery   = time.Second
	recoveryWakeMax     = 1000
	recoveryWakesAtOnce = 2
)

// A saturated webhook whose recent attempts are fast (an average under
// fastAttempt) frees a slot within moments, so a job waits in process up to
// slotWait for one instead of going back through the queue.
const (
	fastAttempt = 250 * time.Millisecond
	slotWait    = time.Second
)

// unknownSlowAfter: while none of a webhook's attempts has finished, its
// saturation is taken for a slow endpoint's (a slot frees only at the
// timeout) once its oldest attempt in flight has run this long; before
// that, it may just be a burst to a healthy endpoint.
const unknownSlowAfter = time.Second

// forgetAfter: a webhook with nothing in flight for this long is forgotten.
const forgetAfter = 10 * time.Minute

// attemptEndOf classifies an attempt's result for its webhook's cap.
func attemptEndOf(res *outbound.Result) attemptEnd {
	switch {
	case res.StatusCode != 0:
		return endAnswered
	case res.ErrorKind == outbound.ErrorKindTimeout:
		return endTimedOut
	}
	return endFailed
}

// inflight caps concurrent attempts per webhook within one process.
type inflight struct {
	// limit is the configured cap, start where each webhook's begins.
	limit, start int
	// slowAfter is unknownSlowAfter (tests shorten it).
	slowAfter time.Duration
	mu        sync.Mutex
	hooks     map[string]*hookSlots
	swept     time.Time
}

type hookSlots struct {
	n       int
	limit   int // this webhook's cap now: start ≤ limit ≤ inflight.limit
	used    time.Time
	avg     time.Duration // moving average of attempt durations
	waiters []*slotWaiter // jobs waiting for a slot, first come first served
	starts  []time.Time   // when each attempt in flight took its slot
	// nextTurn is the earliest turn to give the next job turned away,
	// reckoned one turnEvery after the last (see inflight.turn).
	nextTurn  time.Time
	turnEvery time.Duration
	// waitingUntil is the latest turn given (the time, not counted): jobs
	// may wait in the queue until then. slowTurns: some were given while
	// the webhook's attempts took fastAttempt or more. answered is a fast
	// moving average (half weight) of the answered attempts' durations,
	// the pace that tells a recovery, since the last hang that started
	// after an answer (lastAnswer: when the latest answer came). waking: a
	// recovery wake runs.
	waitingUntil time.Time
	turnedAt     time.Time // when the latest turn was given
	slowTurns    bool
	answered     time.Duration
	lastAnswer   time.Time
	waking       bool
}

// slotWaiter is a job waiting in acquire. A released slot is handed to the
// first waiter (its count stays taken): one goroutine wakes per slot, not
// every waiter to race for it.
type slotWaiter struct {
	handed chan struct{} // gets a value when the slot is handed over
	at     time.Time     // when it was, under the lock
}

func newInflight(limit int) *inflight {
	return &inflight{limit: limit, start: min(WebhookConcurrencyStart, limit), slowAfter: unknownSlowAfter, hooks: make(map[string]*hookSlots)}
}

// hook returns webhookID's slots, made on first use. The caller holds f.mu.
func (f *inflight) hook(webhookID string) *hookSlots {
	h := f.hooks[webhookID]
	if h == nil {
		h = &hookSlots{limit: f.start}
		f.hooks[webhookID] = h
	}
	return h
}

// mayWait reports whether a job that finds h at its cap waits in process
// for a slot (up to slotWait) rather than snoozing: when h's attempts are
// fast, or while h's cap is still growing from its start and nothing is
// known yet (no attempt finished, the oldest in flight younger than
// slowAfter: a burst to a new endpoint), as long as the jobs in flight and
// waiting stay within the configured cap. So a new endpoint that hangs
// holds at most the configured cap's worth of workers for its first
// slotWait, and its start's worth after that. The caller holds f.mu.
func (f *inflight) mayWait(h *hookSlots) bool {
	if h.avg > 0 {
		return h.avg < fastAttempt
	}
	if h.limit >= f.limit || h.n+len(h.waiters) >= f.limit || len(h.starts) == 0 {
		return false
	}
	return time.Since(h.oldest()) < f.slowAfter
}

// oldest is when h's oldest attempt in flight took its slot; h.starts is
// not empty. The caller holds f.mu.
func (h *hookSlots) oldest() time.Time {
	return slices.MinFunc(h.starts, func(a, b time.Time) int { return a.Compare(b) })
}

// acquire takes a slot for webhookID. When the webhook is saturated it waits
// up to slotWait if the webhook's attempts are fast, and reports false when
// no slot came (the caller snoozes the job).
func (f *inflight) acquire(ctx context.Context, webhookID string) bool {
	f.mu.Lock()
	h := f.hook(webhookID)
	if h.takeFree() {
		f.mu.Unlock()
		return true
	}
	if !f.mayWait(h) {
		f.mu.Unlock()
		return false
	}
	w := &slotWaiter{handed: make(chan struct{}, 1)}
	h.waiters = append(h.waiters, w)
	f.mu.Unlock()

	timer := time.NewTimer(slotWait)
	defer timer.Stop()
	select {
	case <-w.handed:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leave(h, w, ctx.Err() == nil)
}

// tryAcquire takes a slot for webhookID if one is free now, never waiting
// (a test send, answered at once either way).
func (f *inflight) tryAcquire(webhookID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hook(webhookID).takeFree()
}

// takeFree takes one of h's slots if its cap has room. The caller holds
// f.mu.
func (h *hookSlots) takeFree() bool {
	if h.n >= h.limit {
		return false
	}
	h.n++
	h.starts = append(h.starts, time.Now())
	return true
}

// leave ends w's wait for one of h's slots, reporting whether it holds one.
// A waiter still queued leaves the queue. One handed a slot as its wait
// ended keeps it when keep (its time ran out just as a slot came), and
// otherwise (its context ended) passes it on. The caller holds f.mu.
func (f *inflight) leave(h *hookSlots, w *slotWaiter, keep bool) bool {
	if i := slices.Index(h.waiters, w); i >= 0 {
		h.waiters = slices.Delete(h.waiters, i, i+1)
		return false
	}
	if keep {
		return true
	}
	if i := slices.Index(h.starts, w.at); i >= 0 {
		h.starts = slices.Delete(h.starts, i, i+1)
	}
	f.free(h)
	return false
}

// free gives up one of h's slots, then hands what room h's cap has to the
// waiters, first come first served: one goroutine wakes per slot. The
// caller holds f.mu.
func (f *inflight) free(h *hookSlots) {
	h.n--
	f.handOver(h)
}

// handOver hands free slots of h to its first waiters (their count stays
// taken). The caller holds f.mu.
func (f *inflight) handOver(h *hookSlots) {
	for h.n < h.limit && len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = slices.Delete(h.waiters, 0, 1)
		h.n++
		w.at = time.Now()
		h.starts = append(h.starts, w.at)
		w.handed <- struct{}{}
	}
}

// wouldTurnAway reports whether acquire would turn a job for webhookID
// away at once: the webhook at its cap, and no waiting for it (mayWait).
func (f *inflight) wouldTurnAway(webhookID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hooks[webhookID]
	return h != nil && h.n >= h.limit && !f.mayWait(h)
}

// release frees webhookID's slot, folds the attempt's duration into the
// webhook's average and moves its cap as the attempt ended. It reports
// whether the caller is to wake the webhook's backlog
// (Worker.wakeRecovered, then wakeDone): the webhook's answers have come
// fast again (their recent average under fastAttempt) while jobs wait with
// turns given when it was slow, over recoveryLag ahead. At most one wake
// runs per webhook.
func (f *inflight) release(webhookID string, took time.Duration, end attemptEnd) (wake bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hooks[webhookID]
	if h == nil {
		return false
	}
	// The finished attempt's start: the one nearest to now − took.
	if len(h.starts) > 0 {
		started, best := time.Now().Add(-took), 0
		for i, at := range h.starts {
			if at.Sub(started).Abs() < h.starts[best].Sub(started).Abs() {
				best = i
			}
		}
		h.starts = slices.Delete(h.starts, best, best+1)
	}
	if h.avg == 0 {
		h.avg = took
	} else {
		h.avg += (took - h.avg) / 8
	}
	now := time.Now()
	switch end {
	case endAnswered:
		h.limit = min(h.limit+1, f.limit)
		if h.answered == 0 {
			h.answered = took
		} else {
			h.answered += (took - h.answered) / 2
		}
		h.lastAnswer = now
	case endTimedOut:
		h.limit = max(h.limit/2, f.start)
		if now.Add(-took).After(h.lastAnswer) {
			// A hang that started after the latest answer: not recovered.
			// (One that started before it is from before a recovery.)
			h.answered = 0
		}
	}
	f.free(h)
	h.used = now
	if end == endAnswered && !h.waking && f.recovered(h, now) {
		h.waking, wake = true, true
	}
	// Webhooks idle for ten minutes are forgotten (their cap starts again),
	// so memory follows the webhooks in use, not every webhook ever
	// attempted.
	if now.Sub(f.swept) > time.Minute {
		f.swept = now
		for id, other := range f.hooks {
			if other.n == 0 && !other.waking && now.Sub(other.used) > forgetAfter {
				delete(f.hooks, id)
			}
		}
	}
	return wake
}

// recovered reports whether h's backlog is to be woken: its recent answers
// are fast (under fastAttempt) while jobs wait with turns given when its
// attempts were slow, over recoveryLag ahead. The caller holds f.mu.
func (f *inflight) recovered(h *hookSlots, now time.Time) bool {
	return h.slowTurns && h.answered > 0 && h.answered < fastAttempt && h.waitingUntil.Sub(now) > recoveryLag
}

// recoveryRound is how many of webhookID's waiting jobs a recovery wake
// wakes now (Worker.wakeRecovered): what the endpoint takes in
// recoveryWakeEvery at its cap and its recent answers' pace, at least its
// cap, at most recoveryWakeMax; none while its cap is full (the jobs woken
// before are still going). over: the webhook has not recovered (any more),
// so the wake ends, and wakeDone is to be called.
func (f *inflight) recoveryRound(webhookID string) (n int, over bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hooks[webhookID]
	if h == nil || !f.recovered(h, time.Now()) {
		return 0, true
	}
	if h.n >= h.limit {
		return 0, false
	}
	take := float64(h.limit) * float64(recoveryWakeEvery) / float64(h.answered)
	return int(min(max(take, float64(h.limit)), recoveryWakeMax)), false
}

// drained tells webhookID's recovery wake's state that a round woke every
// job waiting that long: the turns given before it began (before) are
// over. The wake goes on only if turns were given since (jobs it woke
// that the cap turned away again, with turns reckoned at the webhook's
// slower past average).
func (f *inflight) drained(webhookID string, before time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.hooks[webhookID]; h != nil && h.turnedAt.Before(before) {
		h.waitingUntil = time.Time{}
	}
}

// wakeDone ends webhookID's recovery wake. Turns still over recoveryLag
// ahead are kept (given to jobs the wake woke and the cap turned away
// again, or left when the endpoint's answers slowed): the next fast answer
// starts another wake for them. Otherwise, or when giveUp (the wake
// failed: its jobs go at their turns), they are forgotten, and the next
// wake needs new slow turns.
func (f *inflight) wakeDone(webhookID string, giveUp bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.hooks[webhookID]; h != nil {
		h.waking = false
		if giveUp || time.Until(h.waitingUntil) <= recoveryLag {
			h.slowTurns, h.waitingUntil = false, time.Time{}
		}
	}
}

// freeIn estimates how long until one of webhookID's slots frees: when its
// oldest attempt in flight should end, after the webhook's average attempt,
// or after timeout (an attempt's bound) when no attempt has finished yet (a
// black hole finishes none) and the oldest has run for slowAfter. 0 when a
// slot is free, should be by now, or nothing is known yet.
func (f *inflight) freeIn(webhookID string, timeout time.Duration) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	free, _ := f.freeInLocked(f.hooks[webhookID], timeout)
	return free
}

// freeInLocked is freeIn of h (nil: unknown), with how long one of its
// attempts takes (0 when freeIn is 0 for want of knowing). The caller holds
// f.mu.
func (f *inflight) freeInLocked(h *hookSlots, timeout time.Duration) (free, takes time.Duration) {
	if h == nil || h.n < h.limit || len(h.starts) == 0 {
		return 0, 0
	}
	oldest := h.oldest()
	takes = timeout
	if h.avg > 0 {
		takes = min(h.avg, timeout)
	} else if time.Since(oldest) < f.slowAfter {
		return 0, 0
	}
	return max(time.Until(oldest.Add(takes)), 0), takes
}

// turn gives a job that webhookID's cap turned away its turn and returns
// how long until it: when this process expects the next of the webhook's
// slots to free, or after the turns already given that are still ahead,
// one slot interval (an attempt's time ÷ the webhook's cap) each, whichever
// is later, and at most SaturatedTurnsMax ahead. A job past the turns'
// reach comes back at a random time between half of it and all of it, to
// look again. So the jobs waiting for a saturated webhook come back about
// as fast as its slots free, not each of them once per SaturatedSnoozeMax:
// behind a black hole (10 slots, a 10 s timeout) a backlog of N ran N / 10 s
// jobs a second, and now runs about one a second plus N / (¾
// SaturatedTurnsMax). The turns ahead are counted, not timed: when the
// endpoint speeds up, the next job's turn comes as much sooner. 0 when the
// webhook is not saturated or nothing is known yet (freeIn).
//
// It returns freeIn too (free), reckoned once under the same lock: the
// worker needs both for a job the cap turned away.
func (f *inflight) turn(webhookID string, timeout time.Duration) (free, wait time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hooks[webhookID]
	free, takes := f.freeInLocked(h, timeout)
	if takes == 0 {
		return free, 0
	}
	now, every := time.Now(), takes/time.Duration(h.limit)
	var ahead time.Duration
	if h.turnEvery > 0 && h.nextTurn.After(now) {
		turns := float64(h.nextTurn.Sub(now)) / float64(h.turnEvery)
		ahead = time.Duration(turns * float64(every))
	}
	wait = min(max(free, ahead), SaturatedTurnsMax)
	h.nextTurn, h.turnEvery = now.Add(wait+every), every
	if wait == SaturatedTurnsMax {
		// Past the turns' reach: back at a random time within it, so that
		// the jobs past it don't all come back together.
		wait = SaturatedTurnsMax/2 + time.Duration(rand.Int64N(int64(SaturatedTurnsMax/2)))
	}
	// What a recovery wake needs to know (inflight.recovered).
	if until := now.Add(wait); until.After(h.waitingUntil) {
		h.waitingUntil = until
	}
	h.turnedAt = now
	if takes >= fastAttempt {
		h.slowTurns = true
	}
	return free, wait
}

// saturatedSnooze is how long a job waits when its webhook is saturated:
// SaturatedSnoozeMin doubled per earlier snooze of the job, capped at
// SaturatedSnoozeMax, with ±25% jitter so waiting jobs don't return in step.
func saturatedSnooze(metadata []byte) time.Duration {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	d := SaturatedSnoozeMin
	for i := 0; i < m.Snoozes && d < SaturatedSnoozeMax; i++ {
		d *= 2
	}
	d = min(d, SaturatedSnoozeMax)
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// saturatedWait is how long a job whose webhook is saturated waits: its
// saturatedSnooze, or longer when no slot is expected to free before then
// (freeIn, at most SaturatedSnoozeMax, plus up to 25% so the jobs waiting
// for it don't return in step). Behind a black hole every waiting job then
// looks once per attempt timeout, from its first snooze on, instead of
// coming back after 0.2, 0.4, 0.8 … s to find the same attempts in flight.
func saturatedWait(metadata []byte, freeIn time.Duration) time.Duration {
	d := saturatedSnooze(metadata)
	if freeIn = min(freeIn, SaturatedSnoozeMax); freeIn > d {
		d = time.Duration(float64(freeIn) * (1 + rand.Float64()/4))
	}
	return d
}
