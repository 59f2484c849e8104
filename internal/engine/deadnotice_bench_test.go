package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// BenchmarkRecordDeaths: what recording a batch of 100 attempts costs on
// the worker's ByKeyPool, with no death (RecordAttemptsNotifying is then
// RecordAttempts: the same one statement) and with one death, recorded in
// a transaction under a savepoint with a hook that writes one row (the
// notification's own statements come on top).
//
//	go test -run '^$' -bench RecordDeaths -benchtime 20x ./internal/engine
func BenchmarkRecordDeaths(b *testing.B) {
	ctx := context.Background()
	pool := testdb.New(b)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(b, err)
	byKey, err := store.NewByKeyPool(ctx, pool.Config(), 2)
	require.NoError(b, err)
	b.Cleanup(byKey.Close)
	createWebhook(b, pool, keys, "acct_bench_dead", "http://127.0.0.2:1/hook")
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(b, err)
	const batch = 100
	job := int64(0)
	// recordings enqueues a batch and returns its recordings: deaths of
	// them dead, the others succeeded.
	recordings := func(deaths int) []store.Recording {
		ids := make([]string, batch)
		for i := range ids {
			res := enqueue(b, pool, enqueuer, &engine.Event{AccountID: "acct_bench_dead", Type: "ping", Data: rawJSON(`{}`)})
			job++
			ids[i] = res.Deliveries[0].ID
			_, err := pool.Exec(ctx, `UPDATE deliveries SET job_id = $2 WHERE id = $1`, ids[i], job)
			require.NoError(b, err)
		}
		targets, err := store.GetTargets(ctx, byKey, ids)
		require.NoError(b, err)
		now := time.Now().UTC().Truncate(time.Microsecond)
		rs := make([]store.Recording, batch)
		for i, t := range targets {
			state, code := store.StateSucceeded, 200
			if i < deaths {
				state, code = store.StateDead, 500
			}
			rs[i] = store.Recording{Target: t, JobID: *t.JobID, Outcome: &store.Outcome{State: state, Now: now},
				Attempt: &store.AttemptRecord{Number: 1, Generation: 1, Counted: true, ScheduledAt: now, StartedAt: now, StatusCode: &code, SignatureT: now.Unix()}}
		}
		return rs
	}
	hook := func(ctx context.Context, tx pgx.Tx, deaths []store.Recording) error {
		_, err := tx.Exec(ctx, `INSERT INTO webhookd_cursors (name, position) VALUES ($1, 1)`, "bench:"+deaths[0].Target.DeliveryID)
		return err
	}
	for _, deaths := range []int{0, 1} {
		b.Run(fmt.Sprintf("Deaths%d", deaths), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				rs := recordings(deaths)
				b.StartTimer()
				recorded, failed, err := store.RecordAttemptsNotifying(ctx, byKey, rs, hook)
				require.NoError(b, err)
				require.NoError(b, failed)
				require.NotContains(b, recorded, false)
			}
		})
	}
}
