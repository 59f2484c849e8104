package bench

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/mono/webhookd/internal/store"
)

// limitedAccount is the account of the rate-limited endpoint.
const limitedAccount = "acct_limited"

// Throttled is the rate-limit scenario: a webhook limited to PerSecond
// with a backlog of Limited events, beside a healthy endpoint's backlog
// of Healthy, on two worker processes sharing one database.
type Throttled struct {
	PerSecond, Limited, Healthy int
	// HealthyRun is the healthy drain beside the limited backlog;
	// Baseline the same drain alone (two processes as well), run before
	// it, and BaselineAfter alone again after the limited backlog is done.
	HealthyRun, Baseline, BaselineAfter *Throughput
	// Ratio is HealthyRun's throughput over the mean of Baseline's and
	// BaselineAfter's: alone before and after, so that a drift of the
	// machine's speed through the run (another process starting, the
	// page cache, a database grown by the earlier drains) weighs on both
	// sides alike, as scenario 8 measures River before and after.
	Ratio float64
	// LimitedElapsed is from the workers' start to the last limited
	// delivery recorded; Achieved the limited starts per second.
	LimitedElapsed time.Duration
	Achieved       float64
	// Most1s and Most10s are the most recorded starts of the limited
	// webhook in any 1 s and 10 s window.
	Most1s, Most10s int
	// Fetches counts the limited deliveries by how many times their job
	// was fetched (1 + its snoozes): index 0 once, 1 twice, 2 more.
	Fetches [3]int
	// MaxThrottled and MaxDueAge are the largest throttled gauge and
	// oldest-due age sampled during the drain.
	MaxThrottled int64
	MaxDueAge    time.Duration
	// WorkAlone and WorkBeside are what the healthy drain took, alone
	// and beside the limited backlog: counts that the machine's other
	// load doesn't move, unlike the throughputs.
	WorkAlone, WorkBeside DrainWork
}

// DrainWork is the work done from the workers' start to the healthy
// drain's end: this process's CPU time (the two servers, the receivers)
// and the stage database's committed transactions and rows written
// (pg_stat_database, which a backend updates at most once a second, so it
// may miss the last second's).
type DrainWork struct {
	CPU       time.Duration
	Xacts     int64
	RowWrites int64
}

// sub is w minus an earlier reading.
func (w DrainWork) sub(earlier DrainWork) DrainWork {
	return DrainWork{CPU: w.CPU - earlier.CPU, Xacts: w.Xacts - earlier.Xacts, RowWrites: w.RowWrites - earlier.RowWrites}
}

// readWork reads this process's CPU time so far and db's counters.
func readWork(ctx context.Context, db store.DB) (DrainWork, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return DrainWork{}, err
	}
	w := DrainWork{CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	err := db.QueryRow(ctx, `SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()`).Scan(&w.Xacts, &w.RowWrites)
	return w, err
}

// throttled runs the rate-limit scenario: the healthy drain alone, then
// beside the limited backlog (every limited delivery then drained too),
// then alone again.
func (e *env) throttled(ctx context.Context, perSecond, limited, healthy int) (*Throttled, error) {
	out := &Throttled{PerSecond: perSecond, Limited: limited, Healthy: healthy}
	var err error
	if out.Baseline, out.WorkAlone, err = e.throttledDrain(ctx, perSecond, 0, healthy, nil); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if out.HealthyRun, out.WorkBeside, err = e.throttledDrain(ctx, perSecond, limited, healthy, out); err != nil {
		return nil, err
	}
	if out.BaselineAfter, _, err = e.throttledDrain(ctx, perSecond, 0, healthy, nil); err != nil {
		return nil, fmt.Errorf("baseline after: %w", err)
	}
	out.Ratio = out.HealthyRun.PerSecond() / ((out.Baseline.PerSecond() + out.BaselineAfter.PerSecond()) / 2)
	return out, nil
}

