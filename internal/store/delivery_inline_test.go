package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/testdb"
)

// A delivery's first success is recorded in its own row (migration 30), not
// as a row of attempts; a failure, and a success after a replay, are rows
// of attempts as before. Every reader (GetDelivery, the dashboard's
// DeliveriesAttempts, attempt_log) sees each attempt once, in order, with
// what was recorded, and a success after a replay does not overwrite the
// first one.
func TestFirstSuccessIsRecordedInTheDeliveryRow(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	day := Day(time.Now())
	_, err := pool.Exec(ctx, `SELECT webhookd_ensure_partition('deliveries', $1::date)`, day)
	require.NoError(t, err)

	first, second := ident.New(ident.Delivery), ident.New(ident.Delivery)
	_, err = pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, part_day)
VALUES ($1, 'evt_x', 'wh_x', 'acct_x', 'ping', 1, $3::date), ($2, 'evt_x', 'wh_x', 'acct_x', 'ping', 2, $3::date)`, first, second, day)
	require.NoError(t, err)

	at := time.Now().UTC().Truncate(time.Microsecond)
	code := func(c int) *int { return &c }
	kind, message := "http_status", "the endpoint answered 500"
	record := func(id string, job int64, seen int, a AttemptRecord, state string) {
		t.Helper()
		out := &Outcome{State: state, Now: a.StartedAt.Add(a.Duration)}
		if state == StatePending {
			next := out.Now.Add(30 * time.Second)
			out.NextAttemptAt = &next
		}
		recorded, err := RecordAttempts(ctx, pool, []Recording{{
			Target: &Target{DeliveryID: id, PartDay: day, Attempts: seen}, JobID: job, Attempt: &a, Outcome: out,
		}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, recorded)
	}
	success := func(number, generation int, started time.Time) AttemptRecord {
		return AttemptRecord{Number: number, Generation: generation, Counted: true, ScheduledAt: started.Add(-time.Millisecond),
			StartedAt: started, Duration: 1500 * time.Microsecond, StatusCode: code(200), ResponseExcerpt: []byte("ok"), SignatureT: started.Unix()}
	}
	failure := AttemptRecord{Number: 1, Generation: 1, Counted: true, ScheduledAt: at, StartedAt: at, Duration: time.Millisecond,
		StatusCode: code(500), ErrorKind: &kind, ErrorMessage: &message, SignatureT: at.Unix()}

	record(first, 1, 0, success(1, 1, at), StateSucceeded)
	record(second, 2, 0, failure, StatePending)
	record(second, 2, 1, success(2, 1, at.Add(time.Minute)), StateSucceeded)

	rows := func(id string) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM attempts WHERE delivery_id = $1`, id).Scan(&n))
		return n
	}
	require.Zero(t, rows(first), "a first success is no row of attempts")
	require.Equal(t, 1, rows(second), "the failure is; the success after it is not")

	d, err := GetDelivery(ctx, pool, first)
	require.NoError(t, err)
	require.Equal(t, []AttemptRecord{success(1, 1, at)}, normalized(d.AttemptList))
	d, err = GetDelivery(ctx, pool, second)
	require.NoError(t, err)
	require.Equal(t, []AttemptRecord{failure, success(2, 1, at.Add(time.Minute))}, normalized(d.AttemptList))

	// Replayed, the first delivery succeeds again: that success is a row,
	// and the first one stays where it was.
	replayed, err := ReplayDeliveries(ctx, pool, []ReplayTarget{{ID: first, FromState: StateSucceeded, Generation: 1, JobID: 3, NextAttemptAt: at}}, nil, nil, at)
	require.NoError(t, err)
	require.Equal(t, map[string]int{first: 2}, replayed)
	record(first, 3, 1, success(2, 2, at.Add(time.Hour)), StateSucceeded)
	require.Equal(t, 1, rows(first))
	d, err = GetDelivery(ctx, pool, first)
	require.NoError(t, err)
	require.Equal(t, []AttemptRecord{success(1, 1, at), success(2, 2, at.Add(time.Hour))}, normalized(d.AttemptList))

	// The dashboard's read: both deliveries, each attempt once, in order,
	// excerpts cut to the asked length.
	pages, err := DeliveriesAttempts(ctx, pool, []string{first, second}, 1)
	require.NoError(t, err)
	require.Len(t, pages, 2)
	cut := func(a AttemptRecord) AttemptRecord {
		if a.ResponseExcerpt != nil {
			a.ResponseExcerpt = a.ResponseExcerpt[:1]
		}
		return a
	}
	require.Equal(t, []AttemptRecord{cut(success(1, 1, at)), cut(success(2, 2, at.Add(time.Hour)))}, normalized(pages[first].Attempts))
	require.Equal(t, []AttemptRecord{cut(failure), cut(success(2, 1, at.Add(time.Minute)))}, normalized(pages[second].Attempts))

	// Both reads go by key into both of attempt_log's branches (sequential
	// scans penalised: the tables are too small for the planner to prefer
	// an index otherwise).
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"deliveryAttempts":   {deliveryAttempts, []any{first, day}},
		"deliveriesAttempts": {deliveriesAttempts, []any{[]string{first, second}, 10, day}},
	} {
		rows, err := tx.Query(ctx, "EXPLAIN (COSTS OFF) "+q.sql, q.args...)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		plan := strings.Join(lines, "\n")
		require.Contains(t, plan, "Index Scan using attempts_p", name+"\n"+plan)
		require.Regexp(t, `Index Scan using deliveries_p\d+_pkey on deliveries_p\d+ deliveries`, plan, name+"\n"+plan)
		require.NotContains(t, plan, "Seq Scan", name+"\n"+plan)
	}
}

// normalized drops the monotonic clock reading and the location, which a
// round trip through PostgreSQL doesn't keep.
func normalized(as []AttemptRecord) []AttemptRecord {
	out := make([]AttemptRecord, len(as))
	for i, a := range as {
		a.ScheduledAt, a.StartedAt = a.ScheduledAt.UTC().Round(0), a.StartedAt.UTC().Round(0)
		if len(a.ResponseExcerpt) == 0 {
			a.ResponseExcerpt = nil
		}
		out[i] = a
	}
	return out
}
