package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// seedDelivery stores a delivery of webhookID in state, with its event,
// as if it had made attempts attempts, and returns its id.
func seedDelivery(t *testing.T, db store.DB, accountID, webhookID, state string, attempts int) string {
	t.Helper()
	ctx := context.Background()
	eventID, id := ident.New(ident.Event), ident.New(ident.Delivery)
	_, err := db.Exec(ctx, `INSERT INTO events (id, account_id, type, body, occurred_at) VALUES ($1, $2, 'order.created', '{"event":{}}', now())`, eventID, accountID)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `
INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, gen_attempts, finished_at)
VALUES ($1, $2, $3, $4, 'order.created', $5, $6, $6, CASE WHEN $5 = 'pending' THEN NULL ELSE now() END)`,
		id, eventID, webhookID, accountID, state, attempts)
	require.NoError(t, err)
	return id
}

func insertOnlyClient(t *testing.T) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	return client
}

// Replay flips a dead or succeeded delivery to pending on a new generation
// with a new job, keeps its attempt count and records the replay; every
// other case changes nothing.
func TestReplay(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	client := insertOnlyClient(t)
	hook, _ := createWebhook(t, pool, keys, "acct_r", "http://127.0.0.2:9/")
	gone, _ := createWebhook(t, pool, keys, "acct_r", "http://127.0.0.2:9/gone")
	_, err = store.DeleteWebhook(ctx, pool, gone, "", time.Now())
	require.NoError(t, err)

	replay := func(id string, opts *engine.ReplayOpts) (*engine.Replayed, error) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		res, err := engine.Replay(ctx, tx, client, id, opts)
		if err == nil {
			require.NoError(t, tx.Commit(ctx))
		}
		return res, err
	}

	t.Run("Dead", func(t *testing.T) {
		id := seedDelivery(t, pool, "acct_r", hook, store.StateDead, 10)
		now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
		res, err := replay(id, &engine.ReplayOpts{KeyID: "key_0123", AccountID: "acct_r", Now: now})
		require.NoError(t, err)
		require.Equal(t, store.StateDead, res.FromState)
		require.Equal(t, 2, res.Generation)

		target, err := store.GetTarget(ctx, pool, id)
		require.NoError(t, err)
		require.Equal(t, store.StatePending, target.State)
		require.Equal(t, 2, target.Generation)
		require.Equal(t, 0, target.GenAttempts, "a new generation of ten")
		require.Equal(t, 10, target.Attempts, "lifetime attempts go on")
		require.True(t, now.Equal(*target.NextAttemptAt), "due now")
		require.Equal(t, res.JobID, *target.JobID)

		var kind, state, args string
		require.NoError(t, pool.QueryRow(ctx, "SELECT kind, state, args->>'delivery_id' FROM river_job WHERE id = $1", res.JobID).Scan(&kind, &state, &args))
		require.Equal(t, "webhookd.delivery", kind)
		require.Equal(t, "available", state)
		require.Equal(t, id, args)

		d, err := store.GetDelivery(ctx, pool, id)
		require.NoError(t, err)
		require.Nil(t, d.FinishedAt)
		require.Len(t, d.Replays, 1)
		require.Equal(t, 2, d.Replays[0].Generation)
		require.Equal(t, store.StateDead, d.Replays[0].FromState)
		require.Equal(t, "key_0123", *d.Replays[0].KeyID)
		require.Nil(t, d.Replays[0].BatchID)
		require.True(t, now.Equal(d.Replays[0].CreatedAt))
	})

	t.Run("Succeeded", func(t *testing.T) {
		id := seedDelivery(t, pool, "acct_r", hook, store.StateSucceeded, 1)
		res, err := replay(id, nil)
		require.NoError(t, err)
		require.Equal(t, store.StateSucceeded, res.FromState)
		d, err := store.GetDelivery(ctx, pool, id)
		require.NoError(t, err)
		require.Nil(t, d.Replays[0].KeyID, "the bootstrap key has no id")
	})

	refusals := []struct {
		name    string
		state   string
		webhook string
		opts    *engine.ReplayOpts
		want    error
	}{
		{"Pending", store.StatePending, hook, nil, engine.ErrDeliveryPending},
		{"Cancelled", store.StateCancelled, hook, nil, engine.ErrDeliveryCancelled},
		{"WebhookDeleted", store.StateDead, gone, nil, engine.ErrWebhookDeleted},
		{"OtherAccount", store.StateDead, hook, &engine.ReplayOpts{AccountID: "acct_other"}, store.ErrNotFound},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			id := seedDelivery(t, pool, "acct_r", tt.webhook, tt.state, 3)
			before := count(t, pool, "river_job")
			_, err := replay(id, tt.opts)
			require.ErrorIs(t, err, tt.want)
			d, err := store.GetDelivery(ctx, pool, id)
			require.NoError(t, err)
			require.Equal(t, tt.state, d.State)
			require.Equal(t, 1, d.Generation)
			require.Empty(t, d.Replays)
			require.Equal(t, before, count(t, pool, "river_job"))
		})
	}

	t.Run("Unknown", func(t *testing.T) {
		_, err := replay(ident.New(ident.Delivery), nil)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	// The second of two concurrent replays waits on the first's row lock
	// and then finds the delivery pending: one replay, one job.
	t.Run("Concurrent", func(t *testing.T) {
		id := seedDelivery(t, pool, "acct_r", hook, store.StateDead, 10)
		first, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer first.Rollback(ctx) //nolint:errcheck
		_, err = engine.Replay(ctx, first, client, id, nil)
		require.NoError(t, err)

		var (
			wg        sync.WaitGroup
			secondErr error
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := pool.Begin(ctx)
			if err != nil {
				secondErr = err
				return
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			_, secondErr = engine.Replay(ctx, tx, client, id, nil)
		}()
		// Wait until the second is blocked on the row lock, then commit.
		require.Eventually(t, func() bool {
			var waiting int
			require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting))
			return waiting == 1
		}, 5*time.Second, 5*time.Millisecond)
		require.NoError(t, first.Commit(ctx))
		wg.Wait()
		require.ErrorIs(t, secondErr, engine.ErrDeliveryPending)

		d, err := store.GetDelivery(ctx, pool, id)
		require.NoError(t, err)
		require.Equal(t, 2, d.Generation)
		require.Len(t, d.Replays, 1)
		var jobs int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE args->>'delivery_id' = $1", id).Scan(&jobs))
		require.Equal(t, 1, jobs)
	})
}

