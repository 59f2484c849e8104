package dispatcher_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// A producer's view: the outbox through the façade's names alone, in the
// producer's own transaction, against a real database.
func TestOutbox(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	hookID := ident.New(ident.Webhook)
	ct, keyID, err := keys.Encrypt([]byte("whsec_outbox_test"), []byte(hookID))
	require.NoError(t, err)
	url := "http://127.0.0.2:9/webhooks"
	require.NoError(t, store.InsertWebhook(ctx, pool, &store.Webhook{
		ID: hookID, AccountID: "acct_outbox", URL: url, URLNormalized: url,
		SecretCiphertext: ct, SecretKeyID: keyID, CreatedAt: time.Now(),
	}))

	enqueuer, err := dispatcher.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	// enqueue runs ev in its own transaction, committed when Enqueue
	// succeeds and rolled back otherwise, as a producer does.
	enqueue := func(ev *dispatcher.Event) (*dispatcher.Enqueued, error) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		res, err := enqueuer.Enqueue(ctx, tx, ev)
		if err != nil {
			return nil, err
		}
		require.NoError(t, tx.Commit(ctx))
		return res, nil
	}
	event := func(data string) *dispatcher.Event {
		return &dispatcher.Event{AccountID: "acct_outbox", Type: "bank_transfer_approved", Data: json.RawMessage(data), IdempotencyKey: "transfer-42-approved"}
	}

	res, err := enqueue(event(`{"amount":240000}`))
	require.NoError(t, err)
	require.False(t, res.Repeat)
	require.Len(t, res.Deliveries, 1)
	require.Equal(t, dispatcher.EnqueuedDelivery{ID: res.Deliveries[0].ID, WebhookID: hookID}, res.Deliveries[0])
	stored, err := store.GetDelivery(ctx, pool, res.Deliveries[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.StatePending, stored.State)

	again, err := enqueue(event(`{"amount":240000}`))
	require.NoError(t, err)
	require.True(t, again.Repeat)
	require.Equal(t, res.EventID, again.EventID)

	_, err = enqueue(event(`{"amount":1}`))
	require.ErrorIs(t, err, dispatcher.ErrIdempotencyKeyReused)

	_, err = enqueue(&dispatcher.Event{AccountID: "acct_outbox", Type: "bank_transfer_approved", Data: json.RawMessage(`[1]`)})
	var invalid *dispatcher.ValidationError
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, "data", invalid.Field)

	bounded, err := dispatcher.NewEnqueuerWithConfig(nil, &dispatcher.EnqueuerConfig{MaxFanout: 1})
	require.NoError(t, err)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = bounded.EnqueueMany(ctx, tx, []*dispatcher.Event{
		{AccountID: "acct_outbox", Type: "a", Data: json.RawMessage(`{}`)},
		{AccountID: "acct_outbox", Type: "b", Data: json.RawMessage(`{}`)},
	})
	var fanout *dispatcher.FanoutError
	require.ErrorAs(t, err, &fanout)
	require.ErrorIs(t, err, dispatcher.ErrFanoutTooLarge)
	require.Equal(t, 2, fanout.Deliveries)
}
