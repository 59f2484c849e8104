package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// Recording a batch finds each delivery by key even when the day
// partition's statistics say it is nearly empty (a new day, before
// autoanalyze): without byKeyOnly the planner hash-joined (or materialised
// and filtered) every pending delivery of the day for each batch.
func TestRecordAttemptsPlanIsByKey(t *testing.T) {
	pool, args := planFixture(t)
	ctx := context.Background()
	var plan []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, byKeyOnly); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+attemptRecordMany, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return fmt.Errorf("roll back") // EXPLAIN changes nothing; leave no settings behind
	})
	require.EqualError(t, err, "roll back")
	requireRecordByKey(t, plan)
}

// On a ByKeyPool the recording runs without a transaction of its own: the
// sessions' settings make the same plan, and it is generic (prepared once).
func TestByKeyPoolPlans(t *testing.T) {
	pool, args := planFixture(t)
	ctx := context.Background()
	base := pool.Config()
	base.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET webhookd.base_after_connect = 'ran'")
		return err
	}
	bk, err := NewByKeyPool(ctx, base, 1)
	require.NoError(t, err)
	t.Cleanup(bk.Close)
	conn, err := bk.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	var mode, indexScan, baseRan string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('plan_cache_mode'), current_setting('enable_indexscan'), "+
		"current_setting('webhookd.base_after_connect')").Scan(&mode, &indexScan, &baseRan))
	require.Equal(t, []string{"force_generic_plan", "off", "ran"}, []string{mode, indexScan, baseRan},
		"the session's settings, and the base config's own AfterConnect kept")

	// EXPLAIN EXECUTE takes no parameters: each argument goes in as a
	// literal, which PostgreSQL itself spells.
	explain := func(name, query string, types []string, args ...any) string {
		t.Helper()
		_, err := conn.Exec(ctx, "PREPARE "+name+" ("+strings.Join(types, ", ")+") AS "+query)
		require.NoError(t, err)
		literals := make([]string, len(args))
		for i, a := range args {
			require.NoError(t, conn.QueryRow(ctx, "SELECT quote_literal($1::"+types[i]+"::text) || '::"+types[i]+"'", a).Scan(&literals[i]))
		}
		rows, err := conn.Query(ctx, "EXPLAIN EXECUTE "+name+"("+strings.Join(literals, ", ")+")")
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		var generic, custom int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1", name).
			Scan(&generic, &custom))
		require.Equal(t, []int64{1, 0}, []int64{generic, custom}, "%s: generic and custom plans made", name)
		return strings.Join(lines, "\n")
	}
	recordTypes := strings.Split("int[] text[] date[] int[] bigint[] text[] bool[] timestamptz[] "+
		"timestamptz[] int[] int[] timestamptz[] timestamptz[] bigint[] int[] text[] text[] bytea[] bigint[] bool[]", " ")
	record := explain("record", attemptRecordMany, recordTypes, args...)
	requireRecordByKey(t, strings.Split(record, "\n"))
	// The second look for rows that moved, from each one's day on.
	moved := explain("moved", attemptRecordMoved, recordTypes, args...)
	requireRecordByKey(t, strings.Split(moved, "\n"))
	require.Contains(t, moved, "part_day >= i.part_day", moved)

	day := Day(time.Now())
	load := explain("load", targetGetMany, []string{"text[]", "date", "date"}, args[1], day, day)
	require.Regexp(t, `Index Scan using deliveries_p\d+_pkey .*\n.*Index Cond: \(\(id = i\.id\)`, load)
	require.Regexp(t, `Index Scan using events_(p\d+|default)_pkey .*\n.*Index Cond: \(\(id = d\.event_id\)`, load)
	require.Contains(t, load, "Index Scan using webhooks_pkey", load)
	require.NotContains(t, load, "Gather", load)
	require.NotContains(t, load, "Seq Scan", load)
	require.NotContains(t, load, "Hash", load)
	require.NotContains(t, load, "JIT", load)
}

