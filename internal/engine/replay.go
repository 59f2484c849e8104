package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testsignal"
	"github.com/mono/webhookd/internal/webhookrule"
)

// Replays put a dead or succeeded delivery back on the schedule: a new
// generation of ten attempts, due now, served by a new River job inserted in
// the same transaction, with the same stored body and event id (the worker
// signs each attempt afresh). Its attempts so far are kept and the replay is
// recorded (which key, when, from which state).
//
// A bulk replay fixes the matching deliveries, with the state and
// generation each has, when it is requested; a River job (ReplayBatchArgs)
// then replays them in chunks of ReplayChunkDefault per transaction, each
// delivery only if it is still as it was found, so two bulk replays over the
// same deliveries queue each one once.
//
// Pacing: a bulk replay gives each webhook's deliveries due times
// ReplaySpacingDefault apart (10 ms: at most 100 a second per webhook, in a
// steady stream rather than in waves), so a receiver that has just
// recovered is not flooded by its backlog; the delivery worker then sends
// each when due, within its per-webhook concurrency cap. Different webhooks
// are replayed side by side, each at that pace. Two bulk replays of one
// webhook are paced independently. The server scales the spacing with
// WEBHOOKD_RETRY_SCALE, like the retry schedule.

// ReplayBatchPrefix starts the id of a bulk replay: rpl_ and a UUIDv7.
const ReplayBatchPrefix ident.Prefix = "rpl"

// ReplayBatchMax is the most deliveries one bulk replay takes; a filter
// that matches more is refused (narrow it with a time range).
const ReplayBatchMax = 100_000

var (
	// ErrDeliveryPending means the delivery is already on its schedule.
	ErrDeliveryPending = errors.New("the delivery is pending: it is already on its schedule")
	// ErrDeliveryCancelled means the delivery was cancelled because its
	// webhook was deleted; there is nowhere to send it.
	ErrDeliveryCancelled = errors.New("the delivery was cancelled because its webhook was deleted")
	// ErrWebhookDeleted means the delivery's webhook has been deleted.
	ErrWebhookDeleted = errors.New("the delivery's webhook has been deleted")
	// ErrNotReplayable is any other state that can't be replayed.
	ErrNotReplayable = errors.New("only dead or succeeded deliveries can be replayed")
	// ErrTestDelivery means the delivery is a test send, which is never
	// replayed (nor retried): send another test instead.
	ErrTestDelivery = errors.New("a test delivery is not replayed; send another test")
	// ErrReplayBatchTooLarge means a bulk replay's filter matches more than
	// ReplayBatchMax deliveries.
	ErrReplayBatchTooLarge = fmt.Errorf("a bulk replay takes at most %d deliveries", ReplayBatchMax)
)

// ReplayOpts says who replays, and what they may replay.
type ReplayOpts struct {
	// KeyID is the API key asking, recorded with the replay; empty for the
	// bootstrap admin key.
	KeyID string
	// AccountID, if set, restricts a replay to that account's deliveries:
	// another account's is store.ErrNotFound.
	AccountID string
	// Now is the time of the replay. Defaults to time.Now().
	Now time.Time
}

func (o *ReplayOpts) keyID() *string {
	if o.KeyID == "" {
		return nil
	}
	return &o.KeyID
}

func (o *ReplayOpts) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// Replayed is the outcome of a replay.
type Replayed struct {
	DeliveryID string
	// FromState is the state the delivery was replayed from.
	FromState string
	// Generation is the new generation.
	Generation int
	// JobID is the River job now responsible for the delivery.
	JobID int64
}

