package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

func TestFairness(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFairness(10, 5, func() time.Time { return now })

	// A burst: the first five at normal priority, the rest bulk.
	for i := range 8 {
		want := PriorityNormal
		if i >= 5 {
			want = PriorityBulk
		}
		require.Equal(t, want, f.priority("big"), "event %d", i)
	}
	// Another account is unaffected.
	require.Equal(t, PriorityNormal, f.priority("small"))

	// Tokens come back at the rate: 0.1 s gives one.
	now = now.Add(100 * time.Millisecond)
	require.Equal(t, PriorityNormal, f.priority("big"))
	require.Equal(t, PriorityBulk, f.priority("big"))

	// Idle accounts are forgotten after a sweep.
	now = now.Add(2 * time.Minute)
	require.Equal(t, PriorityNormal, f.priority("other"))
	f.mu.Lock()
	_, kept := f.buckets["big"]
	f.mu.Unlock()
	require.False(t, kept)
}

// A burst beyond the fair share goes in at bulk priority; another account's
// event right after it at normal priority, so River fetches it first.
func TestEnqueueFairPriority(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, account := range []string{"acct_big", "acct_small"} {
		id := ident.New(ident.Webhook)
		ct, keyID, err := keys.Encrypt([]byte("whsec_x"), []byte(id))
		require.NoError(t, err)
		require.NoError(t, store.InsertWebhook(ctx, tx, &store.Webhook{ID: id, AccountID: account, URL: "http://127.0.0.2:9/", URLNormalized: "http://127.0.0.2:9/", SecretCiphertext: ct, SecretKeyID: keyID, CreatedAt: time.Now()}))
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := NewEnqueuer(nil, func() time.Time { return now })
	require.NoError(t, err)
	burst := make([]*Event, int(FairBurstDefault)+10)
	for i := range burst {
		burst[i] = &Event{AccountID: "acct_big", Type: "ping", Data: json.RawMessage(`{}`)}
	}
	for len(burst) > 0 {
		n := min(len(burst), MaxBatchSize)
		_, err = e.EnqueueMany(ctx, tx, burst[:n])
		require.NoError(t, err)
		burst = burst[n:]
	}
	_, err = e.Enqueue(ctx, tx, &Event{AccountID: "acct_small", Type: "ping", Data: json.RawMessage(`{}`)})
	require.NoError(t, err)

	rows, err := tx.Query(ctx, `SELECT d.account_id, j.priority, count(*) FROM deliveries d JOIN river_job j ON j.id = d.job_id GROUP BY 1, 2 ORDER BY 1, 2`)
	require.NoError(t, err)
	got := map[string]int{}
	for rows.Next() {
		var account string
		var priority, n int
		require.NoError(t, rows.Scan(&account, &priority, &n))
		got[fmt.Sprintf("%s/%d", account, priority)] = n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]int{
		"acct_big/1":   int(FairBurstDefault),
		"acct_big/2":   10,
		"acct_small/1": 1,
	}, got)
}

