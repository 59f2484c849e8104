package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

var (
	benchDeliveries = flag.Int("bench.deliveries", 1_000_000, "how many deliveries BenchmarkListDeliveries generates")
	benchExplainAll = flag.Bool("bench.explain", false, "print BenchmarkListDeliveries's EXPLAIN (ANALYZE, BUFFERS) of every first and deep page")
)

// benchGenerate fills the deliveries table (and events, webhooks) with n
// rows in a few INSERT ... SELECT statements. The shape is that of a busy
// installation: eight accounts, 24 webhooks with skewed traffic (one takes
// 20%), one webhook whose receiver is broken (40% dead) and one deleted two
// days ago (its recent deliveries cancelled), 20 event types with Zipf
// weights plus a rare one (0.02%), 30 days of history, pending deliveries
// in the last minute and those of failing receivers still retrying (the
// last 8.4 hours). One event per delivery. Ids are UUIDv7-shaped from the
// row's creation time, as ident.New makes them.
const benchGenerate = `
SELECT setseed(0.42);

CREATE TEMP TABLE bench_webhooks AS
SELECT n,
       'wh_' || lpad(to_hex(n), 32, '0') AS id,
       CASE WHEN n <= 8 THEN 'acct_a1' WHEN n <= 12 THEN 'acct_a2' WHEN n <= 15 THEN 'acct_a3'
            WHEN n <= 17 THEN 'acct_a4' ELSE 'acct_a' || (5 + (n - 18) / 2) END AS account_id,
       sum(w) OVER (ORDER BY n) - w AS lo,
       sum(w) OVER (ORDER BY n) AS hi,
       CASE WHEN n = 2 THEN 0.40 ELSE 0.01 END AS dead_rate
FROM (VALUES (1,20.0),(2,8.0),(3,2.0),(4,2.0),(5,2.0),(6,2.0),(7,2.0),(8,2.0),
             (9,10.0),(10,2.5),(11,2.5),(12,2.5),(13,10.0),(14,2.5),(15,2.5),(16,8.0),(17,2.0),
             (18,2.5),(19,2.5),(20,2.5),(21,2.5),(22,2.5),(23,2.5),(24,2.5)) AS v(n, w);

CREATE TEMP TABLE bench_types AS
SELECT type, sum(w) OVER (ORDER BY k) - w AS lo, sum(w) OVER (ORDER BY k) AS hi
FROM (SELECT k, 'type_' || lpad(k::text, 2, '0') AS type,
             0.9998 * (1.0 / k) / (SELECT sum(1.0 / i) FROM generate_series(1, 20) i) AS w
      FROM generate_series(1, 20) k
      UNION ALL SELECT 21, 'account.closed', 0.0002) t;

INSERT INTO webhooks (id, account_id, url, url_normalized, secret_ciphertext, secret_key_id, created_at, deleted_at)
SELECT id, account_id, 'https://example.com/' || n, 'https://example.com/' || n, '\x00', 'k1',
       now() - interval '31 days', CASE WHEN n = 5 THEN now() - interval '2 days' END
FROM bench_webhooks;

CREATE TEMP TABLE bench_rows AS
SELECT s.g, s.ts, w.id AS webhook_id, w.account_id, t.type,
       lpad(to_hex((extract(epoch FROM s.ts) * 1000)::bigint), 12, '0') AS ms_hex,
       CASE WHEN w.n = 5 AND s.ts > now() - interval '2 days' THEN 'cancelled'
            WHEN s.ts > now() - interval '1 minute' THEN 'pending'
            WHEN s.r_state < w.dead_rate AND s.ts > now() - interval '8 hours 26 minutes' THEN 'pending'
            WHEN s.r_state < w.dead_rate THEN 'dead'
            ELSE 'succeeded' END AS state
FROM (
  SELECT g, now() - interval '30 days' + (g::float8 / $1) * interval '30 days' AS ts,
         random() * 100 AS r_wh, random() AS r_type, random() AS r_state
  FROM generate_series(1, $1::int) AS g
) s
JOIN bench_webhooks w ON s.r_wh >= w.lo AND s.r_wh < w.hi
JOIN bench_types t ON s.r_type >= t.lo AND s.r_type < t.hi;

INSERT INTO events (id, account_id, type, body, occurred_at, created_at)
SELECT 'evt_' || ms_hex || '7' || substr(md5(g::text || 'e'), 1, 19), account_id, type, '{}'::bytea, ts, ts
FROM bench_rows ORDER BY g;

INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, generation, gen_attempts,
                        next_attempt_at, job_id, created_at, updated_at, finished_at,
                        ok_attempt_id, ok_number, ok_generation, ok_scheduled_at, ok_started_at, ok_duration_us,
                        ok_signature_t, ok_status_code)
SELECT 'dlv_' || ms_hex || '7' || substr(md5(g::text || 'd'), 1, 19),
       'evt_' || ms_hex || '7' || substr(md5(g::text || 'e'), 1, 19),
       webhook_id, account_id, type, state,
       CASE state WHEN 'dead' THEN 10 WHEN 'pending' THEN 3 ELSE 1 END, 1,
       CASE state WHEN 'dead' THEN 10 WHEN 'pending' THEN 3 ELSE 1 END,
       CASE WHEN state = 'pending' THEN ts + interval '1 hour' END,
       CASE WHEN state = 'pending' THEN g END,
       ts, ts, CASE WHEN state <> 'pending' THEN ts END,
       ok.id, ok.n, ok.n, ok.t, ok.t, ok.us, ok.sig, ok.code
FROM bench_rows
-- a success's attempt is in its row (migration 30), as wide as there
LEFT JOIN LATERAL (SELECT g AS id, 1 AS n, ts AS t, 1500 AS us, extract(epoch FROM ts)::bigint AS sig, 200 AS code
                   WHERE state = 'succeeded') ok ON true
ORDER BY g;
`

