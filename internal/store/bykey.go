package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ByKeyPool is a small pool for the worker's batched statements (loading
// deliveries, recording attempts), whose sessions are set up once to plan
// the way those statements need:
//
//   - by key only, the byKeyOnly settings (see there), so that recording
//     needs no transaction of its own to set them: one statement, one round
//     trip, instead of four;
//   - one generic plan per session (plan_cache_mode force_generic_plan):
//     PostgreSQL otherwise re-planned the batched load about every other
//     run, estimating each id of the array, and at 2,000 events/s that
//     planning cost 2.7 times the load's execution. Partitions are still
//     pruned, when the plan starts (runtime pruning);
//   - made anew when the day is young (replanDue): a connection taken from
//     the pool then deallocates its statements first, so that the next run
//     of each is planned with the day's size as it is then. A plan made
//     while today's partition was small, and known as empty (a
//     database-wide ANALYZE had reached it while it was one of the days
//     ahead), scanned the partition whole for each delivery of every batch
//     (the by-key settings penalise every path but row addresses, and a
//     scan of a small partition costs less than an index's): kept for the
//     session's life, each record read every row of the day (in the bench
//     with 30 days' partitions, single-event intake at 0.10 – 0.22 of
//     River's rate instead of ~0.40). Renewed, such a plan lasts until the
//     day has grown past a few pages. Not all day long: each renewal's
//     planning holds up a batch, and a plan made once the day has grown
//     needs none. (A p99 gap first measured against renewals every 10 s
//     all day was the paced scenario's spread: six more pairs with a
//     build that renews nothing mid-day showed it too; BENCHMARKS.md.)
//
// Run nothing else on it: other statements want the planner's own choices.
type ByKeyPool struct {
	*pgxpool.Pool
	// replanEvery and youngDay are ByKeyReplanInterval and ByKeyYoungDay
	// (tests change them).
	replanEvery, youngDay atomic.Int64
}

// A ByKeyPool session's plans made on an earlier day (UTC, the day
// partitions' days) are made anew; so are those made in the first
// ByKeyYoungDay of their day, once ByKeyReplanInterval old. A renewal costs
// a round trip (DEALLOCATE ALL) and planning each statement once (~5 ms for
// the record with a deployment's 35 day partitions) on the connection's
// next batch.
const (
	ByKeyReplanInterval = 10 * time.Second
	ByKeyYoungDay       = 10 * time.Minute
)

// replanDue says whether plans made at planned are to be made anew at now.
func replanDue(planned, now time.Time, every, young time.Duration) bool {
	day := Day(planned)
	if !Day(now).Equal(day) {
		return true
	}
	return planned.Sub(day) < young && now.Sub(planned) >= every
}

// plannedKey is where a connection's CustomData keeps when its plans were
// last dropped.
const plannedKey = "webhookd.bykey.planned"

// byKeySettings are ByKeyPool's session settings: byKeyOnly's, and a
// generic plan.
var byKeySettings = map[string]string{
	"enable_hashjoin":   "off",
	"enable_mergejoin":  "off",
	"enable_material":   "off",
	"enable_bitmapscan": "off",
	"enable_seqscan":    "off",
	"enable_indexscan":  "off",
	// A by-key lookup of a batch is no work for parallel workers.
	"max_parallel_workers_per_gather": "0",
	// Disabled paths cost 1e10 each, which would start JIT compilation.
	"jit":             "off",
	"plan_cache_mode": "force_generic_plan",
}