func TestInflight(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	f := newInflight(2)
	require.True(t, f.acquire(ctx, "wh_a"))
	require.True(t, f.acquire(ctx, "wh_a"))
	// Saturated and nothing finished yet: unknown counts as slow, no wait.
	start := time.Now()
	require.False(t, f.acquire(ctx, "wh_a"))
	require.Less(t, time.Since(start), 500*time.Millisecond, "no wait (a wait would be up to 1 s); the margin is for a loaded machine")
	require.True(t, f.acquire(ctx, "wh_b"), "another webhook is unaffected")

	// Fast attempts: a saturated caller waits for the next free slot.
	f.release("wh_a", 5*time.Millisecond, endAnswered)
	require.True(t, f.acquire(ctx, "wh_a"))
	acquired := make(chan bool)
	go func() { acquired <- f.acquire(ctx, "wh_a") }()
	waitForWaiters(t, f, "wh_a", 1) // it waits rather than giving up
	f.release("wh_a", 5*time.Millisecond, endAnswered)
	require.True(t, <-acquired)

	// Slow attempts: no waiting, the caller snoozes.
	g := newInflight(1)
	require.True(t, g.acquire(ctx, "wh_slow"))
	g.release("wh_slow", 5*time.Second, endAnswered)
	require.True(t, g.acquire(ctx, "wh_slow"))
	require.False(t, g.acquire(ctx, "wh_slow"))

	// Saturated snoozes grow with the job's snooze count, within bounds.
	require.InDelta(t, float64(SaturatedSnoozeMin), float64(saturatedSnooze(nil)), float64(SaturatedSnoozeMin)/4)
	require.LessOrEqual(t, saturatedSnooze([]byte(`{"snoozes":40}`)), SaturatedSnoozeMax*5/4)
	require.GreaterOrEqual(t, saturatedSnooze([]byte(`{"snoozes":40}`)), SaturatedSnoozeMax*3/4)
}

// A released slot goes to the first waiter, one waiter per slot, and the
// count never exceeds the cap; a waiter whose context ends while it is
// handed a slot gives it to the next.
func TestInflightHandsSlotsOverInTurn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newInflight(1)
	require.True(t, f.acquire(ctx, "wh_a"))
	f.release("wh_a", time.Millisecond, endAnswered) // fast: the saturated wait
	require.True(t, f.acquire(ctx, "wh_a"))

	// Three waiters, queued in a known order.
	got := make(chan int, 3)
	for i := range 3 {
		go func() {
			if f.acquire(ctx, "wh_a") {
				got <- i
			}
		}()
		waitForWaiters(t, f, "wh_a", i+1)
	}
	for want := range 3 {
		f.release("wh_a", time.Millisecond, endAnswered)
		select {
		case i := <-got:
			require.Equal(t, want, i, "first come, first served")
		case <-time.After(5 * time.Second):
			t.Fatalf("waiter %d was not handed the slot", want)
		}
		select {
		case i := <-got:
			t.Fatalf("one release woke a second waiter (%d)", i)
		case <-time.After(20 * time.Millisecond):
		}
		f.mu.Lock()
		require.Equal(t, 1, f.hooks["wh_a"].n, "the handed slot stays counted")
		require.Len(t, f.hooks["wh_a"].starts, 1)
		f.mu.Unlock()
	}

	// A waiter whose context is cancelled leaves the queue.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan bool)
	go func() { done <- f.acquire(cctx, "wh_a") }()
	waitForWaiters(t, f, "wh_a", 1)
	cancel()
	require.False(t, <-done)
	f.mu.Lock()
	require.Empty(t, f.hooks["wh_a"].waiters)
	f.mu.Unlock()

	// Handed a slot as its context ended: it passes the slot on.
	w := &slotWaiter{handed: make(chan struct{}, 1)}
	f.mu.Lock()
	h := f.hooks["wh_a"]
	h.waiters = append(h.waiters, w)
	f.mu.Unlock()
	f.release("wh_a", time.Millisecond, endAnswered) // hands the slot to w
	f.mu.Lock()
	require.Equal(t, 1, h.n)
	f.mu.Unlock()
	next := make(chan bool)
	go func() { next <- f.acquire(ctx, "wh_a") }()
	waitForWaiters(t, f, "wh_a", 1)
	// w's acquire, ending on its context with the slot already handed.
	f.mu.Lock()
	require.False(t, f.leave(h, w, false))
	f.mu.Unlock()
	require.True(t, <-next, "the slot went on to the next waiter")
	f.mu.Lock()
	require.Equal(t, 1, h.n)
	require.Len(t, h.starts, 1)
	f.mu.Unlock()
}

