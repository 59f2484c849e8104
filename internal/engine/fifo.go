package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// Ordered delivery per webhook ("ordering": "fifo"): deliveries to a FIFO
// webhook are attempted strictly in order, one at a time.
//
//   - The order. Enqueue gives each delivery to a FIFO webhook the next
//     number of the webhook's sequence (deliveries.fifo_seq), taken by an
//     UPDATE of its webhook_fifo row in the producer's transaction. The row
//     stays locked until that transaction ends, so enqueues to one FIFO
//     webhook commit one after another in sequence order: a delivery never
//     becomes visible below one already visible. The order is commit order
//     per webhook. Cost: producers enqueueing to the same FIFO webhook wait
//     for each other's commit (an outbox producer holding a long
//     transaction holds the others up as long); other webhooks, FIFO or
//     not, are not affected.
//   - The head. A FIFO webhook's line is its deliveries with a number in
//     state pending, paused or dead; the head is the lowest. Every delivery
//     keeps its own River job (so pause/resume, the reconciler, crash rescue
//     and replay treat it as any delivery), but a job whose delivery is not
//     the head sends nothing: it snoozes (fifoWait), without using an
//     attempt. The statement recording the head's success takes it out of
//     the line (it is no longer pending); the worker then wakes the next
//     head's job (store.WakeFIFOHead), which goes out on the queue's next
//     fetch.
//   - A dead head stays the head: the line is blocked (the API shows
//     fifo.blocked_by and the count waiting) until it is replayed (a new
//     generation: it succeeds and the line moves on, or dies and blocks
//     again) or skipped (POST /v1/webhooks/{id}/fifo/skip).
//   - A lost wake (a crash between the recording and the wake, or a job
//     running when it was woken) is found by the reconciler, which wakes
//     every line's due head whose job waits snoozed
//     (store.WakeDueFIFOHeads) each pass.
//
// So a delivery is attempted only when every delivery before it in line
// succeeded, was cancelled or was skipped, and only one is in flight:
// throughput per FIFO webhook is 1 / (round trip + recording + the next
// fetch).

// Waits of a delivery that is not its line's head. Its job is woken when
// it becomes the head (its predecessor succeeded or was skipped), so these
// only bound how late it goes should that wake be lost, together with the
// reconciler's pass: fifoStepWait per place from the head, plus the head's
// own wait for its next attempt when it failed, at least fifoMinWait (at
// least fifoBlockedWait behind a dead head: a replay's success or a skip
// wakes the next), at most fifoMaxWait. A line's waiting jobs so run about
// ln(length) times a second while its head is due (its places beyond
// fifoMaxWait's add length / fifoMaxWait), once per retry of the head and
// not between, instead of length / minute: a long line behind a failing
// endpoint costs little. The reconciler's pass, not fifoMaxWait, bounds a
// lost wake; fifoMaxWait, under the schedule's longest wait (4.26 h), only
// keeps every job looking now and then.
const (
	fifoStepWait    = time.Second
	fifoMinWait     = time.Second
	fifoMaxWait     = 4 * time.Hour
	fifoBlockedWait = 5 * time.Minute
)

// fifoWait is how long target's job waits because target is not its FIFO
// webhook's head; 0 when it is (or it is not in a line).
func (w *Worker) fifoWait(ctx context.Context, target *store.Target) (time.Duration, error) {
	if target.FIFOSeq == nil {
		return 0, nil
	}
	head, err := store.GetFIFOHead(ctx, w.db, target.WebhookID)
	if err != nil {
		return 0, err
	}
	switch {
	case head == nil:
		// Out of the line since it was loaded (ordering switched off):
		// look again at once.
		return fifoMinWait, nil
	case head.DeliveryID == target.DeliveryID:
		return 0, nil
	}
	return jitter(fifoFollowerWait(*target.FIFOSeq-head.Seq, head, w.cfg.Now())), nil
}

// fifoFollowerWait is how long a delivery places behind head (by sequence
// number) waits at now: see fifoStepWait.
func fifoFollowerWait(places int64, head *store.FIFOHead, now time.Time) time.Duration {
	wait := time.Duration(places) * fifoStepWait
	switch {
	case head.State == store.StateDead:
		wait = max(wait, fifoBlockedWait)
	case head.NextAttemptAt != nil && head.NextAttemptAt.After(now):
		wait += head.NextAttemptAt.Sub(now)
	}
	return min(max(wait, fifoMinWait), fifoMaxWait)
}

