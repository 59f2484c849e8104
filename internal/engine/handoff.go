package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// Hand-offs: the first attempt of a delivery accepted by a process that
// also works deliveries is made by that process straight after the commit,
// without River fetching its job (issue 30: at low rates each event cost
// ~7 round trips, two of them River's insert notification and fetch, and
// the fetch's update of the job row ~520 bytes of WAL).
//
// Nothing about durability changes: the job is inserted in the event's
// transaction as always, only scheduled a lease ahead (state scheduled,
// so River sends no insert notification and no worker fetches it). The
// process that accepted the event runs the job as River would, through
// Worker.Work, straight after the commit:
//   - an attempt that finishes the delivery deletes the job in the
//     statement that records it (as for River's jobs: migration 27 lets it
//     delete a scheduled job);
//   - one that leads to a retry (or any snooze) moves the job to when the
//     next attempt is due, where River takes it from then on;
//   - an error (the database) moves it to River's retry of errors.
//
// Should the process die, or the move fail, the job becomes River's at the
// end of its lease: the lease is the job timeout plus the rescue margin,
// the same time after which River rescues a job stuck running in a dead
// process, so the attempt is late but never lost. The job's guard (the
// delivery names it, its attempt count is checked when recorded) is the
// same, so a job River takes after a hand-off that did record sends
// nothing.
//
// Only deliveries that go at once are handed off: not to a paused, FIFO or
// rate-limited webhook, and only while fewer than HandoffsConfig.Max are
// under way in the process; the others are River's as before. A burst's
// excess (an account over its fair share, at bulk priority) is handed off
// only while fewer than half of Max are under way, so an account that sends
// more than its share can never take the places the others' deliveries
// within theirs need; over that it goes to River's queue, where the others'
// are fetched first. Its job keeps its bulk priority (for a retry, or for
// River at the end of the lease). Before, no excess was handed off: one
// account sending over 100 events/s had every event over its share go
// through River's insert notification, fetch and load (measured: at 200/s
// half the events came 5 – 11 ms late; at saturation nearly all of them
// went through River's queue).

// HandoffsConfig configures Handoffs.
type HandoffsConfig struct {
	// Max is the most hand-offs under way in the process at once; an
	// event's delivery over it goes through River's queue as before.
	Max int
	// Lease is how long a handed-off delivery's job waits before River may
	// take it (the process died, or could not move the job). Set it to the
	// job timeout plus the rescue margin: no longer than River waits for a
	// job stuck running.
	Lease time.Duration
	// Client is the River client an attempt's notifications are written
	// with (webhook.paused after a 410, as from River's jobs). Optional:
	// nil writes none.
	Client *river.Client[pgx.Tx]
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
}

// HandoffsMaxDefault is HandoffsConfig.Max's default in the server
// (WEBHOOKD_HANDOFFS).
const HandoffsMaxDefault = 100

// Handoffs runs the first attempts of deliveries this process accepted.
type Handoffs struct {
	w        *Worker
	db       store.DB
	lease    time.Duration
	log      *zap.Logger
	max      int64
	reserved atomic.Int64 // reserved at enqueue + under way
	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex // guards stopped and wg.Add against Stop
	stopped  bool
	wg       sync.WaitGroup
	idMu     sync.Mutex // guards ids
	ids      []int64    // River job ids taken from its sequence, not yet used
}

// jobIDBlock is how many job ids Handoffs takes from River's sequence at a
// time (a gap in the sequence is all that an unused one leaves).
const jobIDBlock = 128

// jobIDs returns n ids for handed-off deliveries' jobs, taking another
// block from River's sequence through tx when too few are left: within
// the enqueue's own transaction, so that it needs no second connection.
func (h *Handoffs) jobIDs(ctx context.Context, tx store.DB, n int) ([]int64, error) {
	h.idMu.Lock()
	defer h.idMu.Unlock()
	if len(h.ids) < n {
		more, err := store.JobIDs(ctx, tx, max(n-len(h.ids), jobIDBlock))
		if err != nil {
			return nil, fmt.Errorf("error taking job ids: %w", err)
		}
		h.ids = append(h.ids, more...)
	}
	ids := slices.Clone(h.ids[:n])
	h.ids = h.ids[n:]
	return ids, nil
}