// A webhook's cap starts at WebhookConcurrencyStart, grows by one per answered attempt
// (each answer starts two waiting jobs) up to the configured cap, halves
// per timeout but never below the start, and stays put on other failures.
// While it grows and nothing has finished, a burst waits in process as
// long as the jobs in flight and waiting fit in the configured cap; a
// webhook whose oldest attempt has run a while without an answer turns
// jobs away at the start.
func TestInflightCapGrowsWithAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	limitOf := func(f *inflight, id string) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.hooks[id].limit
	}

	f := newInflight(40)
	for range WebhookConcurrencyStart {
		require.True(t, f.acquire(ctx, "wh_new"))
	}
	require.Equal(t, WebhookConcurrencyStart, limitOf(f, "wh_new"))
	// A burst to a new endpoint: up to 40 in flight and waiting, the
	// rest turned away at once.
	got := make(chan bool, 40)
	for i := range 40 - WebhookConcurrencyStart {
		go func() { got <- f.acquire(ctx, "wh_new") }()
		waitForWaiters(t, f, "wh_new", i+1)
	}
	start := time.Now()
	require.False(t, f.acquire(ctx, "wh_new"), "in flight and waiting fill the configured cap")
	require.Less(t, time.Since(start), 500*time.Millisecond, "turned away without waiting (the margin is for a loaded machine)")
	require.True(t, f.wouldTurnAway("wh_new"))

	// One answer: the cap grows by one and two waiters start.
	f.release("wh_new", 5*time.Millisecond, endAnswered)
	require.True(t, <-got)
	require.True(t, <-got)
	require.Equal(t, WebhookConcurrencyStart+1, limitOf(f, "wh_new"))
	waitForWaiters(t, f, "wh_new", 40-WebhookConcurrencyStart-2)
	f.mu.Lock()
	require.Equal(t, WebhookConcurrencyStart+1, f.hooks["wh_new"].n)
	f.mu.Unlock()
	// Each answer starts two more until all are in: the cap grows one per
	// answer, and every slot is taken.
	for served := 2; served < 40-WebhookConcurrencyStart; served += 2 {
		f.release("wh_new", 5*time.Millisecond, endAnswered)
		require.True(t, <-got)
		require.True(t, <-got)
	}
	f.mu.Lock()
	require.Empty(t, f.hooks["wh_new"].waiters)
	require.Equal(t, WebhookConcurrencyStart+(40-WebhookConcurrencyStart)/2, f.hooks["wh_new"].limit)
	require.Equal(t, f.hooks["wh_new"].limit, f.hooks["wh_new"].n)
	f.mu.Unlock()
	for range 100 {
		f.release("wh_new", 5*time.Millisecond, endAnswered)
		require.True(t, f.acquire(ctx, "wh_new"))
	}
	require.Equal(t, 40, limitOf(f, "wh_new"), "grown to the configured cap, no further")
	for range 40 - (WebhookConcurrencyStart + (40-WebhookConcurrencyStart)/2) {
		require.True(t, f.acquire(ctx, "wh_new"))
	}
	f.mu.Lock()
	require.Equal(t, 40, f.hooks["wh_new"].n, "room for 40 in flight")
	f.mu.Unlock()

	// Timeouts halve it, down to the start; other failures leave it.
	f.release("wh_new", 10*time.Second, endTimedOut)
	require.Equal(t, 20, limitOf(f, "wh_new"))
	f.release("wh_new", time.Millisecond, endFailed)
	require.Equal(t, 20, limitOf(f, "wh_new"))
	for range 3 {
		f.release("wh_new", 10*time.Second, endTimedOut)
	}
	require.Equal(t, WebhookConcurrencyStart, limitOf(f, "wh_new"))

	// A black hole: nothing answered and the oldest has run a while. Its
	// start's worth of attempts in flight, every other job turned away.
	g := newInflight(40)
	for range WebhookConcurrencyStart {
		require.True(t, g.acquire(ctx, "wh_hole"))
	}
	g.slowAfter = 0 // as if the oldest had run for a second
	start = time.Now()
	require.False(t, g.acquire(ctx, "wh_hole"))
	require.Less(t, time.Since(start), 500*time.Millisecond, "no wait (the margin is for a loaded machine)")
	require.True(t, g.wouldTurnAway("wh_hole"))

	// A configured cap below the start is the start.
	require.Equal(t, 4, newInflight(4).start)
}

