package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testsignal"
)

// ReconcileIntervalDefault is how often the reconciler looks for pending
// deliveries that no live job serves.
const ReconcileIntervalDefault = time.Minute

// reconcileSlice is how many pending deliveries one pass checks by default,
// from where the last pass stopped (the cursor reconcileCursor): tens of ms
// of PostgreSQL's time, whatever the backlog. With a bigger backlog a full
// walk takes backlog / reconcileSlice passes.
const reconcileSlice = 20_000

// reconcileCursor names the reconciler's cursor (store.Cursor).
const reconcileCursor = "reconciler"

// ReconcileArgs are the arguments of the periodic reconciler job.
type ReconcileArgs struct{}

// Kind is the River job kind.
func (ReconcileArgs) Kind() string { return "webhookd.reconcile" }

// InsertOpts: a failed pass is not retried; the next period runs anyway.
// Two overlapping passes are harmless (adoption is guarded by the old job id).
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1}
}

// Reconciler finds pending deliveries whose job is finished, discarded,
// cancelled or missing (a crash on River's last allowed run, a job cancelled
// in River UI, a bug) and gives each a new job. It is the backstop that
// keeps a delivery from staying pending for ever. It also cancels the
// pending and paused deliveries of deleted webhooks that it meets (see
// store.CancelAbandoned), which would otherwise wait for ever, and wakes
// the FIFO lines' heads whose wake was lost (WakeFIFOHeads).
type Reconciler struct {
	river.WorkerDefaults[ReconcileArgs]

	db      store.DB
	logger  *zap.Logger
	metrics *metrics.Metrics
	fixed   atomic.Int64
	// cancelled counts the abandoned deliveries cancelled.
	cancelled atomic.Int64
	// autoPauseAfter pauses a webhook without a successful attempt for
	// that long (0: never); now is the clock.
	autoPauseAfter time.Duration
	now            func() time.Time
	slice          int
	signals        *ReconcilerTestSignals
}

// ReconcilerTestSignals tell a test what a reconciler did, so that it waits
// for a pass instead of sleeping (internal/testsignal). Production leaves
// them nil.
type ReconcilerTestSignals struct {
	// PassDone is sent at the end of every pass of Work, with the pass's
	// error (nil: it ran to the end).
	PassDone testsignal.TestSignal[error]
}

// ReconcilerConfig configures a Reconciler.
type ReconcilerConfig struct {
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Metrics counts the deliveries fixed. Optional: nil records nothing.
	Metrics *metrics.Metrics
	// AutoPauseAfter pauses a webhook whose last attempt failed and that
	// has had no successful attempt for this long (WEBHOOKD_AUTO_PAUSE_AFTER).
	// 0, the default, never pauses one.
	AutoPauseAfter time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Slice is how many pending deliveries a pass checks, and how many
	// deliveries of deleted webhooks each of its two steps that cancel
	// them cancels at most. Defaults to 20,000.
	Slice int
	// TestSignals, for tests only: Init its signals before the reconciler
	// runs. Nil: off.
	TestSignals *ReconcilerTestSignals
}

// NewReconciler returns a reconciler on db. logger defaults to zap.NewNop().
func NewReconciler(db store.DB, logger *zap.Logger) *Reconciler {
	return NewReconcilerWithConfig(db, &ReconcilerConfig{Logger: logger})
}