// steppingClock advances by step every time it is read.
type steppingClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// A bulk replay worked by its job: chunk by chunk, over two runs (the
// first spends its budget and snoozes), each webhook's deliveries exactly
// Spacing apart across both runs and the two webhooks side by side; far
// ones are scheduled in River for their time; a delivery replayed on its
// own meanwhile is skipped; a second batch fixed over the same deliveries
// skips them all.
func TestReplayBatchWorker(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck

	hookA, _ := createWebhook(t, tx, keys, "acct_b", "http://127.0.0.2:9/a")
	hookB, _ := createWebhook(t, tx, keys, "acct_b", "http://127.0.0.2:9/b")
	webhookOf := map[string]string{}
	for i := 0; i < 25; i++ {
		webhookOf[seedDelivery(t, tx, "acct_b", hookA, store.StateDead, 10)] = hookA
	}
	for i := 0; i < 12; i++ {
		webhookOf[seedDelivery(t, tx, "acct_b", hookB, store.StateDead, 10)] = hookB
	}
	seedDelivery(t, tx, "acct_b", hookA, store.StateSucceeded, 1) // not dead: not taken
	seedDelivery(t, tx, "acct_other", hookB, store.StateDead, 10) // another account: not taken

	client := insertOnlyClient(t)
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	first, err := engine.StartReplayBatch(ctx, tx, client, &store.ReplayFilter{AccountID: "acct_b"}, &engine.ReplayOpts{KeyID: "key_1", Now: start})
	require.NoError(t, err)
	require.Equal(t, 37, first.Total)
	require.Equal(t, store.ReplayBatchRunning, first.State)
	second, err := engine.StartReplayBatch(ctx, tx, client, &store.ReplayFilter{AccountID: "acct_b", WebhookID: hookA}, &engine.ReplayOpts{Now: start})
	require.NoError(t, err)
	require.Equal(t, 25, second.Total)

	// One of webhook A's is replayed on its own before the batch runs.
	var alone string
	for id, h := range webhookOf {
		if h == hookA {
			alone = id
			break
		}
	}
	_, err = engine.Replay(ctx, tx, client, alone, &engine.ReplayOpts{Now: start})
	require.NoError(t, err)

	const spacing = 500 * time.Millisecond
	clock := &steppingClock{now: start, step: time.Millisecond}
	worker := engine.NewReplayBatchWorker(tx, &engine.ReplayBatchConfig{ChunkSize: 10, Spacing: spacing, RunBudget: 5 * time.Millisecond, Now: clock.Now})
	testWorker := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker)

	jobOf := func(batchID string) *rivertype.JobRow {
		var id int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT id FROM river_job WHERE kind = 'webhookd.replay_batch' AND args->>'batch_id' = $1", batchID).Scan(&id))
		job, err := client.JobGetTx(ctx, tx, id)
		require.NoError(t, err)
		return job
	}

	// First run: two chunks, then the budget is spent.
	res, err := testWorker.WorkJob(ctx, t, tx, jobOf(first.ID))
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
	b, err := store.GetReplayBatch(ctx, tx, first.ID)
	require.NoError(t, err)
	require.Equal(t, store.ReplayBatchRunning, b.State)
	require.Equal(t, 20, b.Replayed+b.Skipped)

	// Second run: the rest.
	res, err = testWorker.WorkJob(ctx, t, tx, jobOf(first.ID))
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	b, err = store.GetReplayBatch(ctx, tx, first.ID)
	require.NoError(t, err)
	require.Equal(t, store.ReplayBatchDone, b.State)
	require.Equal(t, 36, b.Replayed)
	require.Equal(t, 1, b.Skipped, "the delivery replayed on its own")
	require.NotNil(t, b.FinishedAt)

	// Pacing: per webhook, consecutive due times exactly spacing apart,
	// both webhooks starting with the batch.
	rows, err := tx.Query(ctx, `
SELECT d.id, d.webhook_id, d.next_attempt_at, d.generation, j.state, j.scheduled_at
FROM replay_batch_items i
JOIN deliveries d ON d.id = i.delivery_id
JOIN river_job j ON j.id = d.job_id
WHERE i.batch_id = $1 AND i.replayed
ORDER BY d.next_attempt_at`, first.ID)
	require.NoError(t, err)
	due := map[string][]time.Time{}
	for rows.Next() {
		var (
			id, webhookID, jobState string
			next, scheduledAt       time.Time
			generation              int
		)
		require.NoError(t, rows.Scan(&id, &webhookID, &next, &generation, &jobState, &scheduledAt))
		require.NotEqual(t, alone, id)
		require.Equal(t, 2, generation)
		due[webhookID] = append(due[webhookID], next)
		// Due more than River's 5 s look-ahead later: scheduled for its
		// time; sooner: available at once (the worker snoozes it).
		if next.Sub(start) > 5100*time.Millisecond {
			require.Equal(t, "scheduled", jobState, "due %s", next.Sub(start))
			require.True(t, scheduledAt.Equal(next))
		} else if next.Sub(start) < 4900*time.Millisecond {
			require.Equal(t, "available", jobState, "due %s", next.Sub(start))
		}
	}
	require.NoError(t, rows.Err())
	require.Len(t, due[hookA], 24)
	require.Len(t, due[hookB], 12)
	for _, times := range due {
		require.WithinDuration(t, start, times[0], 50*time.Millisecond)
		for i := 1; i < len(times); i++ {
			require.Equal(t, spacing, times[i].Sub(times[i-1]), "gap %d", i)
		}
	}

	// The replays name the batch and its key.
	var named int
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM delivery_replays WHERE batch_id = $1 AND key_id = 'key_1'", first.ID).Scan(&named))
	require.Equal(t, 36, named)

	// The second batch, fixed before the first ran, finds every delivery
	// changed: none is queued twice.
	jobsBefore := count(t, tx, "river_job")
	for run := 1; ; run++ {
		require.LessOrEqual(t, run, 2, "25 items in chunks of 10, two chunks a run")
		res, err = testWorker.WorkJob(ctx, t, tx, jobOf(second.ID))
		require.NoError(t, err)
		if res.EventKind == river.EventKindJobCompleted {
			break
		}
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
	}
	b, err = store.GetReplayBatch(ctx, tx, second.ID)
	require.NoError(t, err)
	require.Equal(t, store.ReplayBatchDone, b.State)
	require.Equal(t, 0, b.Replayed)
	require.Equal(t, 25, b.Skipped)
	require.Equal(t, jobsBefore, count(t, tx, "river_job"))

	// A bulk replay matching nothing is done at once, with no job.
	none, err := engine.StartReplayBatch(ctx, tx, client, &store.ReplayFilter{AccountID: "acct_nobody"}, nil)
	require.NoError(t, err)
	require.Equal(t, 0, none.Total)
	require.Equal(t, store.ReplayBatchDone, none.State)
	require.Equal(t, jobsBefore, count(t, tx, "river_job"))

	// Bad filters are refused before any SQL.
	for _, f := range []*store.ReplayFilter{
		{AccountID: ""},
		{AccountID: "acct b"},
		{AccountID: "acct_b", State: store.StatePending},
	} {
		_, err := engine.StartReplayBatch(ctx, tx, client, f, nil)
		var v *engine.ValidationError
		require.ErrorAs(t, err, &v, "%+v: %v", f, err)
	}
}
