package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// The worker's batched statements: many deliveries loaded by one query and
// many attempts recorded by one statement, each guarded as if alone.
func TestBatchedLoadAndRecord(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	webhookID, _ := createWebhook(t, pool, keys, "acct_batch", "http://127.0.0.2:1/hook")
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	var ids []string
	for range 5 {
		res := enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_batch", Type: "ping", Data: rawJSON(`{"n":1}`)})
		ids = append(ids, res.Deliveries[0].ID)
	}
	// Give each delivery a known responsible job.
	for i, id := range ids {
		_, err := pool.Exec(ctx, `UPDATE deliveries SET job_id = $2 WHERE id = $1`, id, int64(1000+i))
		require.NoError(t, err)
	}
	// The worker's own pool for these statements (store.ByKeyPool) runs the
	// load and the first recording; a plain pool the second.
	byKey, err := store.NewByKeyPool(ctx, pool.Config(), 2)
	require.NoError(t, err)
	t.Cleanup(byKey.Close)

	// Load: order kept, a repeated id answered twice, an unknown id nil.
	unknown := ident.New(ident.Delivery)
	query := []string{ids[3], ids[0], unknown, ids[1], ids[2], ids[4], ids[0]}
	targets, err := store.GetTargets(ctx, byKey, query)
	require.NoError(t, err)
	require.Len(t, targets, len(query))
	for i, id := range query {
		if id == unknown {
			require.Nil(t, targets[i], "unknown id")
			continue
		}
		require.NotNil(t, targets[i], "delivery %s", id)
		require.Equal(t, id, targets[i].DeliveryID)
		require.Equal(t, webhookID, targets[i].WebhookID)
		require.Equal(t, store.StatePending, targets[i].State)
		require.Contains(t, string(targets[i].Body), `"n":1`)
		require.Equal(t, int64(1000+indexOf(ids, id)), *targets[i].JobID)
	}
	byID := map[string]*store.Target{}
	for _, target := range targets {
		if target != nil {
			byID[target.DeliveryID] = target
		}
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	next := now.Add(30 * time.Second)
	status200, status500 := 200, 500
	kind := "http_status"
	message := "the receiver answered 500"
	attempt := func(status *int) *store.AttemptRecord {
		a := &store.AttemptRecord{Number: 1, Generation: 1, Counted: true, ScheduledAt: now, StartedAt: now,
			Duration: 3 * time.Millisecond, StatusCode: status, ResponseExcerpt: []byte("ok"), SignatureT: now.Unix()}
		if status != nil && *status == 500 {
			a.ErrorKind, a.ErrorMessage = &kind, &message
		}
		return a
	}
	succeeded := &store.Outcome{State: store.StateSucceeded, Now: now}
	retry := &store.Outcome{State: store.StatePending, NextAttemptAt: &next, Now: now}
	stale := *byID[ids[4]]
	stale.Attempts = 3 // another run recorded meanwhile
	recordings := []store.Recording{
		{Target: byID[ids[0]], JobID: 1000, Attempt: attempt(&status200), Outcome: succeeded},
		{Target: byID[ids[1]], JobID: 1001, Attempt: attempt(&status500), Outcome: retry},
		{Target: byID[ids[2]], JobID: 1002, Attempt: attempt(&status200), Outcome: succeeded},
		{Target: byID[ids[2]], JobID: 1002, Attempt: attempt(&status500), Outcome: retry},    // the same delivery twice
		{Target: byID[ids[3]], JobID: 999, Attempt: attempt(&status200), Outcome: succeeded}, // not its job
		{Target: &stale, JobID: 1004, Attempt: attempt(nil), Outcome: retry},
	}
	recorded, err := store.RecordAttempts(ctx, byKey, recordings)
	require.NoError(t, err)
	require.Len(t, recorded, len(recordings))
	require.True(t, recorded[0])
	require.True(t, recorded[1])
	require.NotEqual(t, recorded[2], recorded[3], "exactly one of two recordings for one delivery: %v", recorded[2:4])
	require.False(t, recorded[4], "a job not responsible for the delivery recorded")
	require.False(t, recorded[5], "a stale attempt count recorded")

	d0, err := store.GetDelivery(ctx, pool, ids[0])
	require.NoError(t, err)
	require.Equal(t, store.StateSucceeded, d0.State)
	require.Equal(t, 1, d0.Attempts)
	require.NotNil(t, d0.FinishedAt)
	require.Len(t, d0.AttemptList, 1)
	require.Equal(t, 200, *d0.AttemptList[0].StatusCode)
	require.Equal(t, "ok", string(d0.AttemptList[0].ResponseExcerpt))
	require.Equal(t, 3*time.Millisecond, d0.AttemptList[0].Duration)

	d1, err := store.GetDelivery(ctx, pool, ids[1])
	require.NoError(t, err)
	require.Equal(t, store.StatePending, d1.State)
	require.Equal(t, next, d1.NextAttemptAt.UTC())
	require.Nil(t, d1.FinishedAt)
	require.Len(t, d1.AttemptList, 1)
	require.Equal(t, "http_status", *d1.AttemptList[0].ErrorKind)
	require.Equal(t, message, *d1.AttemptList[0].ErrorMessage)

	d2, err := store.GetDelivery(ctx, pool, ids[2])
	require.NoError(t, err)
	require.Len(t, d2.AttemptList, 1, "two recordings of one delivery in one batch")
	require.Equal(t, 1, d2.Attempts)

	for _, id := range ids[3:] {
		d, err := store.GetDelivery(ctx, pool, id)
		require.NoError(t, err)
		require.Equal(t, store.StatePending, d.State, "delivery %s", id)
		require.Zero(t, d.Attempts)
		require.Empty(t, d.AttemptList)
	}

	// Recording the same batch again records nothing: every guard has moved.
	again, err := store.RecordAttempts(ctx, pool, recordings)
	require.NoError(t, err)
	require.Equal(t, make([]bool, len(recordings)), again)
	require.Equal(t, 3, count(t, pool, "attempt_log"))
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}
