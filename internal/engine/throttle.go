package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mono/webhookd/internal/batch"
	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/store"
)

// Rate limits per webhook (rate_limit_per_second, 1–100): at most N
// attempts started per second across every process, burst 1. The
// coordination is in PostgreSQL, in webhook_throttle (one row per limited
// webhook; never on webhooks, whose rows enqueue reads without locks), in
// two steps:
//
//   - Reserve. A delivery's job, once its delivery is due, reserves the
//     webhook's next start slot (next_at moves on by 1.05/N s: slots are
//     5% wider apart than starts, store.SlotInterval, so the starts catch
//     up after a late job). A slot in the future is written as the
//     delivery's due time (next_attempt_at = throttle_slot = the slot), its
//     job is raised to River's first priority and snoozes until it: no
//     attempt used, no worker held, and the delivery is not due before its
//     slot, so the oldest-due gauge and the retry lateness don't count the
//     wait. Reservations of one process are batched (one statement for
//     every job reserving at that moment, and one to hold their slots).
//   - At enqueue, most deliveries take the first step there: the enqueue
//     reserves the slots of every delivery of the batch to a limited
//     webhook (not paused, not FIFO) in one statement in the producer's
//     transaction (k consecutive slots per webhook), and inserts each one
//     due at its slot (next_attempt_at = throttle_slot = the slot) with
//     its River job scheduled at it, at River's first priority. Its first
//     run is then the claim: no reservation, no snooze, one fetch. The
//     reservation never waits: a webhook whose row another transaction
//     holds (FOR UPDATE SKIP LOCKED) gets no slots from this enqueue, and
//     its deliveries reserve at their first run. The rows it moved stay
//     locked until the producer's transaction ends, so that webhook's
//     claims and reservations wait for its commit. What it saves: a job
//     run and three row writes per new delivery (2,000 first runs at the
//     head of the queue cost a healthy drain beside them ~2.4 ms apiece at
//     load average 11 – 32; on a quieter machine the ratio was ~0.9 with or
//     without them: BENCHMARKS.md, Rate limits part 4).
//   - Claim. The job's next run (its second fetch) finds the slot it holds,
//     however late it runs, and claims its start: the webhook's next start
//     at least 1/N s after the last one given (last_start), in the order
//     the claims come, so the recorded starts of one webhook are at least
//     1/N s apart whichever process makes them: never more than N in a
//     second. A job on time gets its start at once; one behind others that
//     ran late waits in process for its turn.
//
// At most two fetches per delivery attempt: the reservation, then the
// slot. The second fetch comes at the slot, not behind a backlog: River
// fetches by priority, then scheduled_at, so at the bulk priority a held
// job fell due behind every bulk job enqueued before its slot, ran seconds
// late with the others that fell due meanwhile, and their claims (which
// took whoever came first and waited at most 2 s) sent most of them round
// again (measured: 770 claims timed out and 73 slots went stale for 2,000
// deliveries, 532 fetched three times or more). The one exception: a job
// whose turn would come more than throttleClaimWait ahead (its webhook's
// starts run that far behind their slots: a paused webhook resumed with
// its held deliveries, a machine stalled for seconds) takes a new slot,
// after every start given, and snoozes until it: a third fetch, never a
// worker held for long. So does a job the webhook's in-flight cap turns
// away (slow answers, or jobs late at their slots together: at workers'
// start after a pause or an outage, 45 deliveries given their slots at
// enqueue while no worker ran came due at once, and the cap's snooze then
// a refused claim cost 32 of them a third fetch).
//
// Cost for a limited webhook: per first attempt slotted at enqueue, a
// share of the enqueue's reservation statement and one claim update; per
// other attempt (retries, replays, resumes, FIFO heads, a busy row at
// enqueue), a share of one reservation statement, one delivery and River
// job update when the slot is later than now, one claim update, and a
// snooze with a second fetch when it waited. A webhook without a limit
// pays nothing (two columns more in the delivery's load, one in the
// enqueue's webhook list).

// throttleClaimWait bounds how long a job waits in process for its turn to
// start; a turn further ahead takes a new slot instead.
const throttleClaimWait = 2 * time.Second

// throttle reserves and claims rate-limited webhooks' start slots.
type throttle struct {
	db       store.DB
	now      func() time.Time
	metrics  *metrics.Metrics // counts the re-slots (nil: none)
	reserves *batch.Batcher[store.SlotRequest, time.Time]
	holds    *batch.Batcher[store.SlotHold, bool]
}

