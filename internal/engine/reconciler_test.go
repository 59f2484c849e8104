package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// The pending and paused deliveries of deleted webhooks that deleting left
// behind (an enqueue that read the webhook just before the delete
// committed, or a delete before schema version 11 left the paused ones)
// are cancelled by the reconciler's passes, at most Slice of each kind a
// pass: not re-queued when their job is gone, not resumed when the webhook
// is no longer paused. A live paused webhook's deliveries stay paused.
func TestReconcilerCancelsDeletedWebhooksDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupInsertOnly(t)
	pool, client := b.pool, b.client

	// hook creates a webhook of account (paused if asked) and enqueues n
	// events to it, returning its id and its deliveries' ids.
	hook := func(account string, paused bool, n int) (string, []string) {
		id, _ := createWebhook(t, pool, b.keys, account, "https://"+account+".example/")
		if paused {
			require.NoError(t, store.PauseWebhook(ctx, pool, id, "", store.PauseManual, nil, time.Now()))
		}
		var ids []string
		for range n {
			res := enqueue(t, pool, b.enqueuer, &engine.Event{AccountID: account, Type: "ping", Data: rawJSON(`{}`)})
			require.Len(t, res.Deliveries, 1)
			ids = append(ids, res.Deliveries[0].ID)
		}
		return id, ids
	}
	pausedGone, pausedGoneDs := hook("acct_paused_gone", true, 3)
	pendingGone, pendingGoneDs := hook("acct_pending_gone", false, 2)
	// Paused, then unpaused by a resume that did not see its delivery.
	resumedGone, resumedGoneDs := hook("acct_resumed_gone", true, 1)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return store.UnpauseWebhook(ctx, tx, resumedGone, "") }))
	_, liveDs := hook("acct_live", true, 1)

	// The first pending delivery's job is gone: an orphan, which must not
	// be re-queued.
	orphan, err := store.GetTarget(ctx, pool, pendingGoneDs[0])
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM river_job WHERE id = $1`, *orphan.JobID)
	require.NoError(t, err)
	// Deleted without their deliveries being cancelled.
	_, err = pool.Exec(ctx, `UPDATE webhooks SET deleted_at = now() WHERE id = ANY($1)`, []string{pausedGone, pendingGone, resumedGone})
	require.NoError(t, err)

	states := func(ids []string) map[string]int {
		out := map[string]int{}
		for _, id := range ids {
			d, err := store.GetDelivery(ctx, pool, id)
			require.NoError(t, err)
			out[d.State]++
		}
		return out
	}
	abandonedPaused := append(append([]string{}, pausedGoneDs...), resumedGoneDs...)
	require.Equal(t, map[string]int{store.StatePaused: 4}, states(abandonedPaused))
	require.Equal(t, map[string]int{store.StatePending: 2}, states(pendingGoneDs))

	r := engine.NewReconcilerWithConfig(pool, &engine.ReconcilerConfig{Slice: 2})
	resumed, err := r.ResumeStranded(ctx, client)
	require.NoError(t, err)
	require.Zero(t, resumed, "a deleted webhook's paused deliveries are never resumed")

	worker := rivertest.NewWorker(t, riverpgxv5.New(pool), &river.Config{}, r)
	pass := func() {
		t.Helper()
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			res, err := worker.Work(ctx, t, tx, engine.ReconcileArgs{}, nil)
			require.NoError(t, err)
			require.Equal(t, river.EventKindJobCompleted, res.EventKind)
			return nil
		}))
	}

	pass()
	require.Equal(t, map[string]int{store.StateCancelled: 2}, states(pendingGoneDs), "the pending ones, orphan or not")
	require.Equal(t, map[string]int{store.StateCancelled: 2, store.StatePaused: 2}, states(abandonedPaused), "two paused ones a pass")
	pass()
	require.Equal(t, map[string]int{store.StateCancelled: 4}, states(abandonedPaused))
	pass()

	for _, id := range append(append([]string{}, pendingGoneDs...), abandonedPaused...) {
		d, err := store.GetDelivery(ctx, pool, id)
		require.NoError(t, err)
		require.Nil(t, d.NextAttemptAt, id)
		require.NotNil(t, d.FinishedAt, id)
	}
	after, err := store.GetTarget(ctx, pool, pendingGoneDs[0])
	require.NoError(t, err)
	require.Equal(t, *orphan.JobID, *after.JobID, "the orphan was not given a new job")
	require.Zero(t, r.Fixed())
	require.EqualValues(t, 6, r.Cancelled())
	require.Equal(t, map[string]int{store.StatePaused: 1}, states(liveDs), "a live paused webhook's delivery waits")
}

// insertOnlyBundle is a fresh database and an insert-only River client:
// no worker runs, so deliveries change only as the test (or the
// reconciler it runs) changes them.
type insertOnlyBundle struct {
	pool     *pgxpool.Pool
	keys     *keyring.Keyring
	client   *river.Client[pgx.Tx]
	enqueuer *engine.Enqueuer
}

func setupInsertOnly(t *testing.T) *insertOnlyBundle {
	t.Helper()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	enqueuer, err := engine.NewEnqueuer(client, nil)
	require.NoError(t, err)
	return &insertOnlyBundle{pool: pool, keys: keys, client: client, enqueuer: enqueuer}
}