// byKeyOnly makes the rest of a transaction find rows one key at a time
// (nested loops over index and row-address lookups). On a day partition
// whose statistics lag its rows (every new day, until autoanalyze catches
// up) the planner otherwise joined a batch of attempts against every
// pending delivery of the day: measured, a batch of 106 hash-joined 19,999
// rows (20 ms), and with hash joins off a batch of 84 materialised them and
// filtered 1.6 million pairs (235 ms). These settings leave row-address
// (TID) scans as the only access path not penalised: each attempt's
// delivery is found by the lateral lookup (every index path carries the same
// penalty there, so the cheapest, by key, wins) and updated by its address,
// whatever the statistics say (TestRecordAttemptsPlanIsByKey).
//
// RecordAttempts sets it in its own transaction on anything but a
// ByKeyPool (a test's transaction, a plain pool).
var byKeyOnly = func() string {
	var b strings.Builder
	for _, k := range []string{"enable_hashjoin", "enable_mergejoin", "enable_material", "enable_bitmapscan",
		"enable_seqscan", "enable_indexscan", "max_parallel_workers_per_gather", "jit"} {
		fmt.Fprintf(&b, "SET LOCAL %s = %s; ", k, byKeySettings[k])
	}
	return strings.TrimSuffix(b.String(), "; ")
}()

// byKeySession sets byKeySettings for a ByKeyPool's session.
var byKeySession = func() string {
	keys := slices.Sorted(maps.Keys(byKeySettings))
	stmts := make([]string, len(keys))
	for i, k := range keys {
		stmts[i] = fmt.Sprintf("SET %s = %s", k, byKeySettings[k])
	}
	return strings.Join(stmts, "; ")
}()

// NewByKeyPool opens a ByKeyPool of at most maxConns connections to the
// database base connects to (base is not changed). The settings are made
// by SET once each connection is open, after base's own AfterConnect, not
// as startup parameters, which connection poolers may refuse.
func NewByKeyPool(ctx context.Context, base *pgxpool.Config, maxConns int32) (*ByKeyPool, error) {
	cfg := base.Copy()
	cfg.MaxConns = maxConns
	cfg.MinConns = 0
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, conn); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, byKeySession); err != nil {
			return fmt.Errorf("error setting up a by-key session: %w", err)
		}
		conn.PgConn().CustomData()[plannedKey] = time.Now()
		return nil
	}
	bk := &ByKeyPool{}
	bk.replanEvery.Store(int64(ByKeyReplanInterval))
	bk.youngDay.Store(int64(ByKeyYoungDay))
	prepare := cfg.PrepareConn
	cfg.PrepareConn = func(ctx context.Context, conn *pgx.Conn) (bool, error) {
		if prepare != nil {
			if ok, err := prepare(ctx, conn); !ok || err != nil {
				return ok, err
			}
		}
		data := conn.PgConn().CustomData()
		planned, _ := data[plannedKey].(time.Time)
		if !replanDue(planned, time.Now(), time.Duration(bk.replanEvery.Load()), time.Duration(bk.youngDay.Load())) {
			return true, nil
		}
		if err := conn.DeallocateAll(ctx); err != nil {
			// The connection is destroyed and the caller's statement runs
			// on another, new one, whose plans are new too.
			return false, nil //nolint:nilerr // false, nil: pgxpool retries on another connection
		}
		data[plannedKey] = time.Now()
		return true, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("error creating the by-key database pool: %w", err)
	}
	bk.Pool = pool
	return bk, nil
}

// Prewarm opens up to n of pool's connections at once (as many as it may
// open) and leaves them idle in the pool, so that the first requests after
// a start don't each wait for a new connection (a fork and an
// authentication on PostgreSQL's side) while the traffic is already there.
// Idle connections close after the pool's MaxConnIdleTime as usual.
func Prewarm(ctx context.Context, pool *pgxpool.Pool, n int) error {
	n = min(n, int(pool.Config().MaxConns))
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	errs := make(chan error, n)
	got := make(chan *pgxpool.Conn, n)
	for range n {
		go func() {
			c, err := pool.Acquire(ctx)
			if err != nil {
				errs <- err
				return
			}
			got <- c
		}()
	}
	var first error
	for range n {
		select {
		case c := <-got:
			conns = append(conns, c)
		case err := <-errs:
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		return fmt.Errorf("error opening database connections ahead: %w", first)
	}
	return nil
}