// benchCombo is one filter combination of GET /v1/deliveries.
type benchCombo struct {
	name  string
	query url.Values
}

// benchResult is what the table shows for one combination.
type benchResult struct {
	matches               int
	firstP50, firstP99    time.Duration
	deepP50, deepP99      time.Duration
	firstPlan, deepPlan   planSummary
	firstCount, deepCount int
}

// BenchmarkListDeliveries measures GET /v1/deliveries on a table of
// -bench.deliveries rows (1,000,000 by default): for every documented
// filter combination, the first page and a deep page (a cursor 90% of the
// way through the matches) of 100, over real HTTP to the API (no workers
// run). Each sub-benchmark reports p50 and p99; at the end a table with the
// plan of each query (EXPLAIN ANALYZE) is printed, and a p99 of 50 ms or
// more, or a sequential scan that reads rows of a deliveries partition,
// fails the benchmark.
//
//	go test -run '^$' -bench ListDeliveries -benchtime 200x -timeout 30m ./internal/admin
//
// -args -bench.deliveries=N changes the table's size (generating 1,000,000
// takes about a minute); -args -bench.explain prints every plan in full.
func BenchmarkListDeliveries(b *testing.B) {
	ctx := context.Background()
	pool := testdb.New(b)

	start := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// The generator's temporary tables live in this one session.
	if _, err := conn.Exec(ctx, benchGenerate, pgx.QueryExecModeSimpleProtocol, *benchDeliveries); err != nil {
		b.Fatalf("error generating deliveries: %v", err)
	}
	conn.Release()
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "generated %d deliveries in %s\n", *benchDeliveries, time.Since(start).Round(time.Second))

	keys, err := keyring.Parse(keyring.Generate())
	if err != nil {
		b.Fatal(err)
	}
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	api, err := admin.New(pool, enqueuer, keys, &admin.Config{BootstrapAdminKey: adminKey})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	client := srv.Client()

	combos := benchCombos(b, pool)
	results := make(map[string]*benchResult, len(combos))
	var mu sync.Mutex
	for _, c := range combos {
		f := benchFilter(b, pool, c.query)
		res := &benchResult{}
		results[c.name] = res
		res.matches = benchCount(b, pool, f)
		deep := benchCursorAt(b, pool, f, max(res.matches*9/10, 1))
		res.firstPlan = benchExplain(b, pool, f, nil)
		res.deepPlan = benchExplain(b, pool, f, deep)
		if *benchExplainAll {
			benchPrintExplain(b, pool, c.name+", first page", f, nil)
			benchPrintExplain(b, pool, c.name+", deep page", f, deep)
		}

		for _, page := range []struct {
			name   string
			cursor *store.DeliveryCursor
		}{{"first", nil}, {"deep", deep}} {
			q := url.Values{}
			for k, v := range c.query {
				q[k] = v
			}
			if page.cursor != nil {
				q.Set("cursor", page.cursor.String())
			}
			target := srv.URL + "/v1/deliveries?" + q.Encode()
			b.Run(c.name+"/"+page.name, func(b *testing.B) {
				durations := make([]time.Duration, 0, b.N)
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					benchGet(b, client, target)
					durations = append(durations, time.Since(t0))
				}
				p50, p99 := percentile(durations, 50), percentile(durations, 99)
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				mu.Lock()
				defer mu.Unlock()
				if page.name == "first" {
					res.firstP50, res.firstP99, res.firstCount = p50, p99, len(durations)
				} else {
					res.deepP50, res.deepP99, res.deepCount = p50, p99, len(durations)
				}
			})
		}
	}

	// The table.
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\nGET /v1/deliveries, %d deliveries, limit 100, over HTTP\n", *benchDeliveries)
	fmt.Fprintln(w, "combination\tmatches\tfirst p50\tfirst p99\tdeep p50\tdeep p99\texec first/deep\tplan (first page)\tplan (deep page)\t")
	var failures []string
	for _, c := range combos {
		r := results[c.name]
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f/%.2f ms\t%s\t%s\t\n", c.name, r.matches,
			ms(r.firstP50), ms(r.firstP99), ms(r.deepP50), ms(r.deepP99),
			r.firstPlan.execMS, r.deepPlan.execMS, r.firstPlan, r.deepPlan)
		for _, p := range []struct {
			what string
			p99  time.Duration
			n    int
			plan planSummary
		}{{"first", r.firstP99, r.firstCount, r.firstPlan}, {"deep", r.deepP99, r.deepCount, r.deepPlan}} {
			if p.n >= 50 && p.p99 >= 50*time.Millisecond {
				failures = append(failures, fmt.Sprintf("%s/%s: p99 %s", c.name, p.what, p.p99))
			}
			if p.plan.seqScan {
				failures = append(failures, fmt.Sprintf("%s/%s: sequential scan of deliveries", c.name, p.what))
			}
		}
	}
	w.Flush()
	benchIndexSizes(b, pool)
	for _, f := range failures {
		b.Error(f)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func benchGet(b *testing.B, client *http.Client, target string) {
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %s %v", target, resp.StatusCode, body, err)
	}
}

