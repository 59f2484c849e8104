package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A success gives every index of deliveries a new entry (it is not a HOT
// update). Where that entry's key is its pending one's, a full leaf page
// makes room by deleting the dead versions (PostgreSQL's bottom-up
// deletion) instead of splitting, once no transaction anywhere on the
// server can still see them (so this checks the cause, not the index's
// size, which other tests' transactions would change); where the key
// changes, the new entry goes elsewhere and splits pages (BENCHMARKS.md:
// ~124 bytes of WAL per delivery in the event-type index before migration
// 28). So the columns a recorded success changes, read from the rows
// themselves, are in no index's key or predicate but the two listing
// indexes that order each state apart, by account and by webhook.
func TestSuccessChangesFewIndexKeys(t *testing.T) {
	ctx := context.Background()
	pool, day := todayPool(t)
	const n = 3
	_, err := pool.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, job_id, part_day)
SELECT 'dlv_' || lpad(g::text, 32, '0'), 'evt_' || lpad(g::text, 32, '0'), 'wh_x', 'acct_x', 'ping', g, $1::date
FROM generate_series(1, $2::int) g`, day, n)
	require.NoError(t, err)
	rows := func() map[string]map[string]any {
		t.Helper()
		var raw []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT jsonb_object_agg(id, to_jsonb(d)) FROM deliveries d`).Scan(&raw))
		var out map[string]map[string]any
		require.NoError(t, json.Unmarshal(raw, &out))
		return out
	}
	before := rows()

	now := time.Now().Add(time.Second)
	status := 200
	var rs []Recording
	for g := 1; g <= n; g++ {
		rs = append(rs, Recording{
			Target:  &Target{DeliveryID: fmt.Sprintf("dlv_%032d", g), PartDay: day},
			JobID:   int64(g),
			Attempt: &AttemptRecord{Number: 1, Generation: 1, Counted: true, ScheduledAt: now, StartedAt: now, StatusCode: &status, SignatureT: now.Unix()},
			Outcome: &Outcome{State: "succeeded", Now: now},
		})
	}
	recorded, err := RecordAttempts(ctx, pool, rs)
	require.NoError(t, err)
	require.Equal(t, []bool{true, true, true}, recorded)

	changed := map[string]bool{}
	for id, row := range rows() {
		for col, v := range row {
			if fmt.Sprint(v) != fmt.Sprint(before[id][col]) {
				changed[col] = true
			}
		}
	}
	require.True(t, changed["state"] && changed["attempts"] && changed["updated_at"], "changed: %v", changed)

	// Each index of the partitioned table: the columns of its key,
	// expressions and predicate.
	var raw []byte
	require.NoError(t, pool.QueryRow(ctx, `
SELECT jsonb_object_agg(c.relname, jsonb_build_object(
    'columns', (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                WHERE a.attrelid = x.indrelid AND a.attnum > 0
                  AND (a.attnum = ANY(x.indkey)
                       OR pg_get_expr(x.indpred, x.indrelid) ~ ('\m' || a.attname || '\M')
                       OR pg_get_expr(x.indexprs, x.indrelid) ~ ('\m' || a.attname || '\M'))),
    'predicate', coalesce(pg_get_expr(x.indpred, x.indrelid), 'true')))
FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
WHERE x.indrelid = 'deliveries'::regclass`).Scan(&raw))
	var indexes map[string]struct {
		Columns   []string
		Predicate string
	}
	require.NoError(t, json.Unmarshal(raw, &indexes))
	require.Contains(t, indexes, "deliveries_account_type_created_idx")

	var keyChanged []string
	for name, index := range indexes {
		for _, col := range index.Columns {
			if changed[col] {
				// A partial index whose predicate a succeeded row doesn't
				// match gets no entry from the success.
				var entries bool
				require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`
SELECT count(*) > 0 FROM deliveries d WHERE d.state = 'succeeded' AND (%s)`,
					index.Predicate)).Scan(&entries))
				if entries {
					keyChanged = append(keyChanged, name)
				}
				break
			}
		}
	}
	slices.Sort(keyChanged)
	t.Logf("a success changes %v; indexes whose key it changes: %v", slices.Sorted(maps.Keys(changed)), keyChanged)
	require.Equal(t, []string{"deliveries_account_state_idx", "deliveries_webhook_state_idx"}, keyChanged,
		"an index whose key a success changes splits its pages on every drain; changed columns: %v", changed)
}
