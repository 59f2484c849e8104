package dispatcher

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mono/webhookd/internal/batch"
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
//     5% wider apart than starts, store.SlotInterval, so the claims catch
//     up after a late job). A slot in the
//     future is written as the delivery's due time (next_attempt_at =
//     throttle_slot = the slot) and the job snoozes until it: no attempt
//     used, no worker held, and the delivery is not due before its slot, so
//     the oldest-due gauge and the retry lateness don't count the wait. The
//     job's next run (its second fetch) finds the slot it holds and goes
//     on. Reservations of one process are batched (one statement for every
//     job reserving at that moment, and one to move their deliveries).
//   - Claim. Right before sending, the job claims the start: last_start
//     moves to now only if it is at least 1/N s earlier. So the recorded
//     start times of one webhook are at least 1/N s apart, whichever
//     process makes them and however late a job holding a slot runs: never
//     more than N in a second. A refused claim waits in process until the
//     next start may be (at most 1/N s each time, throttleClaimWait in
//     all) and tries again.
//
// Cost for a limited webhook: per attempt, one row update reserving (shared
// with the other jobs reserving in that batch), one delivery update when
// the slot is later than now, one claim update, and a snooze with a second
// fetch when it waited. A webhook without a limit pays nothing (two columns
// more in the delivery's load).

// throttleStaleAfter: a slot held by a delivery whose job runs this long
// after it (a paused webhook resumed, a job re-queued by the reconciler)
// no longer counts; the job reserves again.
const throttleStaleAfter = 5 * time.Second

// throttleClaimWait bounds how long a job waits in process for its start
// claim; past it the job gives its worker back and snoozes briefly.
const throttleClaimWait = 2 * time.Second

// throttle reserves and claims rate-limited webhooks' start slots.
type throttle struct {
	db       store.DB
	now      func() time.Time
	reserves *batch.Batcher[store.SlotRequest, time.Time]
	holds    *batch.Batcher[store.SlotHold, bool]
}

func newThrottle(db store.DB, now func() time.Time, timeout time.Duration) *throttle {
	t := &throttle{db: db, now: now}
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

// heldSlot is the slot target was given, if it still holds it at now.
func heldSlot(target *store.Target, now time.Time) *time.Time {
	s := target.ThrottleSlot
	if s == nil || target.NextAttemptAt == nil || !s.Equal(*target.NextAttemptAt) || now.Sub(*s) > throttleStaleAfter {
		return nil
	}
	return s
}

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
	if heldSlot(target, now) != nil {
		return true, 0, nil
	}
	slot, err := t.reserves.Do(ctx, store.SlotRequest{WebhookID: target.WebhookID, Interval: store.SlotInterval(*target.RateLimit)})
	if err != nil {
		return true, 0, err
	}
	if !slot.After(t.now()) {
		return true, 0, nil
	}
	if _, err := t.holds.Do(ctx, store.SlotHold{Target: target, JobID: jobID, Slot: slot}); err != nil {
		return true, 0, err
	}
	// Held or not (a stale job: its next run finds that out), back at
	// the slot.
	return true, max(slot.Sub(t.now()), time.Millisecond), nil
}

// claim claims an attempt start of webhookID under a limit of perSecond,
// waiting in process while another start is too recent, up to
// throttleClaimWait. It returns the start claimed, or ok false when none
// came in time (or ctx ended).
func (t *throttle) claim(ctx context.Context, webhookID string, perSecond int) (start time.Time, ok bool, err error) {
	interval := store.RateInterval(perSecond)
	deadline := time.Now().Add(throttleClaimWait)
	for {
		now := t.now().Truncate(time.Microsecond)
		ok, next, err := store.ClaimStart(ctx, t.db, webhookID, interval, now)
		if err != nil || ok {
			return now, ok, err
		}
		wait := max(next.Sub(now), 0) + time.Duration(rand.Int64N(int64(interval)/4+1))
		if time.Now().Add(wait).After(deadline) {
			return time.Time{}, false, nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return time.Time{}, false, nil
		case <-timer.C:
		}
	}
}

// claimSnooze is how long a job whose claim timed out waits: about one
// interval, with jitter.
func claimSnooze(perSecond int) time.Duration {
	interval := store.RateInterval(perSecond)
	return interval + time.Duration(rand.Int64N(int64(interval)+1))
}

// giveBack returns a slot of webhookID taken by acquire for an attempt
// that was not made (its start claim timed out), without folding anything
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
