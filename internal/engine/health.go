package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// Endpoint health (GET /v1/webhooks/{id}/health) costs the delivery hot path
// no SQL: the worker tells a HealthTracker about each counted attempt it has
// recorded (Observe: a map update under a mutex), and the tracker folds
// them per webhook in memory and writes them every few seconds in one
// batched statement.
//
// With several worker processes each folds its own attempts and flushes
// on its own, so the stored values are exact for one process and, across
// processes, depend on the order of the flushes:
//
//   - last_success_at, last_failure_at and the per-minute counts are exact
//     (greatest and sums are order-free); last_failure_kind belongs to the
//     latest failure.
//   - consecutive_failures is approximate. A batch holding a success newer
//     than the stored one resets it to the failures that batch saw after
//     its success, forgetting failures after that success that another
//     process flushed first; a batch without a newer success adds its
//     failures, including any that happened before a success another
//     process flushed first. The error is at most what the other
//     processes saw in one flush interval, and lasts until the next
//     success resets the count.
//
// Everything observed since the last flush is lost if the process crashes;
// a graceful shutdown flushes (Flush after the workers stop).

// Health tracker defaults.
const (
	// HealthFlushIntervalDefault is how often Run writes what it folded.
	HealthFlushIntervalDefault = 5 * time.Second
	// HealthMinutesRetentionDefault is how long per-minute counts are kept;
	// the API reads the last hour.
	HealthMinutesRetentionDefault = 2 * time.Hour
	// HealthPruneInterval is the least time between two deletions of old
	// per-minute counts by one process.
	HealthPruneInterval = time.Minute
	// healthFailureTimesMax bounds the failure times kept per webhook
	// between flushes; beyond it the older half is only counted.
	healthFailureTimesMax = 1024
)

// HealthConfig configures a HealthTracker.
type HealthConfig struct {
	// FlushInterval is how often Run writes. Defaults to
	// HealthFlushIntervalDefault.
	FlushInterval time.Duration
	// MinutesRetention is how long per-minute counts are kept. Defaults
	// to HealthMinutesRetentionDefault.
	MinutesRetention time.Duration
	// Now is the clock of pruning and of updated_at. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// FailingThreshold is how many consecutive failed attempts make a
	// webhook's endpoint.failing notification (written with the health
	// that crosses it; not again until an attempt has succeeded). 0 sends
	// none. Notifications need Notifier too (SetNotifier).
	FailingThreshold int
}

// WithDefaults returns a copy of c with defaults filled in.
func (c *HealthConfig) WithDefaults() *HealthConfig {
	out := HealthConfig{}
	if c != nil {
		out = *c
	}
	if out.FlushInterval <= 0 {
		out.FlushInterval = HealthFlushIntervalDefault
	}
	if out.MinutesRetention <= 0 {
		out.MinutesRetention = HealthMinutesRetentionDefault
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	return &out
}

// HealthTracker folds counted attempts per webhook in memory and writes
// them to webhook_health and webhook_health_minutes on Flush. It is safe
// for concurrent use; a nil *HealthTracker observes nothing.
type HealthTracker struct {
	db  store.DB
	cfg *HealthConfig

	mu      sync.Mutex
	pending map[string]*healthFold

	// flushMu serialises flushes (Run's and the one at shutdown), and
	// guards prunedAt.
	flushMu  sync.Mutex
	prunedAt time.Time

	notifier atomic.Pointer[Enqueuer] // endpoint.failing (SetNotifier)
}

// SetNotifier makes the tracker write endpoint.failing notifications with
// e's River client, when FailingThreshold is set. Safe on a nil tracker.
func (t *HealthTracker) SetNotifier(e *Enqueuer) {
	if t != nil {
		t.notifier.Store(e)
	}
}

// NewHealthTracker returns a tracker writing to db.
func NewHealthTracker(db store.DB, cfg *HealthConfig) *HealthTracker {
	return &HealthTracker{db: db, cfg: cfg.WithDefaults(), pending: map[string]*healthFold{}}
}

// Observe records one counted attempt of webhookID that ended at at. Safe
// on a nil tracker (it does nothing).
func (t *HealthTracker) Observe(webhookID string, at time.Time, succeeded bool, errorKind string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.pending[webhookID]
	if f == nil {
		f = &healthFold{}
		t.pending[webhookID] = f
	}
	f.observe(at, succeeded, errorKind)
}

// Run flushes every FlushInterval until ctx is done. A failed flush is
// logged and its attempts are kept for the next one. Run does not flush
// on its way out: call Flush after it returns (and after the workers
// stop).
func (t *HealthTracker) Run(ctx context.Context) {
	ticker := time.NewTicker(t.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := t.Flush(ctx); err != nil && ctx.Err() == nil {
				t.cfg.Logger.Warn("error writing endpoint health; keeping it for the next flush", zap.Error(err))
			}
		}
	}
}

// Flush writes everything observed since the last flush in one statement
// and, at most once per HealthPruneInterval, deletes per-minute counts
// older than MinutesRetention. On error what it took is put back, to be
// written by the next flush.
func (t *HealthTracker) Flush(ctx context.Context) error {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	now := t.cfg.Now()
	horizon := now.Add(-t.cfg.MinutesRetention)

	t.mu.Lock()
	batch := t.pending
	t.pending = map[string]*healthFold{}
	t.mu.Unlock()

	if len(batch) > 0 {
		folds, minutes := foldRows(batch, horizon)
		if err := t.flush(ctx, folds, minutes, now); err != nil {
			t.putBack(batch)
			return err
		}
		t.cfg.Logger.Debug("endpoint health written", zap.Int("webhooks", len(folds)), zap.Int("minutes", len(minutes)))
	}

	if now.Sub(t.prunedAt) >= HealthPruneInterval {
		n, err := store.PruneHealthMinutes(ctx, t.db, horizon)
		if err != nil {
			return err
		}
		t.prunedAt = now
		if n > 0 {
			t.cfg.Logger.Debug("old endpoint health minutes deleted", zap.Int64("rows", n))
		}
	}
	return nil
}