// waitForWaiters waits until n jobs wait in acquire for one of webhookID's
// slots.
func waitForWaiters(t *testing.T, f *inflight, webhookID string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.hooks[webhookID].waiters) == n
	}, 5*time.Second, time.Millisecond)
}

// A job turned away by a saturated webhook waits until a slot should free:
// the oldest attempt's start plus the attempt timeout when none has
// finished (a black hole) and the oldest has run a while, plus the average
// attempt once some have; never
// less than its own backoff, never more than the maximum snooze (+25%).
func TestInflightFreeIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const timeout = 8 * time.Second

	f := newInflight(2)
	require.Zero(t, f.freeIn("wh_hole", timeout), "unknown webhook: a slot is free")
	require.True(t, f.acquire(ctx, "wh_hole"))
	require.Zero(t, f.freeIn("wh_hole", timeout), "not saturated")
	require.True(t, f.acquire(ctx, "wh_hole"))
	require.Zero(t, f.freeIn("wh_hole", timeout), "nothing finished, but only just started: maybe a burst to a healthy endpoint")
	f.slowAfter = 0 // as if the oldest had run for a second
	hole := f.freeIn("wh_hole", timeout)
	require.LessOrEqual(t, hole, timeout)
	require.Greater(t, hole, timeout/2, "nothing finished: the oldest attempt runs to the timeout (the margin is for a loaded machine)")

	// The wait covers it: every job behind the black hole looks once per
	// attempt timeout, from its first snooze on (±25% jitter only upward).
	for range 20 {
		d := saturatedWait(nil, hole)
		require.GreaterOrEqual(t, d, hole)
		require.LessOrEqual(t, d, hole*5/4)
	}
	require.LessOrEqual(t, saturatedWait(nil, time.Hour), SaturatedSnoozeMax*5/4, "capped")
	// A slot expected soon: the job's own backoff rules.
	require.InDelta(t, float64(SaturatedSnoozeMin), float64(saturatedWait(nil, time.Millisecond)), float64(SaturatedSnoozeMin)/4)

	// Attempts that finish (4 s on average): the next frees when the
	// oldest in flight has run that long, well before the timeout.
	g := newInflight(1)
	require.True(t, g.acquire(ctx, "wh_slow"))
	g.release("wh_slow", 4*time.Second, endAnswered)
	require.True(t, g.acquire(ctx, "wh_slow"))
	slow := g.freeIn("wh_slow", timeout)
	require.LessOrEqual(t, slow, 4*time.Second)
	require.Greater(t, slow, 2*time.Second, "the margin is for a loaded machine")

	// Each release takes its attempt's start away.
	f.release("wh_hole", 0, endAnswered)
	f.release("wh_hole", 0, endAnswered)
	require.Zero(t, f.freeIn("wh_hole", timeout), "nothing in flight")
	require.Empty(t, f.hooks["wh_hole"].starts)
}