// Replay puts the dead or succeeded delivery deliveryID back on the
// schedule inside tx, which the caller commits. It locks the delivery first,
// so a concurrent replay waits and then finds it pending: of two, one wins
// and the other gets ErrDeliveryPending. A pending delivery gives
// ErrDeliveryPending, a cancelled one ErrDeliveryCancelled, one whose webhook
// was deleted ErrWebhookDeleted, an unknown one (or another account's)
// store.ErrNotFound. On any error, roll tx back.
func Replay(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], deliveryID string, opts *ReplayOpts) (*Replayed, error) {
	if opts == nil {
		opts = &ReplayOpts{}
	}
	c, err := store.LockDeliveryForReplay(ctx, tx, deliveryID)
	if err != nil {
		return nil, err
	}
	if opts.AccountID != "" && c.AccountID != opts.AccountID {
		return nil, store.ErrNotFound
	}
	switch {
	case c.State == store.StatePending:
		return nil, ErrDeliveryPending
	case c.State == store.StateCancelled:
		return nil, ErrDeliveryCancelled
	case c.State != store.StateDead && c.State != store.StateSucceeded:
		return nil, fmt.Errorf("delivery %s is %s: %w", c.ID, c.State, ErrNotReplayable)
	case !c.WebhookLive:
		return nil, ErrWebhookDeleted
	case c.Test:
		return nil, ErrTestDelivery
	}

	now := opts.now()
	res, err := client.InsertTx(ctx, tx, DeliveryArgs{DeliveryID: c.ID}, nil)
	if err != nil {
		return nil, fmt.Errorf("error inserting job for delivery %s: %w", c.ID, err)
	}
	replayed, err := store.ReplayDeliveries(ctx, tx, []store.ReplayTarget{{
		ID: c.ID, FromState: c.State, Generation: c.Generation, JobID: res.Job.ID, NextAttemptAt: now,
	}}, opts.keyID(), nil, now)
	if err != nil {
		return nil, fmt.Errorf("error replaying delivery %s: %w", c.ID, err)
	}
	generation, ok := replayed[c.ID]
	if !ok {
		// The row is locked: nothing can have changed it since.
		return nil, fmt.Errorf("delivery %s changed while locked for its replay", c.ID)
	}
	return &Replayed{DeliveryID: c.ID, FromState: c.State, Generation: generation, JobID: res.Job.ID}, nil
}

// Replay is the package's Replay with the enqueuer's River client and clock
// (opts.Now, if zero, is the enqueuer's now).
func (e *Enqueuer) Replay(ctx context.Context, tx pgx.Tx, deliveryID string, opts *ReplayOpts) (*Replayed, error) {
	o := ReplayOpts{}
	if opts != nil {
		o = *opts
	}
	if o.Now.IsZero() {
		o.Now = e.now()
	}
	return Replay(ctx, tx, e.river, deliveryID, &o)
}

// StartReplayBatch fixes, inside tx, the deliveries matching f (dead or
// succeeded ones of live webhooks of f.AccountID; State defaults to dead) as
// a bulk replay and inserts the River job that will replay them; the caller
// commits. More
// than ReplayBatchMax matches give ErrReplayBatchTooLarge (roll tx back).
// A batch matching nothing is returned done, with no job. opts.AccountID is
// not used: f.AccountID is the restriction.
func StartReplayBatch(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], f *store.ReplayFilter, opts *ReplayOpts) (*store.ReplayBatch, error) {
	if opts == nil {
		opts = &ReplayOpts{}
	}
	filter := *f
	if filter.State == "" {
		filter.State = store.StateDead
	}
	if err := webhookrule.ValidateAccountID(filter.AccountID); err != nil {
		return nil, err
	}
	if filter.State != store.StateDead && filter.State != store.StateSucceeded {
		return nil, &ValidationError{Field: "state", Code: "invalid_state", Message: "a bulk replay takes dead or succeeded deliveries"}
	}
	b := &store.ReplayBatch{
		ID:        ident.New(ReplayBatchPrefix),
		Filter:    filter,
		KeyID:     opts.keyID(),
		State:     store.ReplayBatchRunning,
		CreatedAt: opts.now(),
	}
	// Refuse too many before writing anything; the insert is capped too,
	// for deliveries that die in between.
	n, err := store.CountReplayable(ctx, tx, &filter, ReplayBatchMax+1)
	if err != nil {
		return nil, fmt.Errorf("error counting deliveries to replay: %w", err)
	}
	if n > ReplayBatchMax {
		return nil, ErrReplayBatchTooLarge
	}
	total, err := store.CreateReplayBatch(ctx, tx, b, ReplayBatchMax)
	if err != nil {
		return nil, err
	}
	if total > 0 {
		if _, err := client.InsertTx(ctx, tx, ReplayBatchArgs{BatchID: b.ID}, nil); err != nil {
			return nil, fmt.Errorf("error inserting bulk replay job: %w", err)
		}
	}
	return store.GetReplayBatch(ctx, tx, b.ID)
}

// StartReplayBatch is the package's StartReplayBatch with the enqueuer's
// River client and clock.
func (e *Enqueuer) StartReplayBatch(ctx context.Context, tx pgx.Tx, f *store.ReplayFilter, opts *ReplayOpts) (*store.ReplayBatch, error) {
	o := ReplayOpts{}
	if opts != nil {
		o = *opts
	}
	if o.Now.IsZero() {
		o.Now = e.now()
	}
	return StartReplayBatch(ctx, tx, e.river, f, &o)
}