// NewReconcilerWithConfig returns a reconciler on db; a nil cfg means
// defaults.
func NewReconcilerWithConfig(db store.DB, cfg *ReconcilerConfig) *Reconciler {
	if cfg == nil {
		cfg = &ReconcilerConfig{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Reconciler{db: db, logger: logger, metrics: cfg.Metrics, autoPauseAfter: cfg.AutoPauseAfter, now: now,
		slice: cmp.Or(max(cfg.Slice, 0), reconcileSlice), signals: cfg.TestSignals}
}

// Fixed is how many deliveries the reconciler has re-queued since start.
func (r *Reconciler) Fixed() int64 { return r.fixed.Load() }

// Cancelled is how many deliveries of deleted webhooks the reconciler has
// cancelled since start.
func (r *Reconciler) Cancelled() int64 { return r.cancelled.Load() }

// Work runs one reconciliation pass.
func (r *Reconciler) Work(ctx context.Context, job *river.Job[ReconcileArgs]) (err error) {
	if r.signals != nil {
		defer func() { r.signals.PassDone.Signal(err) }()
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	if _, err := r.Reconcile(ctx, client); err != nil {
		return err
	}
	if _, err := r.ResumeStranded(ctx, client); err != nil {
		return err
	}
	if _, err := r.CancelAbandonedPaused(ctx); err != nil {
		return err
	}
	if _, err := r.WakeFIFOHeads(ctx); err != nil {
		return err
	}
	_, err = r.AutoPause(ctx)
	return err
}

// WakeFIFOHeads wakes the job of every FIFO line's head that is due but
// waits snoozed, its wake lost (store.WakeDueFIFOHeads), and returns how
// many it woke: a lost wake costs a line at most one reconcile interval.
func (r *Reconciler) WakeFIFOHeads(ctx context.Context) (int64, error) {
	n, err := store.WakeDueFIFOHeads(ctx, r.db, r.now())
	if err != nil {
		return 0, fmt.Errorf("error waking the heads of FIFO lines: %w", err)
	}
	if n > 0 {
		r.logger.Debug("reconciler woke the heads of FIFO lines", zap.Int64("webhooks", n))
	}
	return n, nil
}

// strandedBatch bounds the webhooks ResumeStranded handles in one pass.
const strandedBatch = 100

// ResumeStranded resumes the paused deliveries of webhooks that are not
// paused: a delivery created paused by an enqueue that read the webhook
// just before a resume committed. It returns how many it resumed.
func (r *Reconciler) ResumeStranded(ctx context.Context, client *river.Client[pgx.Tx]) (int, error) {
	ids, err := store.StrandedPausedWebhooks(ctx, r.db, strandedBatch)
	if err != nil {
		return 0, fmt.Errorf("error finding stranded paused deliveries: %w", err)
	}
	total := 0
	for _, id := range ids {
		var n int
		err := pgx.BeginFunc(ctx, r.db, func(tx pgx.Tx) error {
			var err error
			n, err = ResumePaused(ctx, client, tx, id, r.now())
			return err
		})
		if err != nil {
			return total, fmt.Errorf("error resuming stranded deliveries of webhook %s: %w", id, err)
		}
		if n > 0 {
			r.logger.Warn("reconciler resumed paused deliveries of a webhook that is not paused", zap.String("webhook_id", id), zap.Int("deliveries", n))
		}
		total += n
	}
	return total, nil
}

// CancelAbandonedPaused cancels the paused deliveries of deleted webhooks
// (left by a delete before schema version 11, or created paused by an
// enqueue that read the webhook just before the delete committed): up to
// Slice of them, of up to 100 webhooks. It returns how many it cancelled.
func (r *Reconciler) CancelAbandonedPaused(ctx context.Context) (int, error) {
	ids, err := store.AbandonedPausedWebhooks(ctx, r.db, strandedBatch)
	if err != nil {
		return 0, fmt.Errorf("error finding paused deliveries of deleted webhooks: %w", err)
	}
	return r.cancelAbandoned(ctx, ids)
}

// cancelAbandoned cancels the pending and paused deliveries of deleted
// webhooks webhookIDs, up to Slice of them in all, and counts, logs and
// returns how many it cancelled.
func (r *Reconciler) cancelAbandoned(ctx context.Context, webhookIDs []string) (int, error) {
	total := 0
	for _, id := range webhookIDs {
		if total >= r.slice {
			break // the next pass goes on
		}
		n, err := store.CancelAbandoned(ctx, r.db, id, r.slice-total, r.now())
		if err != nil {
			return total, fmt.Errorf("error cancelling deliveries of deleted webhook %s: %w", id, err)
		}
		if n == 0 {
			continue
		}
		total += int(n)
		r.cancelled.Add(n)
		r.metrics.DeliveriesFinished(metrics.OutcomeCancelled, "", int(n))
		r.logger.Warn("reconciler cancelled deliveries of a deleted webhook", zap.String("webhook_id", id), zap.Int64("deliveries", n))
	}
	return total, nil
}

// AutoPause pauses every live webhook whose last attempt failed and that
// has had no successful attempt for autoPauseAfter (from the endpoint
// health the workers keep), when that is set. It returns the webhooks it
// paused.
func (r *Reconciler) AutoPause(ctx context.Context) ([]string, error) {
	return r.AutoPauseNotifying(ctx, contextClient(ctx))
}

// AutoPauseNotifying is AutoPause writing each pause's webhook.paused
// notification (reason auto) with client, in the pause's transaction (nil:
// none). AutoPause takes the client of the job it runs in.
func (r *Reconciler) AutoPauseNotifying(ctx context.Context, client *river.Client[pgx.Tx]) ([]string, error) {
	if r.autoPauseAfter <= 0 {
		return nil, nil
	}
	now := r.now()
	ids, err := store.AutoPauseCandidates(ctx, r.db, now.Add(-r.autoPauseAfter), strandedBatch)
	if err != nil {
		return nil, fmt.Errorf("error finding webhooks to pause: %w", err)
	}
	var paused []string
	for _, id := range ids {
		err := PauseNotifying(ctx, r.db, client, id, "", store.PauseAuto, nil, now)
		if errors.Is(err, store.ErrAlreadyPaused) || errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return paused, fmt.Errorf("error pausing webhook %s: %w", id, err)
		}
		paused = append(paused, id)
		r.metrics.WebhookPause("pause", store.PauseAuto)
		r.logger.Warn("webhook paused automatically: no successful attempt", zap.String("webhook_id", id), zap.Duration("after", r.autoPauseAfter))
	}
	return paused, nil
}

// Reconcile checks one slice of the pending deliveries, re-queues with
// client those no live job serves, cancels those of deleted webhooks (up
// to Slice), and returns how many it re-queued.
//
// Checking every pending delivery each minute would cost time in
// proportion to the backlog (about half a second of PostgreSQL's time per
// 100,000), just when a backlog has the database busy. So a pass checks
// the pending deliveries that have no job at all (few: found through an
// index), then the next slice (20,000 by default) of those with one, in
// job id order from where the last pass stopped, wrapping round at the
// end. A backlog no bigger than the slice is thus checked whole every pass.
func (r *Reconciler) Reconcile(ctx context.Context, client *river.Client[pgx.Tx]) (int, error) {
	jobless, err := store.JoblessOrphans(ctx, r.db, r.slice)
	if err != nil {
		return 0, fmt.Errorf("error finding orphaned deliveries: %w", err)
	}
	orphans, abandoned := jobless.Orphans, jobless.Abandoned
	start, err := store.Cursor(ctx, r.db, reconcileCursor)
	if err != nil {
		return 0, fmt.Errorf("error reading the reconciler's cursor: %w", err)
	}
	cursor, budget, wrapped := start, r.slice, false
	for {
		slice, err := store.ScanOrphans(ctx, r.db, cursor, budget)
		if err != nil {
			return 0, fmt.Errorf("error finding orphaned deliveries: %w", err)
		}
		orphans = append(orphans, slice.Orphans...)
		abandoned = append(abandoned, slice.Abandoned...)
		budget -= slice.Checked
		if slice.Checked > 0 {
			cursor = slice.Last
		}
		if budget == 0 {
			break // the next pass goes on after cursor
		}
		// The end of the walk: the next pass starts from the beginning;
		// this one does too, with what is left of its slice, unless it
		// began there.
		cursor = 0
		if wrapped || start == 0 {
			break
		}
		wrapped = true
	}
	if err := store.SetCursor(ctx, r.db, reconcileCursor, cursor); err != nil {
		return 0, fmt.Errorf("error saving the reconciler's cursor: %w", err)
	}
	slices.Sort(abandoned)
	if _, err := r.cancelAbandoned(ctx, slices.Compact(abandoned)); err != nil {
		return 0, err
	}
	fixed := 0
	for _, o := range orphans {
		ok, err := r.adopt(ctx, client, o)
		if err != nil {
			return fixed, err
		}
		if ok {
			fixed++
			r.fixed.Add(1)
			r.metrics.ReconcilerFixed(1)
			r.logger.Warn("reconciler re-queued a pending delivery whose job was gone", zap.String("delivery_id", o.DeliveryID))
		}
	}
	return fixed, nil
}

func (r *Reconciler) adopt(ctx context.Context, client *river.Client[pgx.Tx], o store.Orphan) (bool, error) {
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit

	res, err := client.InsertTx(ctx, tx, DeliveryArgs{DeliveryID: o.DeliveryID}, nil)
	if err != nil {
		return false, fmt.Errorf("error inserting job for delivery %s: %w", o.DeliveryID, err)
	}
	ok, err := store.AdoptDelivery(ctx, tx, o.DeliveryID, o.JobID, res.Job.ID)
	if err != nil {
		return false, fmt.Errorf("error adopting delivery %s: %w", o.DeliveryID, err)
	}
	if !ok {
		return false, nil // it moved on meanwhile; the rollback drops the job
	}
	return true, tx.Commit(ctx)
}
