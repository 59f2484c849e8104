package migrations_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/testdb"
)

// Migration 11 cancels the pending and paused deliveries of deleted
// webhooks that deleting left behind, in every day partition and the
// default one, finished now with no next attempt; it touches nothing else
// and running it again changes nothing.
func TestMigration11CancelsStrandedDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	sql, err := os.ReadFile("011_cancel_stranded_deliveries.sql")
	require.NoError(t, err)

	_, err = pool.Exec(ctx, `
INSERT INTO webhooks (id, account_id, url, url_normalized, secret_ciphertext, secret_key_id, deleted_at, paused_at, pause_reason)
VALUES ('wh_deleted_paused', 'acct_m', 'https://a.example/', 'https://a.example/', '\x00', 'k', now() - interval '1 day', now() - interval '2 days', 'manual'),
       ('wh_deleted', 'acct_m', 'https://b.example/', 'https://b.example/', '\x00', 'k', now() - interval '1 day', NULL, NULL),
       ('wh_live_paused', 'acct_m', 'https://c.example/', 'https://c.example/', '\x00', 'k', NULL, now(), 'manual')`)
	require.NoError(t, err)
	// Today's partition, and a day without one (the default partition).
	today := time.Now().UTC()
	for _, day := range []time.Time{today, today.AddDate(0, 0, -400)} {
		_, err = pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, next_attempt_at, finished_at, updated_at, part_day)
SELECT w || '_' || s || '_' || to_char($1::date, 'YYYYMMDD'), 'evt_m', w, 'acct_m', 'ping', s,
       CASE WHEN s IN ('pending', 'paused') THEN now() END, CASE WHEN s NOT IN ('pending', 'paused') THEN now() - interval '3 days' END,
       now() - interval '3 days', $1::date
FROM unnest(ARRAY['wh_deleted_paused', 'wh_deleted', 'wh_live_paused']) AS w,
     unnest(ARRAY['pending', 'paused', 'succeeded', 'dead', 'cancelled']) AS s`, day)
		require.NoError(t, err)
	}
	type row struct {
		State         string
		NextAttemptAt *time.Time
		FinishedAt    *time.Time
		UpdatedAt     time.Time
	}
	states := func() map[string]row {
		rows, err := pool.Query(ctx, `SELECT id, state, next_attempt_at, finished_at, updated_at FROM deliveries`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]row{}
		for rows.Next() {
			var (
				id string
				r  row
			)
			require.NoError(t, rows.Scan(&id, &r.State, &r.NextAttemptAt, &r.FinishedAt, &r.UpdatedAt))
			out[id] = r
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := states()
	require.Len(t, before, 30)
	var start time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT now()`).Scan(&start))

	_, err = pool.Exec(ctx, string(sql))
	require.NoError(t, err)
	after := states()
	cancelled := 0
	for id, b := range before {
		a := after[id]
		if strings.HasPrefix(id, "wh_live") || (b.State != "pending" && b.State != "paused") {
			require.Equal(t, b, a, "%s is left as it was", id)
			continue
		}
		cancelled++
		require.Equal(t, "cancelled", a.State, id)
		require.Nil(t, a.NextAttemptAt, id)
		require.NotNil(t, a.FinishedAt, id)
		require.False(t, a.FinishedAt.Before(start), "%s is finished when the migration ran", id)
		require.Equal(t, *a.FinishedAt, a.UpdatedAt, id)
	}
	require.Equal(t, 8, cancelled, "pending and paused, of both deleted webhooks, on both days")

	_, err = pool.Exec(ctx, string(sql))
	require.NoError(t, err, "running it again")
	require.Equal(t, after, states(), "running it again changes nothing")
}

