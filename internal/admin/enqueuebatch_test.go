package admin

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
)

// Events of different requests share a transaction, yet each is answered as
// if alone: a reused idempotency key or an invalid event fails by itself and
// the others are stored; a repeat within the batch gets the first's result.
func TestEnqueueEachAnswersEachEventAlone(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	api, err := New(pool, enqueuer, keys, nil)
	require.NoError(t, err)

	ev := func(key, data string) *engine.Event {
		return &engine.Event{AccountID: "acct_b", Type: "ping", Data: json.RawMessage(data), IdempotencyKey: key}
	}
	// A key stored by an earlier request.
	first, err := api.enqueueEach(ctx, []*engine.Event{ev("k-old", `{"v":1}`)})
	require.NoError(t, err)
	require.NoError(t, first[0].err)

	events := []*engine.Event{
		ev("", `{"n":0}`),
		ev("k-old", `{"v":2}`), // reused with another payload: 409
		ev("k-new", `{"n":2}`),
		ev("k-new", `{"n":2}`), // the same key and payload in the same batch: a repeat
		ev("k-two", `{"n":4}`),
		ev("k-two", `{"n":5}`), // the same key, another payload, same batch: 409
		ev("", `not json`),     // invalid
		ev("k-old", `{"v":1}`), // a repeat of the earlier request
	}
	out, err := api.enqueueEach(ctx, events)
	require.NoError(t, err)
	require.Len(t, out, len(events))

	for _, i := range []int{0, 2, 4} {
		require.NoError(t, out[i].err, "event %d", i)
		require.False(t, out[i].res.Repeat, "event %d", i)
	}
	require.ErrorIs(t, out[1].err, engine.ErrIdempotencyKeyReused)
	require.ErrorIs(t, out[5].err, engine.ErrIdempotencyKeyReused)
	var invalid *engine.ValidationError
	require.ErrorAs(t, out[6].err, &invalid, "event 6: %v", out[6].err)
	require.Equal(t, "data", invalid.Field)
	require.NoError(t, out[3].err)
	require.True(t, out[3].res.Repeat)
	require.Equal(t, out[2].res.EventID, out[3].res.EventID)
	require.NoError(t, out[7].err)
	require.True(t, out[7].res.Repeat)
	require.Equal(t, first[0].res.EventID, out[7].res.EventID)

	var stored int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&stored))
	require.Equal(t, 4, stored, "the earlier event and events 0, 2 and 4")
}
