package dashboard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/dashboard"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testserver"
)

// benchSeed gives webhook $1 (account $2) 10,000 deliveries over the last
// 10,000 minutes, one event each: 90% succeeded after one attempt, 8% dead
// after ten (with a 4 KiB response excerpt each), 2% cancelled. Ids are
// UUIDv7-shaped from the creation time, as ident.New makes them.
const benchSeed = `
CREATE TEMP TABLE bench_rows AS
SELECT g, now() - (g || ' minutes')::interval AS ts,
       lpad(to_hex((extract(epoch FROM now() - (g || ' minutes')::interval) * 1000)::bigint), 12, '0') AS ms_hex,
       CASE WHEN g % 50 = 7 THEN 'cancelled' WHEN g % 25 IN (3, 11) THEN 'dead' ELSE 'succeeded' END AS state
FROM generate_series(1, 10000) AS g;

INSERT INTO events (id, account_id, type, body, occurred_at, created_at)
SELECT 'evt_' || ms_hex || '7' || substr(md5(g::text || 'e'), 1, 19), $2, 'bank_transfer_approved', '{}'::bytea, ts, ts
FROM bench_rows WHERE $1::text <> '';

INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, gen_attempts, created_at, updated_at, finished_at)
SELECT 'dlv_' || ms_hex || '7' || substr(md5(g::text || 'd'), 1, 19), 'evt_' || ms_hex || '7' || substr(md5(g::text || 'e'), 1, 19),
       $1, $2, 'bank_transfer_approved', state, CASE state WHEN 'dead' THEN 10 ELSE 1 END, CASE state WHEN 'dead' THEN 10 ELSE 1 END, ts, ts, ts
FROM bench_rows;

INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, status_code, error_kind, error_message, response_excerpt, signature_t)
SELECT 'dlv_' || r.ms_hex || '7' || substr(md5(r.g::text || 'd'), 1, 19), n, 1, r.ts, r.ts, 1200,
       CASE WHEN r.state = 'dead' THEN 503 ELSE 200 END,
       CASE WHEN r.state = 'dead' THEN 'http_status' END,
       CASE WHEN r.state = 'dead' THEN 'the receiver answered with status 503 Service Unavailable' END,
       CASE WHEN r.state = 'dead' THEN convert_to(repeat('<html>upstream unavailable</html>', 124), 'UTF8') END,
       extract(epoch FROM r.ts)::bigint
FROM bench_rows r, generate_series(1, CASE r.state WHEN 'dead' THEN 10 ELSE 1 END) AS n;

INSERT INTO webhook_health (webhook_id, consecutive_failures, last_success_at, last_failure_at, last_failure_kind)
SELECT $1, 0, max(ts) FILTER (WHERE state = 'succeeded'), max(ts) FILTER (WHERE state = 'dead'), 'http_status'
FROM bench_rows WHERE $2::text <> '';

INSERT INTO webhook_health_minutes (webhook_id, minute, successes, failures)
SELECT $1, date_trunc('minute', ts), count(*) FILTER (WHERE state = 'succeeded'), 10 * count(*) FILTER (WHERE state = 'dead')
FROM bench_rows WHERE ts > now() - interval '1 hour' AND $2::text <> '' GROUP BY 2;

ANALYZE events;
ANALYZE deliveries;
ANALYZE attempts;
`