// Migration 12 rewrites the message of every stored blocked_address attempt
// to outbound.BlockedMessage (which names no address or range), in every
// partition, and touches no other attempt; running it again changes
// nothing.
func TestMigration12ScrubsBlockedAddressMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	sql, err := os.ReadFile("012_blocked_address_message.sql")
	require.NoError(t, err)
	require.Contains(t, string(sql), "'"+outbound.BlockedMessage+"'", "the migration writes outbound.BlockedMessage")

	today := time.Now().UTC()
	for i, day := range []time.Time{today, today.AddDate(0, 0, -400)} {
		_, err = pool.Exec(ctx, `
INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, status_code, error_kind, error_message, signature_t, part_day)
VALUES ($1, 1, 1, now(), now(), 10, NULL, 'blocked_address', 'the host resolved to an address that is not allowed: it is a private network address (10.0.0.0/8)', 1, $2::date),
       ($1, 2, 1, now(), now(), 10, NULL, 'blocked_address', NULL, 1, $2::date),
       ($1, 3, 1, now(), now(), 10, NULL, 'dns', 'lookup failed: no such host', 1, $2::date),
       ($1, 4, 1, now(), now(), 10, 500, 'http_status', 'the endpoint answered 500', 1, $2::date)`,
			"dlv_m12_"+strconv.Itoa(i), day)
		require.NoError(t, err)
	}
	messages := func() map[string]string {
		rows, err := pool.Query(ctx, `SELECT delivery_id || '/' || number, coalesce(error_message, '<null>') FROM attempts`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var k, v string
			require.NoError(t, rows.Scan(&k, &v))
			out[k] = v
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := messages()
	require.Len(t, before, 8)
	for range 2 {
		_, err = pool.Exec(ctx, string(sql))
		require.NoError(t, err)
		after := messages()
		for k, v := range before {
			switch {
			case strings.HasSuffix(k, "/1"), strings.HasSuffix(k, "/2"):
				require.Equal(t, outbound.BlockedMessage, after[k], k)
			default:
				require.Equal(t, v, after[k], "%s is left as it was", k)
			}
		}
	}
}

// Migration 22 lets a retry's update of a delivery be HOT: no index of
// deliveries mentions a column it changes (the paused index is by creation,
// not next_attempt_at) and every deliveries partition, present or made
// later, keeps room on its pages (fillfactor 90). A success changes state,
// which the listing indexes hold, so it is not HOT. Running it again
// changes nothing.
func TestMigration22RetriesAreHOT(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	sql, err := os.ReadFile("022_delivery_hot.sql")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, string(sql))
	require.NoError(t, err, "running it again")

	day := time.Now().UTC().AddDate(0, 0, 40)
	for _, parent := range []string{"deliveries", "events"} {
		_, err = pool.Exec(ctx, `SELECT webhookd_ensure_partition($1, $2::date)`, parent, day)
		require.NoError(t, err)
	}
	options := func(parent string) map[string]string {
		var out map[string]string
		require.NoError(t, pool.QueryRow(ctx, `
SELECT jsonb_object_agg(c.relname, coalesce(array_to_string(c.reloptions, ','), ''))
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass`, parent).Scan(&out))
		return out
	}
	deliveries := options("deliveries")
	require.Contains(t, deliveries, "deliveries_default")
	require.Contains(t, deliveries, "deliveries_p"+day.Format("20060102"), "made after the migration")
	for name, opts := range deliveries {
		require.Equal(t, "fillfactor=90", opts, name)
	}
	require.Empty(t, options("events")["events_p"+day.Format("20060102")], "other tables' partitions as before")

	_, err = pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, next_attempt_at, part_day)
VALUES ('dlv_m22', 'evt_m22', 'wh_m22', 'acct_m22', 'ping', 1, now(), $1::date)`, day)
	require.NoError(t, err)
	// Each update in a transaction of its own (rolled back), counted by
	// the backend's own statistics (pg_stat_get_xact_*, read before and
	// after it: no waiting for them to be reported).
	hot := func(update string) (updated, hot int64) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { require.NoError(t, tx.Rollback(ctx)) }()
		counts := func() (u, h int64) {
			require.NoError(t, tx.QueryRow(ctx, `