// A ByKeyPool session's plans are made anew while the day is young. A
// plan made while today's partition was empty and analyzed as such (a
// database-wide ANALYZE reaches the days ahead) scans the partition for
// each delivery of a batch while the day's rows come in; the next one,
// made once the day has rows, goes by key.
func TestByKeyReplansAfterItsInterval(t *testing.T) {
	ctx := context.Background()
	pool, day := todayPool(t)
	_, err := pool.Exec(ctx, `ANALYZE deliveries`)
	require.NoError(t, err)
	bk, err := NewByKeyPool(ctx, pool.Config(), 1)
	require.NoError(t, err)
	t.Cleanup(bk.Close)
	bk.replanEvery.Store(int64(time.Hour))
	bk.youngDay.Store(int64(25 * time.Hour)) // whenever the test runs
	part := PartitionName("deliveries", day)
	// record runs the record statement as RecordAttempts does on a
	// ByKeyPool (pgx's cached statement, its generic plan), in a
	// transaction rolled back, and returns the sequential scans of today's
	// partition in it and the rows they read.
	record := func(args []any) (scans, read int64) {
		t.Helper()
		conn, err := bk.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer func() { require.NoError(t, tx.Rollback(ctx)) }()
		// The session's counts not yet reported include earlier
		// transactions': the difference is this one's.
		counts := func() (scans, read int64) {
			require.NoError(t, tx.QueryRow(ctx, `SELECT pg_stat_get_xact_numscans($1::regclass), pg_stat_get_xact_tuples_returned($1::regclass)`, part).
				Scan(&scans, &read))
			return scans, read
		}
		scans0, read0 := counts()
		rows, err := tx.Query(ctx, attemptRecordMany, args...)
		require.NoError(t, err)
		recorded, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		require.NoError(t, err)
		require.Len(t, recorded, len(args[0].([]int32)))
		scans, read = counts()
		return scans - scans0, read - read0
	}
	// The plan is made on the empty day.
	empty := make([]any, 20)
	for i, a := range recordArgs(day) {
		empty[i] = reflect.MakeSlice(reflect.TypeOf(a), 0, 0).Interface()
	}
	record(empty)
	insertPlanRows(t, pool, day)
	scans, read := record(recordArgs(day))
	require.Positive(t, scans, "the plan made on the empty day scans it")
	require.Greater(t, read, int64(5000), "the plan made on the empty day reads the day's rows for each delivery")

	// Past the interval, in a young day, the next connection taken makes
	// its plans anew.
	bk.replanEvery.Store(0)
	scans, read = record(recordArgs(day))
	require.Zero(t, scans, "made on the day's rows, the plan goes by key")
	require.Zero(t, read)
}

// planFixture makes a day partition holding 5,000 pending deliveries its
// statistics don't know about (job ids 1 to 5,000), and the arguments of
// attemptRecordMany for 80 of them, each a success that deletes its job.
func planFixture(t *testing.T) (*pgxpool.Pool, []any) {
	pool, day := todayPool(t)
	// 5,000 pending deliveries the statistics don't know about.
	insertPlanRows(t, pool, day)
	return pool, recordArgs(day)
}

// todayPool is a fresh test database with today's deliveries partition,
// and today.
func todayPool(t *testing.T) (*pgxpool.Pool, time.Time) {
	t.Helper()
	pool := testdb.New(t)
	day := Day(time.Now())
	_, err := pool.Exec(context.Background(), `SELECT webhookd_ensure_partition('deliveries', $1::date)`, day)
	require.NoError(t, err)
	return pool, day
}