// NewHandoffs returns Handoffs that run attempts with w and move their jobs
// in db (the pool).
func NewHandoffs(w *Worker, db store.DB, cfg *HandoffsConfig) (*Handoffs, error) {
	if w == nil || db == nil || cfg == nil || cfg.Max <= 0 || cfg.Lease <= 0 {
		return nil, errors.New("engine.NewHandoffs: a worker, a database, Max > 0 and Lease > 0 are required")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(withClient(context.Background(), cfg.Client))
	return &Handoffs{w: w, db: db, lease: cfg.Lease, log: log, max: int64(cfg.Max), ctx: ctx, cancel: cancel}, nil
}

// reserve takes one hand-off place, if one is free: any of Max for a
// delivery at normal priority, one of the first Max/2 for a burst's excess
// (bulk).
func (h *Handoffs) reserve(bulk bool) bool {
	limit := h.max
	if bulk {
		limit = h.max / 2
	}
	if h.reserved.Add(1) > limit {
		h.reserved.Add(-1)
		return false
	}
	return true
}

func (h *Handoffs) unreserve(n int) { h.reserved.Add(-int64(n)) }

// Handoff is the hand-offs of one enqueue: Start them once its transaction
// has committed, or Release them when it did not. Either is called once;
// the zero value and nil do nothing.
type Handoff struct {
	h    *Handoffs    // nil: none handed off (the process has no Handoffs)
	jobs []handoffJob // the reserved deliveries, in the order taken
	at   time.Time
	// wakes, when set, is rung at Start when the transaction inserted
	// River jobs (announce; Enqueuer.SetWakes).
	wakes    *Wakes
	announce bool
}

// riverJobs notes that the transaction inserts jobs through River.
func (ho *Handoff) riverJobs() {
	if ho != nil {
		ho.announce = true
	}
}

// handoffJob is one reserved delivery: its job's id once leasedJobs has
// given it one, and what its first attempt's target is made from.
type handoffJob struct {
	jobID    int64 // 0: none yet
	ev       *store.NewEvent
	j        int           // the delivery's index in ev
	hook     *store.Target // its webhook's, as LiveWebhooksWithTargets read it; nil: loaded as River's jobs are
	priority int           // its job's River priority: PriorityNormal, or PriorityBulk for a burst's excess
}

func (hj *handoffJob) deliveryID() string { return hj.ev.DeliveryIDs[hj.j] }

// target is the first attempt's target, made from the event as inserted
// (its job ids set) and the webhook as read in the same transaction: that
// attempt needs no load. Call it once the transaction has committed; nil
// when the webhook's Target was not read.
func (hj *handoffJob) target() *store.Target {
	if hj.hook == nil {
		return nil
	}
	return store.NewDeliveryTarget(hj.ev, hj.j, hj.hook)
}

// active says whether this enqueue hands off at all (the process has
// Handoffs).
func (ho *Handoff) active() bool { return ho != nil && ho.h != nil }

// take reserves a place for ev's delivery j, whose webhook is hook and whose
// job has River priority priority, and says whether it was free.
func (ho *Handoff) take(ev *store.NewEvent, j int, hook *store.Target, priority int) bool {
	if !ho.active() || !ho.h.reserve(priority != PriorityNormal) {
		return false
	}
	if ho.at.IsZero() {
		ho.at = time.Now() // the lease is River's wall-clock wait, whatever the engine's clock
	}
	ho.jobs = append(ho.jobs, handoffJob{ev: ev, j: j, hook: hook, priority: priority})
	return true
}

// lease is the scheduled time of a handed-off delivery's job.
func (ho *Handoff) lease() time.Time { return ho.at.Add(ho.h.lease) }

// leasedJobs gives each reserved delivery its job's id (in its event's
// JobIDs too), and returns the jobs for the enqueue's
// events-and-deliveries statement to write (nil when none was reserved),
// each scheduled at the end of the lease.
func (ho *Handoff) leasedJobs(ctx context.Context, tx store.DB) (*store.LeasedJobs, error) {
	if !ho.active() || len(ho.jobs) == 0 {
		return nil, nil
	}
	ids, err := ho.h.jobIDs(ctx, tx, len(ho.jobs))
	if err != nil {
		return nil, err
	}
	deliveries := make([]string, len(ho.jobs))
	priorities := make([]int16, len(ho.jobs))
	for k := range ho.jobs {
		hj := &ho.jobs[k]
		hj.jobID, hj.ev.JobIDs[hj.j], deliveries[k], priorities[k] = ids[k], ids[k], hj.deliveryID(), int16(hj.priority)
	}
	opts := DeliveryArgs{}.InsertOpts()
	return &store.LeasedJobs{
		Kind: DeliveryArgs{}.Kind(), Queue: opts.Queue, MaxAttempts: opts.MaxAttempts,
		ScheduledAt: ho.lease(), IDs: ids, Deliveries: deliveries, Priorities: priorities,
	}, nil
}

// Release gives the places back: the transaction did not commit.
func (ho *Handoff) Release() {
	if !ho.active() {
		return
	}
	ho.h.unreserve(len(ho.jobs))
	ho.jobs = nil
}

// Start makes each handed-off delivery's first attempt, each on a
// goroutine of its own, and rings the alarm of the jobs inserted through
// River (see Enqueuer.SetWakes); call it once the transaction that inserted
// them has committed. Once Handoffs has stopped, the jobs are given to River at once
// instead.
func (ho *Handoff) Start() {
	if ho != nil && ho.announce {
		ho.wakes.At(time.Now())
	}
	if !ho.active() || len(ho.jobs) == 0 {
		return
	}
	h, jobs := ho.h, ho.jobs
	ho.jobs = nil
	if jobs[0].jobID == 0 { // reserved, never given jobs (leasedJobs gives all or none): none normally
		h.unreserve(len(jobs))
		return
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		h.unreserve(len(jobs))
		ctx, cancel := context.WithTimeout(context.Background(), h.w.cfg.BookkeepingTimeout)
		defer cancel()
		for _, j := range jobs {
			h.move(ctx, j, time.Time{})
		}
		return
	}
	h.wg.Add(len(jobs))
	h.mu.Unlock()
	for _, j := range jobs {
		go h.run(j)
	}
}

// run makes j's first attempt as River would run its job, then leaves the
// job where the attempt says.
func (h *Handoffs) run(j handoffJob) {
	defer h.wg.Done()
	defer h.unreserve(1)
	now := time.Now()
	job := &river.Job[DeliveryArgs]{
		JobRow: &rivertype.JobRow{
			ID: j.jobID, Attempt: 1, AttemptedAt: &now, CreatedAt: now, Kind: DeliveryArgs{}.Kind(),
			MaxAttempts: JobMaxAttemptsDefault, Metadata: []byte("{}"), Priority: j.priority,
			Queue: QueueDeliveries, ScheduledAt: now, State: rivertype.JobStateRunning,
		},
		Args: DeliveryArgs{DeliveryID: j.deliveryID()},
	}
	ctx, cancel := context.WithTimeout(withTarget(h.ctx, j.target()), h.w.Timeout(job))
	err := h.work(ctx, job)
	cancel()
	if err == nil {
		return // recorded (the job deleted with it), or nothing to send
	}
	var snooze *rivertype.JobSnoozeError
	at := time.Now()
	if errors.As(err, &snooze) {
		at = at.Add(snooze.Duration)
	} else {
		h.log.Warn("handed-off delivery failed; River retries its job", zap.String("delivery_id", j.deliveryID()), zap.Int64("job_id", j.jobID), zap.Error(err))
		at = h.w.NextRetry(job)
	}
	bookCtx, cancelBook := context.WithTimeout(context.Background(), h.w.cfg.BookkeepingTimeout)
	defer cancelBook()
	h.move(bookCtx, j, at)
}

// work is Worker.Work, with a panic returned as an error (River recovers a
// job's panic so).
func (h *Handoffs) work(ctx context.Context, job *river.Job[DeliveryArgs]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a handed-off delivery: %v", p)
		}
	}()
	return h.w.Work(ctx, job)
}