// The jobs a saturated webhook turns away get turns one slot interval (an
// attempt's time ÷ the cap) apart, from when the next slot should free, at
// most SaturatedTurnsMax ahead (past it, at random in its second half): a
// backlog behind a black hole comes back about as fast as its slots free,
// not every job every SaturatedSnoozeMax.
// When the endpoint speeds up, the turns still ahead count at its new pace.
func TestInflightTurns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const timeout = 10 * time.Second
	f := newInflight(100) // a cap of 100, starting at 10
	turn := func() time.Duration {
		_, wait := f.turn("wh_hole", timeout)
		return wait
	}
	require.Zero(t, turn(), "unknown webhook: no turn")
	for range 10 {
		require.True(t, f.acquire(ctx, "wh_hole"))
	}
	require.Zero(t, turn(), "nothing known yet: maybe a burst to a healthy endpoint")
	f.slowAfter = 0 // as if the oldest had run for a second

	// A black hole: 10 slots, none finishing before the 10 s timeout.
	first := turn()
	require.Greater(t, first, timeout/2, "the first turn is when the oldest attempt times out (the margin is for a loaded machine)")
	require.LessOrEqual(t, first, timeout)
	prev := first
	for range 20 {
		next := turn()
		require.InDelta(t, float64(prev+time.Second), float64(next), float64(100*time.Millisecond), "one turn per slot interval, 10 s / 10")
		prev = next
	}
	for range 300 {
		prev = turn()
	}
	for range 100 {
		d := turn()
		require.LessOrEqual(t, d, SaturatedTurnsMax, "turns go at most SaturatedTurnsMax ahead")
		require.GreaterOrEqual(t, d, SaturatedTurnsMax/2, "past it, a job comes back within its second half, at random")
		prev = max(prev, d)
	}
	require.Greater(t, prev, SaturatedTurnsMax*9/10)

	// The endpoint answers in 100 ms now, its cap grown to 20: the ~300
	// turns ahead count at 5 ms each.
	for range 10 {
		f.release("wh_hole", 100*time.Millisecond, endAnswered)
	}
	filled := 0
	for f.tryAcquire("wh_hole") {
		filled++
	}
	require.Equal(t, 20, filled, "the cap grew to 20")
	sped := turn()
	require.Greater(t, sped, time.Second, "~300 turns ahead at 5 ms")
	require.Less(t, sped, 2*time.Second, "the turns ahead count at the endpoint's new pace")
}

// wouldTurnAway says what acquire would do at once: turn away a job for a
// webhook at its cap whose attempts are not fast (so the bulk gate doesn't
// hold that job in a worker slot first), take one that has room or whose
// attempts finish fast (acquire waits for their slot).
func TestInflightWouldTurnAway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newInflight(1)
	require.False(t, f.wouldTurnAway("wh_hole"), "unknown webhook: room")
	require.True(t, f.acquire(ctx, "wh_hole"))
	require.True(t, f.wouldTurnAway("wh_hole"), "at the cap, nothing finished")
	require.False(t, f.acquire(ctx, "wh_hole"), "and acquire agrees")

	require.True(t, f.acquire(ctx, "wh_fast"))
	f.release("wh_fast", time.Millisecond, endAnswered)
	require.True(t, f.acquire(ctx, "wh_fast"))
	require.False(t, f.wouldTurnAway("wh_fast"), "at the cap, but its attempts are fast: acquire waits for a slot")
}