// BenchmarkDashboard measures the server's render time (handler only, no
// network) of the dashboard's pages for a webhook with 10,000 deliveries:
// the detail view with its first page of deliveries and their attempts, a
// deep page (near the oldest), a search by event id, and the Webhooks page
// with each webhook's endpoint health (seeded as the workers would have
// written it for those attempts). It reports p50 and p99 besides ns/op.
//
//	go test -run '^$' -bench Dashboard -benchtime 200x ./internal/dashboard
func BenchmarkDashboard(b *testing.B) {
	srv := testserver.Start(b, func(c *server.Config) { c.DBMaxConns = 8; c.MaxWorkers = 4 })
	ctx := context.Background()
	pool := srv.Pool()
	bundle := &testBundle{srv: srv, base: srv.BaseURL, pool: pool, http: &http.Client{Timeout: 10 * time.Second}}
	const account = "acct_bench"
	hook := bundle.createWebhook(b, account, "http://127.0.0.2:9/bench")
	for _, other := range []string{"http://127.0.0.2:9/a", "http://127.0.0.2:9/b", "http://127.0.0.2:9/c"} {
		bundle.createWebhook(b, account, other)
	}
	for _, stmt := range strings.Split(benchSeed, ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		var args []any
		if strings.Contains(stmt, "$1") {
			args = []any{hook.ID, account}
		}
		if _, err := pool.Exec(ctx, stmt, args...); err != nil {
			b.Fatalf("error seeding: %v\n%s", err, stmt)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM deliveries WHERE webhook_id = $1", hook.ID).Scan(&n); err != nil || n != 10000 {
		b.Fatalf("seeded %d deliveries (%v), want 10000", n, err)
	}

	enqueuer, err := engine.NewEnqueuer(srv.River(), nil)
	if err != nil {
		b.Fatal(err)
	}
	api, err := admin.New(pool, enqueuer, srv.Keys, &admin.Config{BootstrapAdminKey: testserver.AdminKey, Policy: &outbound.Policy{AllowPrivate: true}})
	if err != nil {
		b.Fatal(err)
	}
	dash, err := dashboard.New(api, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := dash.Handler()
	cookie := benchSignIn(b, h, bundle.createKey(b, "account", account).Key)

	// A deep page: the cursor of the 9,975th newest delivery.
	var deep store.DeliveryCursor
	if err := pool.QueryRow(ctx, `SELECT created_at, id FROM deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC OFFSET 9974 LIMIT 1`, hook.ID).Scan(&deep.CreatedAt, &deep.ID); err != nil {
		b.Fatal(err)
	}
	var eventID string
	if err := pool.QueryRow(ctx, `SELECT event_id FROM deliveries WHERE webhook_id = $1 AND state = 'dead' ORDER BY created_at LIMIT 1`, hook.ID).Scan(&eventID); err != nil {
		b.Fatal(err)
	}

	pages := []struct{ name, path, must string }{
		{"WebhookDetail", "/dashboard/webhooks/" + hook.ID, `class="delivery"`},
		{"WebhookDetailDeepPage", "/dashboard/webhooks/" + hook.ID + "?cursor=" + url.QueryEscape(deep.String()), `class="delivery"`},
		{"WebhookDetailSearch", "/dashboard/webhooks/" + hook.ID + "?event_id=" + eventID, eventID},
		{"Webhooks", "/dashboard/settings/personal/api", "Healthy"},
	}
	for _, pg := range pages {
		b.Run(pg.name, func(b *testing.B) {
			var took []time.Duration
			var size int
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, pg.path, nil)
				req.AddCookie(cookie)
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				took = append(took, time.Since(start))
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), pg.must) {
					b.Fatalf("GET %s: %d, %q missing", pg.path, rec.Code, pg.must)
				}
				size = rec.Body.Len()
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[(len(took)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(size)/1024, "KiB/page")
		})
	}
}

// benchSignIn signs in with key through the handler and
// returns the session cookie.
func benchSignIn(b *testing.B, h http.Handler, key string) *http.Cookie {
	b.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard/signin", nil))
	m := csrfRe.FindStringSubmatch(rec.Body.String())
	var signin *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "webhookd_signin" {
			signin = c
		}
	}
	if m == nil || signin == nil {
		b.Fatal("no sign-in form")
	}
	form := url.Values{"csrf": {m[1]}, "key": {key}}
	req := httptest.NewRequest(http.MethodPost, "/dashboard/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(signin)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == "webhookd_session" && c.Value != "" {
			return c
		}
	}
	b.Fatalf("sign-in failed: %d %s", rec.Code, rec.Body.String())
	return nil
}