// ReplayBatchArgs are a bulk replay job's arguments: the batch id only.
type ReplayBatchArgs struct {
	BatchID string `json:"batch_id"`
}

// Kind is the River job kind.
func (ReplayBatchArgs) Kind() string { return "webhookd.replay_batch" }

// InsertOpts: bulk replays run on River's default queue. A failed run is
// retried (the work is idempotent: each item is replayed at most once).
func (ReplayBatchArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: JobMaxAttemptsDefault}
}

// Bulk replay defaults.
const (
	// ReplayChunkDefault is how many deliveries a bulk replay replays per
	// transaction.
	ReplayChunkDefault = 100
	// ReplaySpacingDefault is the gap between two replayed deliveries of
	// one webhook: 100 a second.
	ReplaySpacingDefault = 10 * time.Millisecond
	// ReplayRunBudgetDefault bounds one run of a bulk replay job, well
	// under River's RescueStuckJobsAfter; a bigger batch snoozes and goes
	// on in another run.
	ReplayRunBudgetDefault = 5 * time.Second
)

// riverSchedulerLookAhead: River's scheduler makes scheduled jobs available
// every 5 s, looking 5 s ahead. A replay due sooner is inserted available
// (the delivery worker snoozes it until due, and a snooze that short stays
// available), one due later is inserted scheduled for its time; either way
// it starts on time.
const riverSchedulerLookAhead = 5 * time.Second

// ReplayBatchConfig configures a ReplayBatchWorker.
type ReplayBatchConfig struct {
	// ChunkSize is how many deliveries are replayed per transaction.
	// Defaults to ReplayChunkDefault.
	ChunkSize int
	// Spacing is the gap between two replayed deliveries of one webhook.
	// Defaults to ReplaySpacingDefault.
	Spacing time.Duration
	// RunBudget bounds one run of the job. Defaults to
	// ReplayRunBudgetDefault.
	RunBudget time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// TestSignals, for tests only: Init its signals before the worker runs.
	// Nil: off.
	TestSignals *ReplayBatchTestSignals
}