// A backlog waiting for turns given while its webhook was a black hole is
// to be woken once the endpoint answers fast again (inflight.release says
// so, to one wake at a time), not on a hang, a slow answer, or a hang left
// from before the recovery; a round wakes what the endpoint takes in
// recoveryWakeEvery at its cap, none while the cap is full; once the wake
// is done, a fast answer wakes nothing until new slow turns are given.
func TestInflightRecovery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const timeout = 10 * time.Second
	f := newInflight(100) // a cap of 100, starting at 10
	for range 10 {
		require.True(t, f.acquire(ctx, "wh"))
	}
	f.slowAfter = 0 // as if the oldest had run for a second
	for range 200 {
		f.turn("wh", timeout) // a black hole's turns, 1 s apart: ~200 s ahead
	}
	n, over := f.recoveryRound("wh")
	require.True(t, over, "not recovered: no round")
	require.Zero(t, n)

	require.False(t, f.release("wh", timeout, endTimedOut), "a hang is no recovery")
	require.True(t, f.acquire(ctx, "wh"))
	require.False(t, f.release("wh", 2*time.Second, endAnswered), "a slow answer is no recovery")
	require.True(t, f.acquire(ctx, "wh"))
	// Fast answers bring the recent pace (half weight) from 2 s under
	// fastAttempt on the fourth: 1.0, 0.5, 0.26, 0.13 s.
	for i := range 3 {
		require.False(t, f.release("wh", 5*time.Millisecond, endAnswered), "answer %d: the pace not yet fast", i+1)
		require.True(t, f.acquire(ctx, "wh"))
	}
	// A hang from before the recovery ends: it doesn't reset the pace.
	require.False(t, f.release("wh", timeout, endTimedOut))
	require.True(t, f.acquire(ctx, "wh"))
	require.True(t, f.release("wh", 5*time.Millisecond, endAnswered), "recovered: fast answers, turns over recoveryLag ahead")
	require.True(t, f.acquire(ctx, "wh"))
	require.False(t, f.release("wh", 5*time.Millisecond, endAnswered), "one wake at a time")

	for f.tryAcquire("wh") { // the cap, grown with the answers, full
	}
	f.mu.Lock()
	limit, answered := f.hooks["wh"].limit, f.hooks["wh"].answered
	f.mu.Unlock()
	n, over = f.recoveryRound("wh")
	require.False(t, over)
	require.Zero(t, n, "the cap is full: none woken this round")
	f.release("wh", 5*time.Millisecond, endAnswered)
	n, over = f.recoveryRound("wh")
	require.False(t, over)
	want := min(max(int(float64(limit+1)*float64(recoveryWakeEvery)/float64(answered+(5*time.Millisecond-answered)/2)), limit+1), recoveryWakeMax)
	require.Equal(t, want, n, "what the endpoint takes in a round at its cap and pace")
	require.GreaterOrEqual(t, n, limit)

	// A round that woke every job waiting that long: the wake goes on only
	// for turns given since it began.
	before := time.Now()
	for f.tryAcquire("wh") {
	}
	f.turn("wh", timeout) // a woken job turned away again, far ahead
	f.drained("wh", before)
	_, over = f.recoveryRound("wh")
	require.False(t, over, "a turn given since the round began: another round")
	f.drained("wh", time.Now())
	_, over = f.recoveryRound("wh")
	require.True(t, over, "none given since: the wake is over")

	f.wakeDone("wh", false)
	require.False(t, f.release("wh", 5*time.Millisecond, endAnswered), "the wake done, none left far ahead: its turns forgotten")

	// A wake that ends with turns still far ahead (the answers slowed for a
	// while, or the cap turned woken jobs away again) leaves them to the
	// next fast answer's wake; one that gave up forgets them.
	for f.tryAcquire("wh") {
	}
	f.turn("wh", timeout)
	require.True(t, f.release("wh", 5*time.Millisecond, endAnswered), "new slow turns far ahead: a wake")
	f.wakeDone("wh", false)
	require.True(t, f.acquire(ctx, "wh"))
	require.True(t, f.release("wh", 5*time.Millisecond, endAnswered), "turns still far ahead after the wake: another")
	f.wakeDone("wh", true)
	require.True(t, f.acquire(ctx, "wh"))
	require.False(t, f.release("wh", 5*time.Millisecond, endAnswered), "a wake that gave up: its turns forgotten")

	// A hang that started after the latest answer: not recovered.
	for f.tryAcquire("wh") {
	}
	for range 20 {
		f.turn("wh", timeout) // new slow turns (the average is still slow)
	}
	f.mu.Lock()
	require.True(t, f.recovered(f.hooks["wh"], time.Now()), "new slow turns, fast answers: recovered")
	f.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // sleeps because: the hang below must start after the latest answer
	require.False(t, f.release("wh", 10*time.Millisecond, endTimedOut))
	_, over = f.recoveryRound("wh")
	require.True(t, over, "a hang after the answers: the pace starts again")
}