// move gives j's job to River at at (zero: now), with an alarm for then
// (Wakes). When that fails the job stays where it is, River's at the end
// of its lease.
func (h *Handoffs) move(ctx context.Context, j handoffJob, at time.Time) {
	if err := store.RescheduleJob(ctx, h.db, j.jobID, at); err != nil {
		h.log.Error("could not give a handed-off delivery's job to River; River takes it at the end of its lease",
			zap.String("delivery_id", j.deliveryID()), zap.Int64("job_id", j.jobID), zap.Duration("lease", h.lease), zap.Error(err))
		return
	}
	h.w.wakes.Load().At(at)
}

// Stop takes no more hand-offs (later ones go to River at once) and waits
// for those under way; when ctx ends first, their attempts are cut short
// (recorded as interrupted, their jobs given to River) and waited for. On
// nil it does nothing.
func (h *Handoffs) Stop(ctx context.Context) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		h.cancel()
		<-done
	}
	h.cancel()
}

// targetKey is withTarget's context key.
type targetKey struct{}

// withTarget gives ctx the target of a handed-off delivery's first
// attempt, made at its enqueue (nil: none).
func withTarget(ctx context.Context, t *store.Target) context.Context {
	if t == nil {
		return ctx
	}
	return context.WithValue(ctx, targetKey{}, t)
}

// preloaded returns the target ctx carries for job's delivery (withTarget),
// or nil: the worker loads it.
func preloaded(ctx context.Context, job *river.Job[DeliveryArgs]) *store.Target {
	t, _ := ctx.Value(targetKey{}).(*store.Target)
	if t == nil || t.DeliveryID != job.Args.DeliveryID || t.JobID == nil || *t.JobID != job.ID {
		return nil
	}
	return t
}
