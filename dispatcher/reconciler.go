package dispatcher

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/mono/webhookd/metrics"
	"github.com/mono/webhookd/store"
)

// ReconcileIntervalDefault is how often the reconciler looks for pending
// deliveries that no live job serves.
const ReconcileIntervalDefault = time.Minute

// reconcileBatch is how many orphans one pass fixes per query.
const reconcileBatch = 500

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
// keeps a delivery from staying pending for ever.
type Reconciler struct {
	river.WorkerDefaults[ReconcileArgs]

	db      store.DB
	logger  *zap.Logger
	metrics *metrics.Metrics
	fixed   atomic.Int64
}

// ReconcilerConfig configures a Reconciler.
type ReconcilerConfig struct {
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Metrics counts the deliveries fixed. Optional: nil records nothing.
	Metrics *metrics.Metrics
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
	return &Reconciler{db: db, logger: logger, metrics: cfg.Metrics}
}

// Fixed is how many deliveries the reconciler has re-queued since start.
func (r *Reconciler) Fixed() int64 { return r.fixed.Load() }

// Work runs one reconciliation pass.
func (r *Reconciler) Work(ctx context.Context, job *river.Job[ReconcileArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	_, err := r.Reconcile(ctx, client)
	return err
}

// Reconcile re-queues every orphaned pending delivery with client and
// returns how many it fixed.
func (r *Reconciler) Reconcile(ctx context.Context, client *river.Client[pgx.Tx]) (int, error) {
	total := 0
	for {
		orphans, err := store.FindOrphans(ctx, r.db, reconcileBatch)
		if err != nil {
			return total, fmt.Errorf("error finding orphaned deliveries: %w", err)
		}
		fixedThisRound := 0
		for _, o := range orphans {
			ok, err := r.adopt(ctx, client, o)
			if err != nil {
				return total, err
			}
			if ok {
				fixedThisRound++
				r.logger.Warn("reconciler re-queued a pending delivery whose job was gone", zap.String("delivery_id", o.DeliveryID))
			}
		}
		total += fixedThisRound
		r.fixed.Add(int64(fixedThisRound))
		r.metrics.ReconcilerFixed(fixedThisRound)
		if len(orphans) < reconcileBatch || fixedThisRound == 0 {
			return total, nil
		}
	}
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
