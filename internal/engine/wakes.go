package engine

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// Wakes: River fetches a queue's jobs when one is inserted available (its
// insert notification) and at the queue's poll. Nothing tells it when a
// job that waits comes due: a retry, a snooze (a rate-limit slot, a FIFO
// line, a saturated webhook), a hand-off moved to its next attempt, a
// delivery slotted at enqueue. Polling the deliveries queue every 50 ms
// bounded how late those went, and was nearly all of an idle process's
// cost (issue 30: ~0.3 ms per event at 100 events/s).
//
// So each process sets an alarm for the time each such job comes due and,
// when it rings, sends River's insert notification for the queue (one per
// Granularity at most): every process's producer fetches then.
//   - Retries and snoozes of the jobs River ran here: from River's own
//     events, after its completer has committed the new time.
//   - A hand-off moved to its next attempt: after the move.
//   - Every other job coming due within the next Scan (another process's,
//     one slotted at enqueue, one whose process died): from one indexed
//     read every Scan of the jobs that come due before the next.
//   - A FIFO line's next head, made available at once, is announced by the
//     statement that wakes it (store.WakeFIFOHead).
//
// The queue's poll stays as the safety net (server.FetchPollIntervalDefault,
// a second): an alarm missed (a notification lost with its connection, the
// process gone) costs at most that. Through a transaction pooler there is
// no LISTEN, so no alarm: the queue polls every 50 ms as before.

// Wakes defaults.
const (
	// WakesScanDefault is how often a process reads which jobs come due
	// before its next read.
	WakesScanDefault = time.Second
	// WakesMaxDefault bounds the alarms a process keeps (about 40 bytes
	// each); beyond it a job goes at the queue's poll instead.
	WakesMaxDefault = 100_000
	// wakesScanLimit bounds one read's distinct due times (each an alarm).
	wakesScanLimit = 1000
	// wakesNotifyTimeout bounds one notification's statement.
	wakesNotifyTimeout = 5 * time.Second
)

// WakesConfig configures Wakes.
type WakesConfig struct {
	// Granularity: alarms within it of each other ring as one, at the later
	// (the queue's fetch cooldown: River fetches no more often). Required.
	Granularity time.Duration
	// Scan is how often the jobs coming due are read (WakesScanDefault);
	// negative: never (a queue whose jobs all come from this process).
	Scan time.Duration
	// Max is the most alarms kept (WakesMaxDefault).
	Max int
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
}

// Wakes rings River's fetch of one queue when its jobs come due (see
// above). A nil *Wakes does nothing.
type Wakes struct {
	db    store.DB
	queue string
	cfg   WakesConfig
	log   *zap.Logger

	mu    sync.Mutex
	due   bucketHeap         // alarms, as Granularity buckets, soonest first
	set   map[int64]struct{} // the same, for dedup
	timer *time.Timer        // rings at due[0]
	// notified counts the notifications sent (tests).
	notified int64
}

// NewWakes returns the alarms of queue; Run rings them.
func NewWakes(db store.DB, queue string, cfg *WakesConfig) *Wakes {
	c := *cfg
	if c.Scan == 0 {
		c.Scan = WakesScanDefault
	}
	if c.Max <= 0 {
		c.Max = WakesMaxDefault
	}
	if c.Granularity <= 0 {
		c.Granularity = time.Millisecond
	}
	w := &Wakes{db: db, queue: queue, cfg: c, log: c.Logger, set: map[int64]struct{}{}}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	return w
}

// At sets an alarm for t (in the past: at once).
func (w *Wakes) At(t time.Time) {
	if w == nil {
		return
	}
	if t.IsZero() {
		t = time.Now()
	}
	g := int64(w.cfg.Granularity)
	b := (t.UnixNano() + g - 1) / g // rounded up: never before t
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.set[b]; ok || len(w.due) >= w.cfg.Max {
		return
	}
	w.set[b] = struct{}{}
	heap.Push(&w.due, b)
	if w.due[0] == b {
		w.timer.Reset(time.Until(time.Unix(0, b*g)))
	}
}

// Run rings the alarms, and reads the jobs coming due every Scan, until ctx
// ends.
func (w *Wakes) Run(ctx context.Context) {
	if w == nil {
		return
	}
	var scan <-chan time.Time
	if w.cfg.Scan > 0 {
		t := time.NewTicker(w.cfg.Scan)
		defer t.Stop()
		scan = t.C
		w.scan(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			w.timer.Stop()
			// An alarm about to ring rings now: the other processes
			// fetch, and read what comes due later themselves.
			if w.dueBefore(time.Now().Add(max(w.cfg.Scan, 0) + w.cfg.Granularity)) {
				w.notify(context.WithoutCancel(ctx))
			}
			return
		case <-scan:
			w.scan(ctx)
		case <-w.timer.C:
			if w.ring() {
				w.notify(ctx)
			}
		}
	}
}

// ring takes the alarms due and sets the timer for the next; it reports
// whether any was due.
func (w *Wakes) ring() bool {
	g := int64(w.cfg.Granularity)
	now := time.Now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	rang := false
	for len(w.due) > 0 && w.due[0]*g <= now {
		delete(w.set, heap.Pop(&w.due).(int64))
		rang = true
	}
	if len(w.due) > 0 {
		w.timer.Reset(time.Duration(w.due[0]*g - now))
	}
	return rang
}

// dueBefore reports whether an alarm is set before t.
func (w *Wakes) dueBefore(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.due) > 0 && w.due[0]*int64(w.cfg.Granularity) < t.UnixNano()
}

func (w *Wakes) notify(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, wakesNotifyTimeout)
	defer cancel()
	if err := store.NotifyQueue(ctx, w.db, w.queue); err != nil && ctx.Err() == nil {
		w.log.Warn("could not announce jobs coming due; they go at the queue's next poll", zap.String("queue", w.queue), zap.Error(err))
		return
	}
	w.mu.Lock()
	w.notified++
	w.mu.Unlock()
}

// scan sets alarms for the queue's jobs coming due before the next scan
// (and a Granularity more, for the read's own time).
func (w *Wakes) scan(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, wakesNotifyTimeout)
	defer cancel()
	due, err := store.DueSoon(ctx, w.db, w.queue, w.cfg.Scan+w.cfg.Granularity, wakesScanLimit)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not read the jobs coming due; they go at the queue's next poll", zap.String("queue", w.queue), zap.Error(err))
		}
		return
	}
	for _, t := range due {
		w.At(t)
	}
}

// Notified is how many notifications w has sent.
func (w *Wakes) Notified() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.notified
}

// RiverWakeEvents are the River events FollowRiver reads: a job snoozed, or
// failed (to its retry, or discarded).
var RiverWakeEvents = []river.EventKind{river.EventKindJobSnoozed, river.EventKindJobFailed}

// FollowRiver sets an alarm for each job River put back to wait (a snooze,
// a retry), from River's events (Client.Subscribe of RiverWakeEvents, sent
// once its completer has committed the job's new time), in the Wakes of
// its queue (byQueue), until events closes or ctx ends.
func FollowRiver(ctx context.Context, events <-chan *river.Event, byQueue map[string]*Wakes) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Job == nil {
				continue
			}
			switch ev.Job.State {
			case rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable:
				byQueue[ev.Job.Queue].At(ev.Job.ScheduledAt)
			}
		}
	}
}

// bucketHeap is a min-heap of alarm buckets.
type bucketHeap []int64

func (h bucketHeap) Len() int           { return len(h) }
func (h bucketHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h bucketHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *bucketHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *bucketHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
