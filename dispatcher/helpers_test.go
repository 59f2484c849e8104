package dispatcher_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/ident"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/keyring"
	"github.com/mono/webhookd/server"
	"github.com/mono/webhookd/store"
)

// testBundle is an in-process webhookd (API and workers) on its own database.
type testBundle struct {
	srv      *server.Server
	pool     *pgxpool.Pool
	keys     *keyring.Keyring
	enqueuer *dispatcher.Enqueuer
}

// setupServer starts webhookd on a fresh database with a fast schedule
// (scale 0.001), private networks allowed and a short HTTP timeout. modify
// may change the config first.
func setupServer(t *testing.T, modify func(*server.Config)) *testBundle {
	t.Helper()
	srv := testserver.Start(t, func(c *server.Config) {
		c.HTTPTimeout = 500 * time.Millisecond
		if modify != nil {
			modify(c)
		}
	})
	enqueuer, err := dispatcher.NewEnqueuer(srv.River(), nil)
	require.NoError(t, err)
	return &testBundle{srv: srv.Server, pool: srv.Pool(), keys: srv.Keys, enqueuer: enqueuer}
}

// createWebhook stores a live webhook and returns its id and secret.
func createWebhook(t *testing.T, db store.DB, keys *keyring.Keyring, accountID, url string) (string, string) {
	t.Helper()
	id := ident.New(ident.Webhook)
	secret := "whsec_test_" + ident.New(ident.Key)[4:]
	ct, keyID, err := keys.Encrypt([]byte(secret), []byte(id))
	require.NoError(t, err)
	require.NoError(t, store.InsertWebhook(context.Background(), db, &store.Webhook{
		ID: id, AccountID: accountID, URL: url, URLNormalized: url,
		SecretCiphertext: ct, SecretKeyID: keyID, CreatedAt: time.Now(),
	}))
	return id, secret
}

// enqueue enqueues ev in its own committed transaction.
func enqueue(t *testing.T, pool *pgxpool.Pool, e *dispatcher.Enqueuer, ev *dispatcher.Event) *dispatcher.Enqueued {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	res, err := e.Enqueue(ctx, tx, ev)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return res
}

// waitFinished polls until delivery id leaves pending, and returns it.
func waitFinished(t *testing.T, db store.DB, id string, timeout time.Duration) *store.Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := store.GetDelivery(context.Background(), db, id)
		require.NoError(t, err)
		if d.State != store.StatePending {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s still pending after %s (%d attempts)", id, timeout, len(d.AttemptList))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAttempts polls until delivery id has at least n attempts recorded.
func waitAttempts(t *testing.T, db store.DB, id string, n int, timeout time.Duration) *store.Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := store.GetDelivery(context.Background(), db, id)
		require.NoError(t, err)
		if len(d.AttemptList) >= n {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s has %d attempts after %s, want %d", id, len(d.AttemptList), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(t *testing.T, db store.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }
