package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/retention"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// logWriter sends progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunSmoke runs every scenario with tiny sizes against the test database
// server and checks that the numbers are sane. The figures themselves mean
// nothing at this size.
func TestRunSmoke(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, latencies bytes.Buffer
	res, err := Run(ctx, &Config{
		DatabaseURL:  testdb.BaseURL(),
		Backlog:      200,
		Rates:        []int{50, 100},
		Duration:     time.Second,
		BlackHole:    20,
		NoisyBacklog: 300,
		NoisyRate:    20,
		Retries:      20,
		Timeout:      time.Minute,
		Warmup:       200 * time.Millisecond,
		Out:          &out,
		LatencyLog:   &latencies,
		Progress:     logWriter{t},
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)

	requireLatency := func(t *testing.T, l Latency, n int) {
		t.Helper()
		require.Equal(t, n, l.N)
		require.GreaterOrEqual(t, l.P50, time.Duration(0))
		require.LessOrEqual(t, l.P50, l.P99)
		require.LessOrEqual(t, l.P99, l.Max)
		require.Less(t, l.Max, time.Minute)
	}

	require.NotNil(t, res.Reference)
	require.Equal(t, 200, res.Reference.Deliveries)
	require.Greater(t, res.Reference.PerSecond(), 0.0)
	// River's process and its database's backends, read (the test server
	// is on this machine; /proc counts in 10 ms ticks, so 200 jobs' backends
	// may read 0).
	require.NotNil(t, res.Reference.ProcessCPU, res.Reference.CPUNote)
	require.Positive(t, *res.Reference.ProcessCPU, "River's process worked")
	require.NotNil(t, res.Reference.Backends, res.Reference.CPUNote)
	require.GreaterOrEqual(t, *res.Reference.Backends, time.Duration(0))
	require.Contains(t, out.String(), "River's process (the bench's) CPU per job")

	require.NotNil(t, res.Drain)
	require.Equal(t, 200, res.Drain.Deliveries)
	require.Greater(t, res.Drain.PerSecond(), 0.0)

	require.Len(t, res.Sustained, 2)
	for i, s := range res.Sustained {
		require.Equal(t, []int{50, 100}[i], s.Rate)
		require.Equal(t, s.Rate, s.Sent)
		require.Greater(t, s.Achieved, 0.0)
		requireLatency(t, s.Latency, s.Sent)
		requireCommits(t, s.Commits)
	}

	require.NotNil(t, res.Isolation)
	require.Greater(t, res.Isolation.Ratio, 0.0)
	// A ratio, not a speed: at these tiny sizes the baseline drain (the
	// first, on a cold server) can be twice as slow as the isolation run,
	// so only finiteness is asserted; the real figure is the benchmark's.
	require.False(t, math.IsInf(res.Isolation.Ratio, 0) || math.IsNaN(res.Isolation.Ratio))

	require.NotNil(t, res.Noisy)
	require.Equal(t, 20, res.Noisy.Sent)
	requireLatency(t, res.Noisy.Latency, 20)
	require.Positive(t, res.Noisy.BacklogDrained)
	requireCommits(t, res.Noisy.Commits)

	require.NotNil(t, res.Precision)
	require.Equal(t, 300*time.Millisecond, res.Precision.FirstRetryDelay)
	requireLatency(t, res.Precision.Lateness, 20)

	require.NotNil(t, res.Resources)
	require.Greater(t, res.Resources.Drain.PerSecond(), 0.0)
	require.Positive(t, res.Resources.CPUPerDelivery)
	require.Positive(t, res.Resources.PeakRSS)
	if res.Machine.PostgresLocal {
		require.NotNil(t, res.Resources.PostgresCPUPerDelivery, res.Resources.PostgresNote)
		require.GreaterOrEqual(t, *res.Resources.PostgresCPUPerDelivery, time.Duration(0))
	}
	// Each delivery writes WAL: at least its attempt row (~300 bytes with
	// its header) and the updates of its delivery and its job.
	require.NotNil(t, res.Resources.WAL, res.Resources.WALNote)
	require.Greater(t, res.Resources.WAL.bytes, 300.0)

	// The latency log: a header, then a line per event of scenarios 2
	// (50 + 100 measured, 10 + 20 in the 0.2 s warm-ups) and 4 (20 and 4),
	// each figure a number; the first two are never negative (the last can
	// be, barely: an attempt can reach the receiver before the bench's
	// client has read its 202).
	lines := strings.Split(strings.TrimSpace(latencies.String()), "\n")
	require.Equal(t, "scenario,phase,sent_ms,post_to_202_ms,202_to_first_attempt_ms,sent_unix_ms", lines[0])
	perPhase := map[string]int{}
	for _, line := range lines[1:] {
		fields := strings.Split(line, ",")
		require.Len(t, fields, 6, line)
		perPhase[fields[0]+" "+fields[1]]++
		sentAt, err := strconv.ParseInt(fields[5], 10, 64)
		require.NoError(t, err, line)
		require.WithinDuration(t, time.Now(), time.UnixMilli(sentAt), 10*time.Minute, line)
		for i, f := range fields[2:5] {
			v, err := strconv.ParseFloat(f, 64)
			require.NoError(t, err, line)
			if i < 2 {
				require.GreaterOrEqual(t, v, 0.0, line)
			}
		}
	}
	require.Equal(t, map[string]int{"2 warmup": 30, "2 measured": 150, "4 warmup": 4, "4 measured": 20}, perPhase)

	table := out.String()
	require.Contains(t, table, "| # | scenario | result | target (issue 4) |")
	// The header gives the server's durability settings, as the server has them.
	var fsync, syncCommit, fullPages string
	require.NoError(t, testdb.New(t).QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')").
		Scan(&fsync, &syncCommit, &fullPages))
	require.Contains(t, table, fmt.Sprintf("; fsync %s, synchronous_commit %s, full_page_writes %s) · ", fsync, syncCommit, fullPages))
	require.Equal(t, 9, strings.Count(table, "\n| "), "a header and one row per scenario and rate:\n%s", table)
	require.NotContains(t, table, "failed")
}

func TestParseScenarios(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "", want: AllScenarios},
		{in: "all", want: AllScenarios},
		{in: "5,1, 2,1", want: []int{1, 2, 5}},
		{in: "0,1", want: []int{0, 1}},
		{in: "6,7", want: []int{6, 7}},
		{in: "9,8", want: []int{8, 9}},
		{in: "10", err: true},
		{in: "-1", err: true},
		{in: "1,x", err: true},
	} {
		got, err := ParseScenarios(tt.in)
		if tt.err {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

// requireCommits checks the commit probe's figures: it committed through
// the measured sending (over a second, at one commit per 25 ms), and each
// commit, which waits for the disk, took some time.
func requireCommits(t *testing.T, c Latency) {
	t.Helper()
	require.Greater(t, c.N, 10, "the commit probe ran")
	require.Positive(t, c.P50)
	require.LessOrEqual(t, c.P50, c.P99)
	require.LessOrEqual(t, c.P99, c.Max)
}

// connectBenchDatabase makes a bench database with opts on the test server
// and connects to it; both go at the test's end.
func connectBenchDatabase(t *testing.T, opts dbOptions) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	dbURL, _, drop, err := createDatabase(ctx, testdb.BaseURL(), opts)
	require.NoError(t, err)
	t.Cleanup(drop)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// -deliveries-fillfactor sets the fillfactor on every deliveries
// partition of a bench database, those made after it too (from the
// default partition's storage parameters); 0 leaves the schema's 90.
func TestCreateDatabaseDeliveriesFillfactor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, ff := range []int{0, 50} {
		conn := connectBenchDatabase(t, dbOptions{fillfactor: ff})
		_, err := conn.Exec(ctx, `SELECT webhookd_ensure_partition('deliveries', (now() AT TIME ZONE 'UTC')::date + 60)`)
		require.NoError(t, err)
		var options []string
		require.NoError(t, conn.QueryRow(ctx, `
SELECT array_agg(DISTINCT array_to_string(c.reloptions, ','))
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'deliveries'::regclass`).Scan(&options))
		want := "fillfactor=90"
		if ff != 0 {
			want = fmt.Sprintf("fillfactor=%d", ff)
		}
		require.Equal(t, []string{want}, options, "-deliveries-fillfactor %d", ff)
	}
}

// -history-days gives the bench database that many past days' partitions,
// each with HistoryRowsPerDay finished deliveries of an account no
// scenario reads, and no attempts; 0 leaves yesterday's, empty.
func TestCreateDatabaseHistoryDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, days := range []int{0, 3} {
		conn := connectBenchDatabase(t, dbOptions{historyDays: days})
		rows, err := conn.Query(ctx, `
SELECT c.relname, (SELECT count(*) FROM deliveries d WHERE d.tableoid = c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'deliveries'::regclass AND c.relname LIKE 'deliveries\_p%' AND c.relname < 'deliveries_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')
ORDER BY 1`)
		require.NoError(t, err)
		past := map[string]int{}
		for rows.Next() {
			var name string
			var n int
			require.NoError(t, rows.Scan(&name, &n))
			past[name] = n
		}
		require.NoError(t, rows.Err())
		var others, attempts int
		require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM deliveries WHERE account_id <> 'acct_history'), (SELECT count(*) FROM attempt_log)`).
			Scan(&others, &attempts))
		// Today's partition and the days ahead are not analyzed (empty,
		// they would plan as empty all day); the past days are.
		var unanalyzed, analyzed int
		require.NoError(t, conn.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE c.reltuples < 0 AND c.relname >= 'deliveries_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')),
       count(*) FILTER (WHERE c.reltuples = $1 AND c.relname < 'deliveries_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD'))
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'deliveries'::regclass AND c.relname LIKE 'deliveries\_p%'`, HistoryRowsPerDay).Scan(&unanalyzed, &analyzed))
		require.Equal(t, 1+retention.AheadDefault, unanalyzed, "-history-days %d: today's and the days ahead never analyzed", days)
		if days > 0 {
			require.Equal(t, days, analyzed, "the past days analyzed")
		}
		today := time.Now().UTC()
		want := map[string]int{}
		for d := 1; d <= max(1, days); d++ {
			n := HistoryRowsPerDay
			if days == 0 {
				n = 0
			}
			want[store.PartitionName("deliveries", today.AddDate(0, 0, -d))] = n
		}
		require.Equal(t, want, past, "-history-days %d", days)
		require.Zero(t, others+attempts, "nothing a scenario counts")
	}
}

// TestRestoreRiverStock: the reference's database gets back what
// webhookd's migrations changed in River's schema (migration 10's dropped
// indexes, migration 24's fillfactor), so River alone runs as it comes.
func TestRestoreRiverStock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL, _, drop, err := createDatabase(ctx, testdb.BaseURL(), dbOptions{})
	require.NoError(t, err)
	t.Cleanup(drop)
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	stock := func() (options []string, indexes []string) {
		require.NoError(t, conn.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = 'river_job'::regclass`).Scan(&options))
		require.NoError(t, conn.QueryRow(ctx, `
SELECT coalesce(array_agg(indexname ORDER BY indexname), '{}') FROM pg_indexes
WHERE tablename = 'river_job' AND indexname IN ('river_job_args_index', 'river_job_metadata_index', 'river_job_kind')`).Scan(&indexes))
		return options, indexes
	}
	options, indexes := stock()
	require.Equal(t, []string{"fillfactor=50"}, options, "webhookd's schema (migration 24)")
	require.Empty(t, indexes, "webhookd's schema (migration 10)")

	require.NoError(t, restoreRiverStock(ctx, conn))
	options, indexes = stock()
	require.Empty(t, options, "River's own river_job has no storage parameters")
	require.Equal(t, []string{"river_job_args_index", "river_job_kind", "river_job_metadata_index"}, indexes)
	// Twice is as once (a reference may run more than once on a database).
	require.NoError(t, restoreRiverStock(ctx, conn))
}