// benchCombos lists the filter combinations: each base the API accepts
// (an account, a webhook, both, or dead deliveries of every account) with
// each optional filter alone and together. Accounts and webhooks are picked
// for their size: the biggest account and webhook, a small webhook in the
// big account, the broken webhook (many dead), the smallest account.
func benchCombos(b *testing.B, pool *pgxpool.Pool) []benchCombo {
	ctx := context.Background()
	var (
		eventID            string
		oldest, newest     time.Time
		bigWebhook         = "wh_" + strings.Repeat("0", 31) + "1"
		brokenWebhook      = "wh_" + strings.Repeat("0", 31) + "2"
		smallWebhook       = "wh_" + strings.Repeat("0", 31) + "3"
		bigAccount         = "acct_a1"
		smallAccount       = "acct_a8"
		commonType         = "type_01"
		uncommonType       = "type_20"
		rareType           = "account.closed"
		rangeAfter, before time.Time
	)
	if err := pool.QueryRow(ctx, `SELECT min(created_at), max(created_at) FROM deliveries`).Scan(&oldest, &newest); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT event_id FROM deliveries WHERE webhook_id = $1 AND created_at < $2 ORDER BY created_at DESC LIMIT 1`,
		smallWebhook, oldest.Add(newest.Sub(oldest)/2)).Scan(&eventID); err != nil {
		b.Fatal(err)
	}
	span := newest.Sub(oldest)
	rangeAfter, before = oldest.Add(span/3), oldest.Add(span/2) // a ten-day window in the middle
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	recent := rfc(newest.Add(-2 * 24 * time.Hour)) // the last two days
	old := rfc(oldest.Add(5 * 24 * time.Hour))     // the first five days

	extras := []struct {
		name string
		q    url.Values
	}{
		{"", url.Values{}},
		{"+dead", url.Values{"state": {"dead"}}},
		{"+pending", url.Values{"state": {"pending"}}},
		{"+succeeded", url.Values{"state": {"succeeded"}}},
		{"+cancelled", url.Values{"state": {"cancelled"}}},
		{"+type(common)", url.Values{"event_type": {commonType}}},
		{"+type(1.4%)", url.Values{"event_type": {uncommonType}}},
		{"+type(rare)", url.Values{"event_type": {rareType}}},
		{"+event_id", url.Values{"event_id": {eventID}}},
		{"+after", url.Values{"created_after": {recent}}},
		{"+before", url.Values{"created_before": {old}}},
		{"+range", url.Values{"created_after": {rfc(rangeAfter)}, "created_before": {rfc(before)}}},
		{"+dead+type", url.Values{"state": {"dead"}, "event_type": {uncommonType}}},
		{"+succeeded+type(rare)", url.Values{"state": {"succeeded"}, "event_type": {rareType}}},
		{"+dead+range", url.Values{"state": {"dead"}, "created_after": {rfc(rangeAfter)}, "created_before": {rfc(before)}}},
		{"+type+range", url.Values{"event_type": {uncommonType}, "created_after": {rfc(rangeAfter)}, "created_before": {rfc(before)}}},
		{"+dead+type+range", url.Values{"state": {"dead"}, "event_type": {commonType}, "created_after": {rfc(rangeAfter)}, "created_before": {rfc(before)}}},
		{"+all", url.Values{"state": {"succeeded"}, "event_type": {uncommonType}, "event_id": {eventID}, "created_after": {rfc(oldest)}, "created_before": {rfc(newest)}}},
	}
	bases := []struct {
		name string
		q    url.Values
	}{
		{"account(40%)", url.Values{"account_id": {bigAccount}}},
		{"account(2.5%)", url.Values{"account_id": {smallAccount}}},
		{"webhook(20%)", url.Values{"webhook_id": {bigWebhook}}},
		{"webhook(2%)", url.Values{"webhook_id": {smallWebhook}}},
		{"webhook(broken)", url.Values{"webhook_id": {brokenWebhook}}},
		{"account+webhook", url.Values{"account_id": {bigAccount}, "webhook_id": {smallWebhook}}},
	}
	var combos []benchCombo
	for _, base := range bases {
		for _, e := range extras {
			q := url.Values{}
			for k, v := range base.q {
				q[k] = v
			}
			for k, v := range e.q {
				q[k] = v
			}
			combos = append(combos, benchCombo{name: base.name + e.name, query: q})
		}
	}
	// Dead deliveries of every account (no account or webhook).
	for _, e := range []struct {
		name string
		q    url.Values
	}{
		{"", url.Values{}},
		{"+type(common)", url.Values{"event_type": {commonType}}},
		{"+type(rare)", url.Values{"event_type": {rareType}}},
		{"+event_id", url.Values{"event_id": {eventID}}},
		{"+after", url.Values{"created_after": {recent}}},
		{"+range", url.Values{"created_after": {rfc(rangeAfter)}, "created_before": {rfc(before)}}},
		{"+type(rare)+range", url.Values{"event_type": {rareType}, "created_after": {rfc(rangeAfter)}, "created_before": {rfc(before)}}},
	} {
		q := url.Values{"state": {"dead"}}
		for k, v := range e.q {
			q[k] = v
		}
		combos = append(combos, benchCombo{name: "dead(all accounts)" + e.name, query: q})
	}
	return combos
}

// benchFilter is the filter the API builds from q (as admin.listDeliveries
// does: a webhook's account is added).
func benchFilter(b *testing.B, pool *pgxpool.Pool, q url.Values) *store.DeliveryFilter {
	f := &store.DeliveryFilter{
		AccountID: q.Get("account_id"), WebhookID: q.Get("webhook_id"), State: q.Get("state"),
		EventType: q.Get("event_type"), EventID: q.Get("event_id"),
	}
	for name, dst := range map[string]**time.Time{"created_after": &f.CreatedAfter, "created_before": &f.CreatedBefore} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				b.Fatal(err)
			}
			*dst = &t
		}
	}
	if f.WebhookID != "" {
		accountID, _, err := store.WebhookAccount(context.Background(), pool, f.WebhookID)
		if err != nil {
			b.Fatal(err)
		}
		f.AccountID = accountID
	}
	return f
}

func benchCount(b *testing.B, pool *pgxpool.Pool, f *store.DeliveryFilter) int {
	query, args, err := store.DeliveryListQuery(f, nil, 10_000_000)
	if err != nil {
		b.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM ("+query+") AS q", append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// benchCursorAt is the cursor after the k-th delivery (1-based) of the
// listing; nil if there are fewer.
func benchCursorAt(b *testing.B, pool *pgxpool.Pool, f *store.DeliveryFilter, k int) *store.DeliveryCursor {
	query, args, err := store.DeliveryListQuery(f, nil, k)
	if err != nil {
		b.Fatal(err)
	}
	var c store.DeliveryCursor
	err = pool.QueryRow(context.Background(), "SELECT q.created_at, q.id FROM ("+query+") AS q ORDER BY q.created_at, q.id LIMIT 1",
		append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&c.CreatedAt, &c.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		b.Fatal(err)
	}
	return &c
}

// planSummary is what EXPLAIN (ANALYZE) says about a listing query.
type planSummary struct {
	nodes   []string
	seqScan bool
	execMS  float64
}

func (p planSummary) String() string {
	return strings.Join(p.nodes, " > ")
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	ScanDir      string     `json:"Scan Direction"`
	IndexName    string     `json:"Index Name"`
	RelationName string     `json:"Relation Name"`
	ActualRows   float64    `json:"Actual Rows"`
	RowsRemoved  float64    `json:"Rows Removed by Filter"`
	Plans        []planNode `json:"Plans"`
}

func benchExplain(b *testing.B, pool *pgxpool.Pool, f *store.DeliveryFilter, after *store.DeliveryCursor) planSummary {
	query, args, err := store.DeliveryListQuery(f, after, admin.LimitDefault+1)
	if err != nil {
		b.Fatal(err)
	}
	var raw []byte
	if err := pool.QueryRow(context.Background(), "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+query, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&raw); err != nil {
		b.Fatal(err)
	}
	var out []struct {
		Plan          planNode `json:"Plan"`
		ExecutionTime float64  `json:"Execution Time"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		b.Fatal(err)
	}
	s := planSummary{execMS: out[0].ExecutionTime}
	seen := map[string]int{}
	var walk func(n planNode)
	walk = func(n planNode) {
		switch {
		case n.IndexName != "":
			label := strings.TrimPrefix(n.IndexName, "deliveries_")
			switch n.NodeType {
			case "Index Only Scan":
				label += "(only)"
			case "Bitmap Index Scan":
				label += "(bitmap)"
			}
			if n.ScanDir == "Backward" {
				label += "↓"
			}
			seen[label]++
		case n.NodeType == "Seq Scan":
			seen["SEQ SCAN "+n.RelationName]++
			// deliveries is partitioned: a scan reads a partition. The
			// planner reads an empty one (the fixture's rows are all in
			// today's) sequentially; one that read rows is a lookup
			// without its index.
			if strings.HasPrefix(n.RelationName, "deliveries") && n.ActualRows+n.RowsRemoved > 0 {
				s.seqScan = true
			}
		case n.NodeType == "Sort":
			seen[fmt.Sprintf("sort(%d rows)", int(n.ActualRows))]++
		case n.NodeType == "Merge Append":
			seen["merge"]++
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(out[0].Plan)
	for label, n := range seen {
		if n > 1 {
			label = fmt.Sprintf("%s×%d", label, n)
		}
		s.nodes = append(s.nodes, label)
	}
	slices.Sort(s.nodes)
	return s
}

// benchPrintExplain prints the full plan of one listing query.
func benchPrintExplain(b *testing.B, pool *pgxpool.Pool, title string, f *store.DeliveryFilter, after *store.DeliveryCursor) {
	query, args, err := store.DeliveryListQuery(f, after, admin.LimitDefault+1)
	if err != nil {
		b.Fatal(err)
	}
	rows, err := pool.Query(context.Background(), "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+query, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("\n== %s\n%s\n", title, strings.Join(lines, "\n"))
}

// benchIndexSizes prints the size of deliveries and of each of its
// indexes, summed over the day partitions (the partitioned table and its
// indexes have no storage of their own).
func benchIndexSizes(b *testing.B, pool *pgxpool.Pool) {
	var table string
	if err := pool.QueryRow(context.Background(), `
SELECT pg_size_pretty(sum(pg_relation_size(relid))) FROM pg_partition_tree('deliveries')`).Scan(&table); err != nil {
		b.Fatal(err)
	}
	rows, err := pool.Query(context.Background(), `
SELECT c.relname, pg_size_pretty(sum(pg_relation_size(t.relid)))
FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
CROSS JOIN LATERAL pg_partition_tree(x.indexrelid) t
WHERE x.indrelid = 'deliveries'::regclass
GROUP BY c.relname ORDER BY c.relname`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	fmt.Printf("\ndeliveries: %s; its indexes:\n", table)
	n := 0
	for rows.Next() {
		var name, size string
		if err := rows.Scan(&name, &size); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("  %-32s %s\n", name, size)
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		b.Fatal("deliveries has no indexes to show")
	}
}