// throttledDrain drains healthy deliveries to a healthy receiver, and
// limited ones to a webhook limited to perSecond (when limited > 0), on two
// servers sharing one fresh database, both backlogs inserted with the
// workers stopped. It returns the healthy drain's throughput and work and,
// with limited > 0, fills res once every limited delivery has succeeded.
func (e *env) throttledDrain(ctx context.Context, perSecond, limited, healthy int, res *Throttled) (*Throughput, DrainWork, error) {
	s, servers, err := e.twoServerStage(ctx)
	if err != nil {
		return nil, DrainWork{}, err
	}
	defer s.close()

	recv, target, err := s.startReceiver(false)
	if err != nil {
		return nil, DrainWork{}, err
	}
	if _, err := s.createWebhook(ctx, healthyAccount, target); err != nil {
		return nil, DrainWork{}, err
	}
	var limitedID string
	var limitedRecv *receiver
	if limited > 0 {
		var limitedTarget string
		if limitedRecv, limitedTarget, err = s.startReceiver(false); err != nil {
			return nil, DrainWork{}, err
		}
		if limitedID, err = s.createWebhook(ctx, limitedAccount, limitedTarget, func(w *store.Webhook) { w.RateLimitPerSecond = &perSecond }); err != nil {
			return nil, DrainWork{}, err
		}
		if err := s.insertBacklog(ctx, limitedAccount, limited); err != nil {
			return nil, DrainWork{}, err
		}
	}
	if err := s.insertBacklog(ctx, healthyAccount, healthy); err != nil {
		return nil, DrainWork{}, err
	}

	// Each drain starts right after a checkpoint: a drain of 100,000 writes
	// about as much WAL as max_wal_size's default, so otherwise whichever
	// phase a WAL-triggered checkpoint falls in pays its full-page images
	// (measured: three drains of the same 100,000 at 8,027, 6,040 and
	// 5,207/s with checkpoints every ~20 s). Needs the pg_checkpoint role
	// (or a superuser); without it the run says so and goes on.
	if _, err := s.pool().Exec(ctx, "CHECKPOINT"); err != nil {
		s.progress("no CHECKPOINT before the drain (%v): a checkpoint may fall in one phase and not another", err)
	}
	before, err := readWork(ctx, s.pool())
	if err != nil {
		return nil, DrainWork{}, err
	}
	start := time.Now()
	deadline := start.Add(e.cfg.Timeout)
	for _, srv := range servers {
		if err := srv.Start(ctx); err != nil {
			return nil, DrainWork{}, err
		}
	}
	s.progress("two workers started: draining %s healthy deliveries beside %s limited to %d/s", count(healthy), count(limited), perSecond)
	if err := s.waitAnswered(ctx, recv, healthy, deadline); err != nil {
		return nil, DrainWork{}, err
	}
	err = s.waitFor(ctx, "every healthy delivery to be recorded as succeeded", time.Until(deadline), 5*time.Millisecond, func() (bool, string, error) {
		pending, err := s.pendingOf(ctx, healthyAccount)
		return pending == 0, fmt.Sprintf("%s still pending", count(pending)), err
	})
	if err != nil {
		return nil, DrainWork{}, err
	}
	out := &Throughput{Deliveries: healthy, Elapsed: time.Since(start)}
	after, err := readWork(ctx, s.pool())
	if err != nil {
		return nil, DrainWork{}, err
	}
	work := after.sub(before)
	s.progress("%s healthy deliveries in %.2f s: %s/s", count(healthy), out.Elapsed.Seconds(), count(int(out.PerSecond())))
	if limited == 0 {
		return out, work, nil
	}

	// The limited backlog drains at perSecond: sample the gauges meanwhile.
	err = s.waitFor(ctx, "every limited delivery to be recorded as succeeded", time.Until(deadline), 250*time.Millisecond, func() (bool, string, error) {
		if n, err := store.CountThrottled(ctx, s.pool(), time.Now()); err == nil {
			res.MaxThrottled = max(res.MaxThrottled, n)
		}
		if st, err := store.GetPendingStats(ctx, s.pool()); err == nil && st.EarliestDue != nil {
			res.MaxDueAge = max(res.MaxDueAge, time.Since(*st.EarliestDue))
		}
		pending, err := s.pendingOf(ctx, limitedAccount)
		return pending == 0, fmt.Sprintf("%s limited still pending", count(pending)), err
	})
	if err != nil {
		return nil, DrainWork{}, err
	}
	if got := limitedRecv.ok.Load(); got < int64(limited) {
		return nil, DrainWork{}, fmt.Errorf("the limited receiver answered %d of %d deliveries", got, limited)
	}
	rows, err := s.pool().Query(ctx, `SELECT a.started_at FROM attempt_log a JOIN deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1`, limitedID)
	if err != nil {
		return nil, DrainWork{}, err
	}
	var starts []time.Time
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			rows.Close()
			return nil, DrainWork{}, err
		}
		starts = append(starts, at)
	}
	if err := rows.Err(); err != nil {
		return nil, DrainWork{}, err
	}
	slices.SortFunc(starts, time.Time.Compare)
	res.LimitedElapsed = starts[len(starts)-1].Sub(start)
	res.Achieved = float64(len(starts)-1) / starts[len(starts)-1].Sub(starts[0]).Seconds()
	res.Most1s, res.Most10s = mostWithin(starts, time.Second), mostWithin(starts, 10*time.Second)
	err = s.pool().QueryRow(ctx, `
SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1)
FROM (SELECT coalesce((j.metadata->>'snoozes')::int, 0) AS n FROM river_job j JOIN deliveries d ON d.job_id = j.id WHERE d.webhook_id = $1) x`,
		limitedID).Scan(&res.Fetches[0], &res.Fetches[1], &res.Fetches[2])
	if err != nil {
		return nil, DrainWork{}, err
	}
	s.progress("%s limited deliveries in %.1f s: %.2f starts/s; at most %d in 1 s, %d in 10 s", count(limited), res.LimitedElapsed.Seconds(), res.Achieved, res.Most1s, res.Most10s)
	return out, work, nil
}

// mostWithin is the most of sorted times within one half-open window
// [t, t+window).
func mostWithin(sorted []time.Time, window time.Duration) int {
	most, j := 0, 0
	for i := range sorted {
		for !sorted[j].Add(window).After(sorted[i]) {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}