func newThrottle(db store.DB, now func() time.Time, timeout time.Duration, m *metrics.Metrics) *throttle {
	t := &throttle{db: db, now: now, metrics: m}
	// One reservation statement at a time per process (and one hold):
	// the webhooks' rows are locked in order within it, the batches grow
	// under load, and a transaction (tests) serves one at a time.
	t.reserves = batch.New(func(ctx context.Context, reqs []store.SlotRequest) ([]time.Time, error) {
		return store.ReserveSlots(ctx, db, reqs, t.now())
	}, 1, batchMax, timeout)
	t.holds = batch.New(func(ctx context.Context, hs []store.SlotHold) ([]bool, error) {
		held, err := store.HoldSlots(ctx, db, hs, t.now())
		if err != nil {
			return nil, err
		}
		out := make([]bool, len(hs))
		for i, h := range hs {
			out[i] = held[h.Target.DeliveryID]
		}
		return out, nil
	}, 1, batchMax, timeout)
	return t
}

// heldSlot is the slot target was given, if it still holds it (its due
// time is still that slot: a replay or a pause moves it), however late its
// job runs.
func heldSlot(target *store.Target) *time.Time {
	s := target.ThrottleSlot
	if s == nil || target.NextAttemptAt == nil || !s.Equal(*target.NextAttemptAt) {
		return nil
	}
	return s
}

// waitedForSlot reports whether target's attempt comes after a wait for a
// start slot of its rate limit. Its answer doesn't count as live traffic
// for the bulk gate: its job runs at River's first priority (raised when it
// was given its slot), and a limited webhook's backlog going out at N a
// second would otherwise keep every other account's backlog gated for as
// long as it lasts (measured: the healthy endpoint's ratio fell to 0.39
// beside a 5/s backlog whose first 200 deliveries had the normal priority).
func waitedForSlot(target *store.Target) bool { return heldSlot(target) != nil }

// firstDue is when target's first attempt was due, for the first-attempt
// latency: its slot when it was given one, else its creation.
func firstDue(target *store.Target) time.Time {
	if s := target.ThrottleSlot; s != nil && target.NextAttemptAt != nil && s.Equal(*target.NextAttemptAt) {
		return *s
	}
	return target.CreatedAt
}

// reserve decides whether target, due at now, may go on to its attempt:
// limited reports whether its webhook has a rate limit at all, and snooze,
// when positive, is how long its job waits for the slot it was given.
func (t *throttle) reserve(ctx context.Context, target *store.Target, jobID int64, now time.Time) (limited bool, snooze time.Duration, err error) {
	if target.RateLimit == nil {
		return false, 0, nil
	}
	if heldSlot(target) != nil {
		return true, 0, nil
	}
	snooze, err = t.reserveAndHold(ctx, target, jobID)
	return true, snooze, err
}

// reserveAndHold reserves target's webhook's next slot and, when it is
// later than now, holds it for target's job (see store.HoldSlots): it
// returns how long the job snoozes, 0 when the slot is now.
func (t *throttle) reserveAndHold(ctx context.Context, target *store.Target, jobID int64) (time.Duration, error) {
	slot, err := t.reserves.Do(ctx, store.SlotRequest{WebhookID: target.WebhookID, Interval: store.SlotInterval(*target.RateLimit)})
	if err != nil {
		return 0, err
	}
	if !slot.After(t.now()) {
		return 0, nil
	}
	if _, err := t.holds.Do(ctx, store.SlotHold{Target: target, JobID: jobID, Slot: slot}); err != nil {
		return 0, err
	}
	// Held or not (a stale job: its next run finds that out), back at
	// the slot.
	return max(slot.Sub(t.now()), time.Millisecond), nil
}

// claim claims an attempt start of webhookID under a limit of perSecond:
// its next start, at least 1/N s after the last one given, if that comes
// within throttleClaimWait, waiting in process until it. It returns the
// start, or ok false when the turn is further ahead (or ctx ended while
// waiting: the start given then goes unused).
func (t *throttle) claim(ctx context.Context, webhookID string, perSecond int) (start time.Time, ok bool, err error) {
	now := t.now().Truncate(time.Microsecond)
	start, ok, err = store.ClaimStart(ctx, t.db, webhookID, store.RateInterval(perSecond), now, now.Add(throttleClaimWait))
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	if d := start.Sub(t.now()); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return time.Time{}, false, nil
		case <-timer.C:
		}
	}
	return start, true, nil
}

// again is how long the job of target, whose start claim was refused (its
// turn further ahead than throttleClaimWait), snoozes: until a new slot it
// is given, after every start given so far; or, when it can't have one
// (ctx ended, the database failed), about an interval.
func (t *throttle) again(ctx context.Context, target *store.Target, jobID int64) time.Duration {
	if ctx.Err() == nil {
		t.metrics.ThrottleReslot()
		if snooze, err := t.reserveAndHold(ctx, target, jobID); err == nil {
			return snooze
		}
	}
	interval := store.RateInterval(*target.RateLimit)
	return interval + time.Duration(rand.Int64N(int64(interval)+1))
}

