package engine

import (
	"net/http"
	"time"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/schedule"
)

// attemptFacts are what decides where an attempt leads: its result, its
// number, when it ended and how the job's context stood. Everything comes
// in; decideAttempt reads no clock and does no I/O.
type attemptFacts struct {
	// Result is the attempt's result (Worker.Send).
	Result *outbound.Result
	// Attempt is the attempt's number in its generation, 1..MaxAttempts.
	Attempt int
	// End is when the attempt ended; the next one is due a delay after it.
	End time.Time
	// Stopping is true when the job's context was cancelled by our own
	// shutdown, not by its deadline.
	Stopping bool
	// OnGone is the webhook's on_gone (store.OnGonePause or not).
	OnGone string
}

// attemptDecision is the state an attempt leads to, and what else it asks
// of the worker.
type attemptDecision struct {
	// State is the delivery's state after the attempt: succeeded, pending
	// or dead.
	State string
	// NextAttemptAt is when the next attempt is due (pending only).
	NextAttemptAt *time.Time
	// Counted is false for an attempt cut short by our own shutdown: it
	// does not count towards the ten and is retried at once.
	Counted bool
	// ErrorKind is the error kind recorded with the attempt, "" on
	// success: the result's, or ErrorKindInterrupted.
	ErrorKind string
	// PauseWebhook asks the worker to pause the webhook (reason gone) once
	// the attempt is recorded: it answered 410 and its on_gone is pause.
	PauseWebhook bool
}

// decideAttempt decides where an attempt leads, on schedule s:
//
//   - a 2xx answer: succeeded;
//   - cancelled by our own shutdown: pending, due at once, not counted;
//   - any other failure (a non-2xx answer, a timeout, a network error, a
//     blocked address, an undecryptable secret) on the last attempt: dead;
//   - before it: pending, due the schedule's delay for the next attempt
//     after End; a 429 or 503 whose Retry-After asked for longer waits
//     that long, but never longer than the delay after the next attempt
//     (on the next-to-last attempt, never longer than the next's).
//
// A 410 answer with on_gone pause asks for the webhook's pause as well,
// whatever the state.
func decideAttempt(s *schedule.Schedule, f attemptFacts) attemptDecision {
	res := f.Result
	d := attemptDecision{
		Counted:      true,
		ErrorKind:    res.ErrorKind,
		PauseWebhook: res.StatusCode == http.StatusGone && f.OnGone == store.OnGonePause,
	}
	switch {
	case res.Succeeded():
		d.State = store.StateSucceeded
	case res.ErrorKind == outbound.ErrorKindCanceled && f.Stopping:
		// Cut short by our own shutdown: recorded, not counted, retried
		// as soon as a worker is up again.
		d.ErrorKind = ErrorKindInterrupted
		d.Counted = false
		d.State = store.StatePending
		end := f.End
		d.NextAttemptAt = &end // due now
	case f.Attempt >= schedule.MaxAttempts:
		d.State = store.StateDead
	default:
		delay, _ := s.Delay(f.Attempt + 1)
		if res.RetryAfter > 0 {
			// A 429 or 503 that says when to come back: never sooner than
			// the schedule, never later than the delay after the next.
			after, ok := s.Delay(f.Attempt + 2)
			if !ok {
				after = delay
			}
			delay = max(delay, min(res.RetryAfter, after))
		}
		next := f.End.Add(delay)
		d.State = store.StatePending
		d.NextAttemptAt = &next
	}
	return d
}