// insertPlanRows inserts planFixture's 5,000 pending deliveries of day.
func insertPlanRows(t *testing.T, pool *pgxpool.Pool, day time.Time) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, part_day)
SELECT 'dlv_' || lpad(g::text, 32, '0'), 'evt_x', 'wh_x', 'acct_x', 'ping', g, $1::date FROM generate_series(1, 5000) g`, day)
	require.NoError(t, err)
}

// recordArgs are attemptRecordMany's arguments for 80 of planFixture's
// deliveries.
func recordArgs(day time.Time) []any {
	const n = 80
	args := make([]any, 20)
	ord, ids, days, seen, jobs := make([]int32, n), make([]string, n), make([]time.Time, n), make([]int32, n), make([]int64, n)
	for i := range n {
		ord[i], ids[i], days[i], jobs[i] = int32(i), fmt.Sprintf("dlv_%032d", i*50+1), day, int64(i*50+1)
	}
	str := func(v string) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = time.Now()
	}
	i32, i64 := make([]int32, n), make([]int64, n)
	args[0], args[1], args[2], args[3], args[4] = ord, ids, days, seen, jobs
	args[5], args[6], args[7], args[8] = str("succeeded"), make([]bool, n), make([]*time.Time, n), ts
	args[9], args[10], args[11], args[12], args[13] = i32, i32, ts, ts, i64
	args[14], args[15], args[16], args[17], args[18] = make([]*int32, n), make([]*string, n), make([]*string, n), make([][]byte, n), i64
	deleteJobs := make([]bool, n)
	for i := range deleteJobs {
		deleteJobs[i] = true
	}
	args[19] = deleteJobs
	return args
}

func requireRecordByKey(t *testing.T, plan []string) {
	t.Helper()
	text := strings.Join(plan, "\n")
	require.Contains(t, text, "Nested Loop", text)
	require.NotContains(t, text, "Hash Join", text)
	require.NotContains(t, text, "Materialize", text)
	require.NotContains(t, text, "Seq Scan on deliveries", text)
	require.Regexp(t, `Index Cond: \(\(?(job_id = i(_\d+)?\.job_id|id = i(_\d+)?\.id)`, text)
	require.NotContains(t, text, "JIT", text)
	require.Contains(t, text, "TID Cond: (ctid = l.tid)", text)
	// The attempt rows come from the update's RETURNING, not from the
	// input joined to it again: with hash joins off, that join compared
	// every pair of a batch.
	require.NotContains(t, text, "Join Filter", text)
}

// Resuming reads a webhook's paused deliveries a batch at a time through
// the partial index on them (migration 22), in its order: no sort of all
// of the webhook's paused deliveries for each batch, however many there are
// (here 3,000 of a day's 100,000).
func TestPausedDeliveriesPlanIsByIndex(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	day := Day(time.Now())
	_, err := pool.Exec(ctx, `SELECT webhookd_ensure_partition('deliveries', $1::date)`, day)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, next_attempt_at, part_day)
SELECT 'dlv_' || lpad(g::text, 32, '0'), 'evt_x', 'wh_' || (g % 4), 'acct_x', 'ping',
       CASE WHEN g <= 12000 THEN 'paused' ELSE 'succeeded' END, now() - g * interval '1 s', $1::date
FROM generate_series(1, 100000) g`, day)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ANALYZE deliveries`)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, "EXPLAIN "+pausedDeliveries, "wh_1", 1000)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	plan := strings.Join(lines, "\n")
	require.Regexp(t, `Index Scan using deliveries_p\d+_webhook_id_created_at_id_idx`, plan)
	require.NotRegexp(t, `\bSort  \(`, plan, "no Sort node (Merge Append keeps the order)")
	require.NotContains(t, plan, "Seq Scan", plan)

	// The first batch: the oldest three (created together: by id), each
	// due at its own next attempt.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()
	batch, err := PausedDeliveries(ctx, tx, "wh_1", 3)
	require.NoError(t, err)
	require.Len(t, batch, 3)
	for i, g := range []int{1, 5, 9} {
		require.Equal(t, fmt.Sprintf("dlv_%032d", g), batch[i].ID)
		require.Equal(t, time.Duration(g-1)*time.Second, batch[0].DueAt.Sub(batch[i].DueAt), "%s is due at its next attempt", batch[i].ID)
	}
}

// The record's update finds each row by address in the one day partition
// the lookup found it in: its condition on part_day lets PostgreSQL prune
// the others as each row comes (a condition on tableoid doesn't). Without
// it, every row's address was looked up in every partition: with 35 days'
// partitions (30 days' retention and the days ahead), a batch of 80 took
// 13 – 14 ms instead of 4 – 5 (BENCHMARKS.md). Checked on the by-key
// pool's generic plan, as it runs (EXPLAIN ANALYZE, rolled back).
func TestRecordUpdatesInItsDayPartitionOnly(t *testing.T) {
	pool, args := planFixture(t)
	ctx := context.Background()
	day := Day(time.Now())
	for i := -6; i <= 2; i++ {
		if i == 0 {
			continue
		}
		_, err := pool.Exec(ctx, `SELECT webhookd_ensure_partition('deliveries', $1::date)`, day.AddDate(0, 0, i))
		require.NoError(t, err)
		if i < 0 {
			// Rows at the same addresses as the batch's, so that a look
			// there would find one.
			_, err = pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, part_day)
SELECT 'dlv_past_' || g, 'evt_x', 'wh_x', 'acct_x', 'ping', 'succeeded', $1::date FROM generate_series(1, 5000) g`, day.AddDate(0, 0, i))
			require.NoError(t, err)
		}
	}
	bk, err := NewByKeyPool(ctx, pool.Config(), 1)
	require.NoError(t, err)
	t.Cleanup(bk.Close)
	conn, err := bk.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	types := strings.Split("int[] text[] date[] int[] bigint[] text[] bool[] timestamptz[] "+
		"timestamptz[] int[] int[] timestamptz[] timestamptz[] bigint[] int[] text[] text[] bytea[] bigint[] bool[]", " ")
	_, err = conn.Exec(ctx, "PREPARE record ("+strings.Join(types, ", ")+") AS "+attemptRecordMany)
	require.NoError(t, err)
	literals := make([]string, len(args))
	for i, a := range args {
		require.NoError(t, conn.QueryRow(ctx, "SELECT quote_literal($1::"+types[i]+"::text) || '::"+types[i]+"'", a).Scan(&literals[i]))
	}
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE record("+strings.Join(literals, ", ")+")")
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	text := strings.Join(plan, "\n")
	var scans, ran []string
	for _, line := range plan {
		if strings.Contains(line, "Tid Scan on deliveries_") {
			scans = append(scans, line)
			if !strings.Contains(line, "never executed") {
				ran = append(ran, line)
			}
		}
	}
	require.Len(t, scans, 10, "one address look-up per partition in the plan\n"+text)
	require.Len(t, ran, 1, "only today's partition's runs\n"+text)
	require.Contains(t, ran[0], PartitionName("deliveries", day), text)
	require.Contains(t, ran[0], "rows=1 loops=80", text)
}

// Plans are made anew on a new day, and every ByKeyReplanInterval in the
// first ByKeyYoungDay of one; later in the day they are kept.
func TestReplanDue(t *testing.T) {
	day := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return day.Add(d) }
	for _, c := range []struct {
		planned, now time.Time
		due          bool
	}{
		{at(-time.Minute), at(time.Second), true},                  // made yesterday
		{at(5 * time.Second), at(14 * time.Second), false},         // young, not yet 10 s old
		{at(5 * time.Second), at(15 * time.Second), true},          // young, 10 s old
		{at(9 * time.Minute), at(20 * time.Minute), true},          // made while young
		{at(10 * time.Minute), at(20 * time.Hour), false},          // made once the day had grown
		{at(23 * time.Hour), at(24*time.Hour + time.Second), true}, // a new day
	} {
		require.Equal(t, c.due, replanDue(c.planned, c.now, ByKeyReplanInterval, ByKeyYoungDay), "planned %s, now %s", c.planned, c.now)
	}
}