// giveBack returns a slot of webhookID taken by acquire for an attempt
// that was not made (its start claim was refused), without folding anything
// into the webhook's average or cap.
func (f *inflight) giveBack(webhookID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hooks[webhookID]
	if h == nil || h.n == 0 {
		return
	}
	if len(h.starts) > 0 {
		// The newest start is this one's (or as good as it).
		newest := 0
		for i, at := range h.starts {
			if at.After(h.starts[newest]) {
				newest = i
			}
		}
		h.starts = slices.Delete(h.starts, newest, newest+1)
	}
	f.free(h)
}

// ThrottleStart admits an attempt outside a job (a test send) to a webhook
// limited to perSecond: it reserves the webhook's next slot if it comes
// within soon, waits for it and claims the start. Without such a slot it
// reserves nothing, and wait says when the next one is.
func ThrottleStart(ctx context.Context, db store.DB, webhookID string, perSecond int, soon time.Duration) (start time.Time, wait time.Duration, ok bool, err error) {
	interval := store.RateInterval(perSecond)
	now := time.Now().Truncate(time.Microsecond)
	// soon is measured on the limit's own spacing: the slots' 5% slack
	// doesn't count against it (at 1/s, the next slot is 1.05 s away), nor
	// do the microseconds between concurrent test sends reading the clock
	// (a tenth of an interval).
	slack := store.SlotInterval(perSecond) - interval + interval/10
	slot, err := store.ReserveSlot(ctx, db, webhookID, store.SlotInterval(perSecond), now, now.Add(soon+slack))
	if errors.Is(err, store.ErrNoSlotSoon) {
		return time.Time{}, max(time.Until(slot), interval), false, nil
	}
	if err != nil {
		return time.Time{}, 0, false, err
	}
	if d := time.Until(slot); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return time.Time{}, 0, false, ctx.Err()
		case <-timer.C:
		}
	}
	t := &throttle{db: db, now: time.Now}
	start, ok, err = t.claim(ctx, webhookID, perSecond)
	if err == nil && !ok {
		wait = interval
	}
	return start, wait, ok, err
}

// intakeSlots hands out the start slots reserved at enqueue for the
// deliveries to rate-limited webhooks, consecutive per webhook, in the
// order reserveIntakeSlots counted them.
type intakeSlots struct {
	next     map[string]time.Time
	interval map[string]time.Duration
}

// takesIntakeSlot reports whether w's deliveries are given their slots at
// enqueue: a rate-limited webhook, not paused (its deliveries get no job)
// and not FIFO (a FIFO delivery waits for its turn in line, which no slot
// can foresee: it reserves when it is the head).
func takesIntakeSlot(w *store.LiveWebhook) bool {
	return w.RateLimit != nil && !w.Paused && !w.FIFO
}

// reserveIntakeSlots reserves, in tx, a slot for each delivery of targets
// (the new events' webhooks) to a webhook that takes them at enqueue
// (takesIntakeSlot): one statement for the whole batch. A webhook whose
// throttle row another transaction holds gets none; its deliveries reserve
// at their first run, as retries do.
func reserveIntakeSlots(ctx context.Context, tx store.DB, targets [][]store.LiveWebhook, now time.Time) (*intakeSlots, error) {
	runs := map[string]store.SlotRun{}
	for _, hooks := range targets {
		for k := range hooks {
			if w := &hooks[k]; takesIntakeSlot(w) {
				runs[w.ID] = store.SlotRun{Interval: store.SlotInterval(*w.RateLimit), N: runs[w.ID].N + 1}
			}
		}
	}
	s := &intakeSlots{}
	if len(runs) == 0 {
		return s, nil
	}
	firsts, err := store.ReserveIntakeSlots(ctx, tx, runs, now)
	if err != nil {
		return nil, fmt.Errorf("error reserving rate-limited webhooks' start slots: %w", err)
	}
	s.next, s.interval = firsts, make(map[string]time.Duration, len(firsts))
	for id := range firsts {
		s.interval[id] = runs[id].Interval
	}
	return s, nil
}

// take is the next slot reserved for a delivery to w, or nil when none
// was (w takes none at enqueue, or its row was busy).
func (s *intakeSlots) take(w store.LiveWebhook) *time.Time {
	next, ok := s.next[w.ID]
	if !ok || !takesIntakeSlot(&w) {
		return nil
	}
	s.next[w.ID] = next.Add(s.interval[w.ID])
	return &next
}