SELECT pg_stat_get_xact_tuples_updated(c.oid), pg_stat_get_xact_tuples_hot_updated(c.oid)
FROM pg_class c WHERE c.relname = $1`, "deliveries_p"+day.Format("20060102")).Scan(&u, &h))
			return u, h
		}
		u0, h0 := counts()
		_, err = tx.Exec(ctx, update+` WHERE id = 'dlv_m22' AND part_day = $1::date`, day)
		require.NoError(t, err)
		u1, h1 := counts()
		return u1 - u0, h1 - h0
	}
	// A failed attempt with a retry (as the worker records it), a
	// rate-limited delivery moved to its slot, and a success.
	retry := `UPDATE deliveries SET attempts = attempts + 1, gen_attempts = gen_attempts + 1, state = 'pending',
    next_attempt_at = now() + interval '30 seconds', finished_at = NULL, updated_at = now()`
	slot := `UPDATE deliveries SET next_attempt_at = now() + interval '1 second', throttle_slot = now() + interval '1 second', updated_at = now()`
	success := `UPDATE deliveries SET attempts = attempts + 1, gen_attempts = gen_attempts + 1, state = 'succeeded',
    next_attempt_at = NULL, finished_at = now(), updated_at = now()`
	for name, update := range map[string]string{"retry": retry, "slot": slot} {
		updated, h := hot(update)
		require.Equal(t, []int64{1, 1}, []int64{updated, h}, "%s: updated, of which HOT", name)
	}
	updated, h := hot(success)
	require.Equal(t, []int64{1, 0}, []int64{updated, h}, "success: updated, of which HOT")
}

// Migration 24 leaves half of each river_job page free, so River's fetch
// writes a job's new row version on its own page.
func TestMigration24JobFillfactor(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	var opts []string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = 'river_job'::regclass`).Scan(&opts))
	require.Equal(t, []string{"fillfactor=50"}, opts)
}

// Migration 25 gives attempts one index, the primary key (delivery_id, id,
// part_day), in every partition, and a delivery's attempts are read
// through it. A partition whose <partition>_delivery_key was built ahead
// (valid, unique, on exactly those columns) keeps that index as its key
// instead of building one; an index of that name on other columns is left
// alone and the key is built beside it.
func TestMigration25AttemptsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	indexes := func() map[string]string { return tableIndexes(t, pool, "attempts") }
	check := func() {
		t.Helper()
		var key []string
		require.NoError(t, pool.QueryRow(ctx, `
SELECT array_agg(a.attname::text ORDER BY k.n)
FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY k(attnum, n)
JOIN pg_attribute a ON a.attrelid = 'attempts'::regclass AND a.attnum = k.attnum
WHERE c.conrelid = 'attempts'::regclass AND c.contype = 'p'`).Scan(&key))
		require.Equal(t, []string{"delivery_id", "id", "part_day"}, key)
		for name, def := range indexes() {
			if strings.HasSuffix(name, "_delivery_key") {
				continue
			}
			require.True(t, strings.HasSuffix(name, "_pkey"), "%s: %s", name, def)
			require.Contains(t, def, "(delivery_id, id, part_day)", name)
		}
	}
	check()

	// The schema before migration 25, with today's partition's new key
	// built ahead and another partition given a wrong one.
	today := time.Now().UTC().Format("20060102")
	_, err := pool.Exec(ctx, `
DO $$ BEGIN EXECUTE format('ALTER TABLE attempts DROP CONSTRAINT %I',
    (SELECT conname FROM pg_constraint WHERE conrelid = 'attempts'::regclass AND contype = 'p')); END $$;
ALTER TABLE attempts ADD CONSTRAINT attempts_pkey1 PRIMARY KEY (id, part_day);
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, id);
INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, signature_t)
SELECT 'dlv_m25_' || g, 1, 1, now(), now(), 1, 1 FROM generate_series(1, 100) g;
CREATE UNIQUE INDEX attempts_p`+today+`_delivery_key ON attempts_p`+today+` (delivery_id, id, part_day);
CREATE UNIQUE INDEX attempts_default_delivery_key ON attempts_default (id, delivery_id, part_day)`)
	require.NoError(t, err)
	var builtAhead uint32
	require.NoError(t, pool.QueryRow(ctx, `SELECT 'attempts_p`+today+`_delivery_key'::regclass::oid`).Scan(&builtAhead))

	applyFile(t, pool, "025_attempts_key.sql")
	check()
	var key uint32
	require.NoError(t, pool.QueryRow(ctx, `SELECT 'attempts_p`+today+`_pkey'::regclass::oid`).Scan(&key))
	require.Equal(t, builtAhead, key, "the index built ahead is the partition's key")
	require.Contains(t, indexes(), "attempts_default_pkey", "built beside the index on other columns")

	// A delivery's attempts can be read through the key (with sequential
	// scans penalised: the table is too small for the planner to prefer
	// an index otherwise).
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `EXPLAIN (COSTS OFF) SELECT number FROM attempts
WHERE delivery_id = 'dlv_m25_7' AND part_day = (now() AT TIME ZONE 'UTC')::date ORDER BY id`)
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		lines = append(lines, line)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, strings.Join(lines, "\n"), "attempts_p"+today+"_pkey", strings.Join(lines, "\n"))
}