// ReplayBatchTestSignals tell a test what the bulk replay worker did, so
// that it waits for a batch instead of polling it (internal/testsignal).
type ReplayBatchTestSignals struct {
	// Done is sent with a batch's id when a run marks it done.
	Done testsignal.TestSignal[string]
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *ReplayBatchConfig) WithDefaults() *ReplayBatchConfig {
	out := ReplayBatchConfig{}
	if c != nil {
		out = *c
	}
	if out.ChunkSize <= 0 {
		out.ChunkSize = ReplayChunkDefault
	}
	if out.Spacing <= 0 {
		out.Spacing = ReplaySpacingDefault
	}
	if out.RunBudget <= 0 {
		out.RunBudget = ReplayRunBudgetDefault
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	return &out
}

// ReplayBatchWorker works bulk replays.
type ReplayBatchWorker struct {
	river.WorkerDefaults[ReplayBatchArgs]

	db  store.DB
	cfg *ReplayBatchConfig
}

// NewReplayBatchWorker returns a bulk replay worker on db (the pool).
func NewReplayBatchWorker(db store.DB, cfg *ReplayBatchConfig) *ReplayBatchWorker {
	return &ReplayBatchWorker{db: db, cfg: cfg.WithDefaults()}
}

// Timeout leaves a run its budget plus a margin for the chunk in progress.
func (w *ReplayBatchWorker) Timeout(*river.Job[ReplayBatchArgs]) time.Duration {
	return w.cfg.RunBudget + JobTimeoutMargin
}

// Work replays the batch's remaining deliveries, chunk by chunk, for up to
// the run budget; then it snoozes to go on in a new run, or marks the batch
// done.
func (w *ReplayBatchWorker) Work(ctx context.Context, job *river.Job[ReplayBatchArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	return w.work(ctx, client, job.Args.BatchID)
}

func (w *ReplayBatchWorker) work(ctx context.Context, client *river.Client[pgx.Tx], batchID string) error {
	log := w.cfg.Logger.With(zap.String("batch_id", batchID))
	start := w.cfg.Now()

	batch, err := store.GetReplayBatch(ctx, w.db, batchID)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("bulk replay not found; finishing its job")
		return nil
	}
	if err != nil {
		return fmt.Errorf("error loading bulk replay %s: %w", batchID, err)
	}
	if batch.State == store.ReplayBatchDone {
		return nil
	}
	todo, err := store.ReplayItemsTodo(ctx, w.db, batchID)
	if err != nil {
		return fmt.Errorf("error listing items of bulk replay %s: %w", batchID, err)
	}
	// Pacing carries on from the previous run, whose deliveries may still
	// be queued ahead.
	lastDue, err := store.ReplayLastDue(ctx, w.db, batchID)
	if err != nil {
		return fmt.Errorf("error loading pacing of bulk replay %s: %w", batchID, err)
	}

	for len(todo) > 0 {
		if ctx.Err() != nil || w.cfg.Now().Sub(start) >= w.cfg.RunBudget {
			log.Debug("bulk replay run budget spent; going on in another run", zap.Int("left", len(todo)))
			return river.JobSnooze(0)
		}
		n := min(w.cfg.ChunkSize, len(todo))
		if err := w.replayChunk(ctx, client, batch, todo[:n], lastDue); err != nil {
			return fmt.Errorf("error replaying a chunk of bulk replay %s: %w", batchID, err)
		}
		todo = todo[n:]
	}

	done, err := store.FinishReplayBatch(ctx, w.db, batchID, w.cfg.Now())
	if err != nil {
		return fmt.Errorf("error finishing bulk replay %s: %w", batchID, err)
	}
	if done {
		if w.cfg.TestSignals != nil {
			w.cfg.TestSignals.Done.Signal(batchID)
		}
		if b, err := store.GetReplayBatch(ctx, w.db, batchID); err == nil {
			log.Info("bulk replay done", zap.Int("total", b.Total), zap.Int("replayed", b.Replayed), zap.Int("skipped", b.Skipped))
		}
	}
	return nil
}

// replayChunk replays the items of chunk that are still as the batch found
// them and marks the others skipped, in one transaction. lastDue (per
// webhook) is advanced for the deliveries it queues.
func (w *ReplayBatchWorker) replayChunk(ctx context.Context, client *river.Client[pgx.Tx], batch *store.ReplayBatch, chunk []store.ReplayItem, lastDue map[string]time.Time) error {
	tx, err := w.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	ids := make([]string, len(chunk))
	for i, it := range chunk {
		ids[i] = it.DeliveryID
	}
	targets, webhooks, err := store.LockReplayItems(ctx, tx, batch.ID, ids)
	if err != nil {
		return fmt.Errorf("error locking items: %w", err)
	}

	now := w.cfg.Now()
	due := make(map[string]time.Time, len(lastDue))
	for k, v := range lastDue {
		due[k] = v
	}
	var replayedIDs []string
	if len(targets) > 0 {
		params := make([]river.InsertManyParams, len(targets))
		for i := range targets {
			at := now
			if last, ok := due[webhooks[i]]; ok && last.Add(w.cfg.Spacing).After(now) {
				at = last.Add(w.cfg.Spacing)
			}
			due[webhooks[i]] = at
			targets[i].NextAttemptAt = at
			// Bulk replays are background work: bulk priority, behind
			// live traffic.
			opts := &river.InsertOpts{Priority: PriorityBulk}
			if at.Sub(now) > riverSchedulerLookAhead {
				opts.ScheduledAt = at
			}
			params[i] = river.InsertManyParams{Args: DeliveryArgs{DeliveryID: targets[i].ID}, InsertOpts: opts}
		}
		jobOf, err := insertDeliveryJobs(ctx, client, tx, params)
		if err != nil {
			return err
		}
		for i := range targets {
			if targets[i].JobID = jobOf[targets[i].ID]; targets[i].JobID == 0 {
				return fmt.Errorf("no job inserted for delivery %s", targets[i].ID)
			}
		}
		replayed, err := store.ReplayDeliveries(ctx, tx, targets, batch.KeyID, &batch.ID, now)
		if err != nil {
			return fmt.Errorf("error replaying deliveries: %w", err)
		}
		if len(replayed) != len(targets) {
			// The rows are locked: nothing can have changed them since.
			return fmt.Errorf("%d of %d locked deliveries changed before their replay", len(targets)-len(replayed), len(targets))
		}
		replayedIDs = make([]string, 0, len(targets))
		for _, t := range targets {
			replayedIDs = append(replayedIDs, t.ID)
		}
	}
	if err := store.FinishReplayItems(ctx, tx, batch.ID, ids, replayedIDs); err != nil {
		return fmt.Errorf("error recording items done: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("error committing: %w", err)
	}
	for k, v := range due {
		lastDue[k] = v
	}
	return nil
}
