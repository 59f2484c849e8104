// Package retention keeps the day partitions of events, deliveries and
// attempts: it creates them ahead of time and drops them when their rows
// are past retention, as a periodic River job.
//
// A day is retired once every delivery in it could be past the shorter of
// the two retentions: one day after the day ends (the retry schedule runs
// about 8.4 h past creation) plus that retention. Before its partitions are
// dropped, the rows that must stay longer move forward to today's
// partitions, each delivery with its event and attempts: pending and paused
// deliveries of live webhooks, succeeded or cancelled ones finished within
// WEBHOOKD_RETENTION (a replay may finish late), and dead ones that died
// within WEBHOOKD_DEAD_RETENTION. A deleted webhook's pending and paused
// deliveries (which deleting cancels, and the reconciler cancels should an
// enqueue racing the delete add some) go with the day instead.
// A dead delivery is thus moved at most about dead/retention times (three by
// default) and dropped with the first day retired after its dead retention.
// What goes with a day besides its rows: the idempotency keys of its events
// and the replay history of its deliveries.
package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// Defaults.
const (
	// RetentionDefault keeps succeeded and cancelled deliveries 30 days
	// (WEBHOOKD_RETENTION).
	RetentionDefault = 30 * 24 * time.Hour
	// DeadRetentionDefault keeps dead deliveries 90 days
	// (WEBHOOKD_DEAD_RETENTION), time enough to replay them.
	DeadRetentionDefault = 90 * 24 * time.Hour
	// AheadDefault is how many days of partitions exist ahead of today.
	// Few on purpose: every partition costs each query on its table locks
	// (PostgreSQL 15 locks them all for a cached plan); the DEFAULT
	// partition catches rows if the job stops running for longer.
	AheadDefault = 2
	// IntervalDefault is how often the job runs.
	IntervalDefault = time.Hour
	// MinRetention is the shortest retention accepted: partitions are days.
	MinRetention = 24 * time.Hour
)

// Args are the arguments of the periodic retention job.
type Args struct{}

// Kind is the River job kind.
func (Args) Kind() string { return "webhookd.retention" }

// InsertOpts: a failed run is not retried; the next period runs anyway.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1}
}

// Config configures a Worker.
type Config struct {
	// Retention and DeadRetention: see the defaults. Zero means default.
	Retention, DeadRetention time.Duration
	// Ahead is how many days of partitions to keep ready after today.
	Ahead int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
}

// Validate checks the retentions, naming the setting at fault.
func (c *Config) Validate() error {
	if c.Retention != 0 && c.Retention < MinRetention {
		return fmt.Errorf("WEBHOOKD_RETENTION: %s is shorter than the minimum of 1 day (24h)", c.Retention)
	}
	if c.DeadRetention != 0 && c.DeadRetention < MinRetention {
		return fmt.Errorf("WEBHOOKD_DEAD_RETENTION: %s is shorter than the minimum of 1 day (24h)", c.DeadRetention)
	}
	if c.Ahead < 0 {
		return errors.New("retention: Ahead must not be negative")
	}
	return nil
}

// Worker runs retention.
type Worker struct {
	river.WorkerDefaults[Args]

	db  store.DB
	cfg Config
}

// New returns a retention worker on db; a nil cfg means defaults.
func New(db store.DB, cfg *Config) (*Worker, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Retention == 0 {
		c.Retention = RetentionDefault
	}
	if c.DeadRetention == 0 {
		c.DeadRetention = DeadRetentionDefault
	}
	if c.Ahead == 0 {
		c.Ahead = AheadDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return &Worker{db: db, cfg: c}, nil
}

// Work runs one pass.
func (w *Worker) Work(ctx context.Context, _ *river.Job[Args]) error {
	_, err := w.Run(ctx)
	return err
}

// Report is what one pass did.
type Report struct {
	// Created is how many partitions were created.
	Created int
	// Retired are the days whose partitions were dropped.
	Retired []*store.Retirement
	// SessionsExpired is how many expired dashboard sessions were deleted.
	SessionsExpired int64
}

// Run makes sure partitions exist from yesterday to Ahead days after today,
// then retires every day past retention, oldest first. A day that fails
// stops the pass (the next one tries again); the days retired before it
// stay retired.
func (w *Worker) Run(ctx context.Context) (*Report, error) {
	now := w.cfg.Now().UTC()
	today := store.Day(now)
	rep := &Report{}
	created, err := store.EnsurePartitions(ctx, w.db, today.AddDate(0, 0, -1), today.AddDate(0, 0, w.cfg.Ahead), 0)
	rep.Created = created
	if err != nil {
		return rep, fmt.Errorf("error creating partitions: %w", err)
	}
	if created > 0 {
		w.cfg.Logger.Info("partitions created", zap.Int("count", created), zap.Time("through", today.AddDate(0, 0, w.cfg.Ahead)))
	}

	// Expired dashboard sessions go too (sign-in also deletes them, but
	// nobody may sign in for a long time).
	rep.SessionsExpired, err = store.DeleteExpiredSessions(ctx, w.db, now)
	if err != nil {
		return rep, fmt.Errorf("error deleting expired dashboard sessions: %w", err)
	}

	days, err := store.PartitionDays(ctx, w.db)
	if err != nil {
		return rep, fmt.Errorf("error listing partitions: %w", err)
	}
	// A day ends one day after it starts and its deliveries finish within
	// about 8.4 h more: a day retires when its end plus a day is past the
	// shorter retention.
	horizon := now.Add(-min(w.cfg.Retention, w.cfg.DeadRetention))
	policy := &store.RetirePolicy{
		To:             today,
		FinishedBefore: now.Add(-w.cfg.Retention),
		DeadBefore:     now.Add(-w.cfg.DeadRetention),
	}
	for _, day := range days {
		if day.AddDate(0, 0, 2).After(horizon) {
			break
		}
		r, err := store.RetireDay(ctx, w.db, day, policy)
		if err != nil {
			return rep, fmt.Errorf("error retiring %s: %w", day.Format(time.DateOnly), err)
		}
		rep.Retired = append(rep.Retired, r)
		w.cfg.Logger.Info("day retired",
			zap.String("day", day.Format(time.DateOnly)),
			zap.Int64("dropped_deliveries", r.DroppedDeliveries),
			zap.Int64("moved_deliveries", r.MovedDeliveries),
			zap.Int64("moved_events", r.MovedEvents),
			zap.Int64("moved_attempts", r.MovedAttempts))
	}
	return rep, nil
}