// Since migration 26 a new partition takes its default partition's storage
// parameters: deliveries' fillfactor 90 as before, what an operator set on
// another default partition, and none where none is set.
func TestMigration26PartitionOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	_, err := pool.Exec(ctx, `ALTER TABLE attempts_default SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, vacuum_index_cleanup = auto)`)
	require.NoError(t, err)
	day := time.Now().UTC().AddDate(0, 0, 41)
	got := map[string][]string{}
	for _, parent := range []string{"deliveries", "attempts", "events"} {
		var made bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT webhookd_ensure_partition($1, $2::date)`, parent, day).Scan(&made))
		require.True(t, made, parent)
		var opts []string
		require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $1::regclass`,
			parent+"_p"+day.Format("20060102")).Scan(&opts))
		got[parent] = opts
	}
	require.Equal(t, map[string][]string{
		"deliveries": {"fillfactor=90"},
		"attempts":   {"fillfactor=70", "autovacuum_vacuum_scale_factor=0.01", "vacuum_index_cleanup=auto"},
		"events":     {},
	}, got)
}

// Migration 28 replaces the event-type listing index with one without
// state. An index built ahead on a partition with operators.md's recipe
// (CONCURRENTLY, named <partition>_account_type_created_idx) is attached,
// not built again, and the old index is gone from every partition.
func TestMigration28TypeIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	indexes := func() map[string]string { return tableIndexes(t, pool, "deliveries") }
	check := func() {
		t.Helper()
		n := 0
		for name, def := range indexes() {
			require.NotContains(t, def, "event_type, created_at, id, state", name)
			if strings.Contains(def, "(account_id, event_type,") {
				require.Contains(t, def, "(account_id, event_type, created_at, id, webhook_id)", name)
				n++
			}
		}
		require.Greater(t, n, 1, "the parent's index and its partitions'")
	}
	check()

	// The schema before migration 28; then today's partition's new index
	// built ahead as docs/operators.md says.
	today := time.Now().UTC().Format("20060102")
	_, err := pool.Exec(ctx, `
DROP INDEX deliveries_account_type_created_idx;
CREATE INDEX deliveries_account_type_idx ON deliveries (account_id, event_type, created_at, id, state, webhook_id)`)
	require.NoError(t, err)
	var build string
	require.NoError(t, pool.QueryRow(ctx, `
SELECT format('CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON %s (account_id, event_type, created_at, id, webhook_id)',
              c.relname || '_account_type_created_idx', c.oid::regclass)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'deliveries'::regclass AND c.relname = 'deliveries_p' || $1`, today).Scan(&build))
	_, err = pool.Exec(ctx, build)
	require.NoError(t, err)
	var builtAhead uint32
	require.NoError(t, pool.QueryRow(ctx, `SELECT 'deliveries_p`+today+`_account_type_created_idx'::regclass::oid`).Scan(&builtAhead))

	applyFile(t, pool, "028_account_type_index.sql")
	check()
	var attached uint32
	require.NoError(t, pool.QueryRow(ctx, `
SELECT i.inhrelid::oid FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid
WHERE i.inhparent = 'deliveries_account_type_created_idx'::regclass AND x.indrelid = 'deliveries_p`+today+`'::regclass`).Scan(&attached))
	require.Equal(t, builtAhead, attached, "the index built ahead is attached")
}

// tableIndexes returns the definition of each index of a partitioned table
// and of its partitions, by name.
func tableIndexes(t *testing.T, pool *pgxpool.Pool, table string) map[string]string {
	t.Helper()
	var out map[string]string
	require.NoError(t, pool.QueryRow(context.Background(), `
SELECT jsonb_object_agg(c.relname, pg_get_indexdef(x.indexrelid))
FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
WHERE x.indrelid = $1::regclass
   OR x.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)`, table).Scan(&out))
	return out
}

// applyFile runs one migration file as it stands, again.
func applyFile(t *testing.T, pool *pgxpool.Pool, name string) {
	t.Helper()
	sql, err := os.ReadFile(name)
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), string(sql))
	require.NoError(t, err)
}