// putBack merges a batch that could not be written into what was observed
// since.
func (t *HealthTracker) putBack(batch map[string]*healthFold) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, f := range batch {
		if cur := t.pending[id]; cur != nil {
			f.merge(cur)
		}
		t.pending[id] = f
	}
}

// foldRows turns a batch into FlushHealth's rows, sorted by webhook id and
// minute, leaving out minutes older than horizon (the pruner's).
func foldRows(batch map[string]*healthFold, horizon time.Time) ([]store.HealthFold, []store.HealthMinute) {
	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	folds := make([]store.HealthFold, 0, len(ids))
	var minutes []store.HealthMinute
	for _, id := range ids {
		f := batch[id]
		row := store.HealthFold{WebhookID: id, Failures: f.failuresAfterSuccess()}
		if f.lastSuccess != 0 {
			at := time.Unix(0, f.lastSuccess).UTC()
			row.LastSuccessAt = &at
		}
		if f.lastFailure != 0 {
			at := time.Unix(0, f.lastFailure).UTC()
			kind := f.lastFailureKind
			row.LastFailureAt = &at
			if kind != "" {
				row.LastFailureKind = &kind
			}
		}
		folds = append(folds, row)
		keys := make([]int64, 0, len(f.minutes))
		for m := range f.minutes {
			keys = append(keys, m)
		}
		slices.Sort(keys)
		for _, m := range keys {
			at := time.Unix(m, 0).UTC()
			if at.Before(horizon) {
				continue
			}
			c := f.minutes[m]
			minutes = append(minutes, store.HealthMinute{WebhookID: id, Minute: at, Successes: c.successes, Failures: c.failures})
		}
	}
	return folds, minutes
}

// healthFold is one webhook's attempts since the last flush. Times are Unix
// nanoseconds, 0 for none.
type healthFold struct {
	lastSuccess     int64
	lastFailure     int64
	lastFailureKind string
	// failures are the times of the failed attempts after lastSuccess (all
	// of them without a success), so that attempts observed slightly out
	// of order (concurrent workers) fold exactly.
	failures []int64
	// older counts further failures after lastSuccess, none later than
	// olderMax, whose times were dropped to bound memory.
	older    int
	olderMax int64
	// minutes counts attempts per minute (Unix seconds of its start).
	minutes map[int64]*minuteCount
}

type minuteCount struct {
	successes, failures int
}

func (f *healthFold) observe(at time.Time, succeeded bool, errorKind string) {
	ns := at.UnixNano()
	if f.minutes == nil {
		f.minutes = map[int64]*minuteCount{}
	}
	m := at.Truncate(time.Minute).Unix()
	c := f.minutes[m]
	if c == nil {
		c = &minuteCount{}
		f.minutes[m] = c
	}
	if succeeded {
		c.successes++
		f.success(ns)
		return
	}
	c.failures++
	if ns > f.lastFailure {
		f.lastFailure, f.lastFailureKind = ns, errorKind
	}
	f.failure(ns)
}

// success folds a success at ns into the consecutive failures.
func (f *healthFold) success(ns int64) {
	if ns <= f.lastSuccess {
		return
	}
	f.lastSuccess = ns
	f.failures = slices.DeleteFunc(f.failures, func(t int64) bool { return t <= ns })
	if f.olderMax <= ns {
		f.older, f.olderMax = 0, 0
	}
}

// failure folds a failure at ns into the consecutive failures.
func (f *healthFold) failure(ns int64) {
	if f.lastSuccess != 0 && ns <= f.lastSuccess {
		return // before a success already seen
	}
	f.failures = append(f.failures, ns)
	if len(f.failures) > healthFailureTimesMax {
		slices.Sort(f.failures)
		half := len(f.failures) / 2
		f.older += half
		f.olderMax = max(f.olderMax, f.failures[half-1])
		f.failures = slices.Delete(f.failures, 0, half)
	}
}

func (f *healthFold) failuresAfterSuccess() int { return len(f.failures) + f.older }

// merge folds o (observed after f was taken) into f.
func (f *healthFold) merge(o *healthFold) {
	if o.lastSuccess != 0 {
		f.success(o.lastSuccess)
	}
	for _, ns := range o.failures {
		f.failure(ns)
	}
	if o.older > 0 && o.olderMax > f.lastSuccess {
		f.older += o.older
		f.olderMax = max(f.olderMax, o.olderMax)
	}
	if o.lastFailure > f.lastFailure {
		f.lastFailure, f.lastFailureKind = o.lastFailure, o.lastFailureKind
	}
	if f.minutes == nil {
		f.minutes = map[int64]*minuteCount{}
	}
	for m, c := range o.minutes {
		if cur := f.minutes[m]; cur != nil {
			cur.successes += c.successes
			cur.failures += c.failures
		} else {
			f.minutes[m] = &minuteCount{successes: c.successes, failures: c.failures}
		}
	}
}