// jitter adds up to a tenth of d, so the waiting jobs of a line don't all
// look at once.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

// fifoAdvance wakes the job of the next head of target's line once target
// left it (succeeded); a failure is logged by the caller and costs only the
// next head's wait. When target is a replay (generation > 1) it was a dead
// head a moment ago, so the next head's job may be about to snooze for
// fifoBlockedWait: it wakes it again at each of fifoRewakes too (see
// wakeFIFOHeadAgain).
func (w *Worker) fifoAdvance(ctx context.Context, target *store.Target) error {
	if target.FIFOSeq == nil {
		return nil
	}
	_, err := store.WakeFIFOHead(ctx, w.db, target.WebhookID, w.cfg.Now())
	if target.Generation > 1 {
		wakeFIFOHeadAgain(w.db, target.WebhookID, w.cfg.Now, w.cfg.Logger)
	}
	return err
}

// takeFIFOSeqs gives the deliveries of events to FIFO webhooks (targets is
// parallel to events' deliveries) their places in line, in the order of
// events and of their deliveries.
func takeFIFOSeqs(ctx context.Context, db store.DB, events []*store.NewEvent, targets [][]store.LiveWebhook) error {
	counts := map[string]int{}
	for _, hooks := range targets {
		for _, h := range hooks {
			if h.FIFO {
				counts[h.ID]++
			}
		}
	}
	if len(counts) == 0 {
		return nil
	}
	next, err := store.TakeFIFOSeqs(ctx, db, counts)
	if err != nil {
		return fmt.Errorf("error taking FIFO sequence numbers: %w", err)
	}
	for i, ev := range events {
		for j, h := range targets[i] {
			seq, ok := next[h.ID]
			if !h.FIFO || !ok {
				continue
			}
			if ev.FIFOSeqs == nil {
				ev.FIFOSeqs = make([]int64, len(ev.DeliveryIDs))
			}
			ev.FIFOSeqs[j] = seq
			next[h.ID] = seq + 1
		}
	}
	return nil
}

// SkipFIFOHead takes the dead head deliveryID out of webhookID's line and
// wakes the next head's job, in one transaction on db (store.SkipFIFOHead:
// store.ErrNotBlocking when deliveryID is not the dead head); then it wakes
// the new head again (wakeFIFOHeadAgain). logger (nil: none) gets a debug
// line when a later wake fails.
func SkipFIFOHead(ctx context.Context, db store.DB, webhookID, deliveryID string, now func() time.Time, logger *zap.Logger) error {
	if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		return store.SkipFIFOHead(ctx, tx, webhookID, deliveryID, now().UTC())
	}); err != nil {
		return err
	}
	wakeFIFOHeadAgain(db, webhookID, now, logger)
	return nil
}

// wakeFIFOHeadAgain wakes webhookID's head's job again at each of
// fifoRewakes, in the background, after its line was unblocked (its dead
// head skipped, or replayed and succeeded).
//
// The first wake can't reach a job that is running, and the job waiting
// behind a dead head may be running at that moment: it has just seen the
// head dead and is about to snooze for fifoBlockedWait, which River records
// only after the run returns. Waking again once that snooze is recorded
// bounds the delay to seconds. A later wake finds nothing to do when the
// head's job already runs or ran. logger (nil: none) gets a debug line when
// a wake fails.
func wakeFIFOHeadAgain(db store.DB, webhookID string, now func() time.Time, logger *zap.Logger) {
	if logger == nil {
		logger = zap.NewNop()
	}
	start := time.Now()
	go func() {
		for _, at := range fifoRewakes {
			time.Sleep(time.Until(start.Add(at)))
			wakeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := store.WakeFIFOHead(wakeCtx, db, webhookID, now().UTC())
			cancel()
			if err != nil {
				logger.Debug("error waking a FIFO head again", zap.String("webhook_id", webhookID), zap.Error(err))
				return
			}
		}
	}()
}

// fifoRewakes are when, after a line was unblocked, its new head's job is
// woken again (see wakeFIFOHeadAgain).
var fifoRewakes = []time.Duration{time.Second, 5 * time.Second, 20 * time.Second}
