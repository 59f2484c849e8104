package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// Recording a batch finds each delivery by key even when the day
// partition's statistics say it is nearly empty (a new day, before
// autoanalyze): without byKeyOnly the planner hash-joined (or materialised
// and filtered) every pending delivery of the day for each batch.
func TestRecordAttemptsPlanIsByKey(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	day := Day(time.Now())
	_, err := pool.Exec(ctx, `SELECT webhookd_ensure_partition('deliveries', $1::date)`, day)
	require.NoError(t, err)
	// 5,000 pending deliveries the statistics don't know about.
	_, err = pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, part_day)
SELECT 'dlv_' || lpad(g::text, 32, '0'), 'evt_x', 'wh_x', 'acct_x', 'ping', g, $1::date FROM generate_series(1, 5000) g`, day)
	require.NoError(t, err)

	const n = 80
	args := make([]any, 19)
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

	var plan []string
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
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
	text := strings.Join(plan, "\n")
	require.Contains(t, text, "Nested Loop", text)
	require.NotContains(t, text, "Hash Join", text)
	require.NotContains(t, text, "Materialize", text)
	require.NotContains(t, text, "Seq Scan on deliveries", text)
	require.Regexp(t, `Index Cond: \(\(?(job_id = i(_\d+)?\.job_id|id = i(_\d+)?\.id)`, text)
	require.NotContains(t, text, "JIT", text)
	require.Contains(t, text, "TID Cond: (ctid = l.tid)", text)
}
