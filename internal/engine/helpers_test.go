package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testclock"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

// testBundle is an in-process webhookd (API and workers) on its own database.
type testBundle struct {
	srv      *server.Server
	pool     *pgxpool.Pool
	keys     *keyring.Keyring
	enqueuer *engine.Enqueuer
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
	enqueuer, err := engine.NewEnqueuer(srv.River(), nil)
	require.NoError(t, err)
	return &testBundle{srv: srv.Server, pool: srv.Pool(), keys: srv.Keys, enqueuer: enqueuer}
}

// createWebhook stores a live webhook and returns its id and secret.
func createWebhook(t testing.TB, db store.DB, keys *keyring.Keyring, accountID, url string) (string, string) {
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
func enqueue(t testing.TB, pool *pgxpool.Pool, e *engine.Enqueuer, ev *engine.Event) *engine.Enqueued {
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
	var d *store.Delivery
	testwait.For(t, timeout, func() (bool, string) {
		var err error
		d, err = store.GetDelivery(context.Background(), db, id)
		require.NoError(t, err)
		return d.State != store.StatePending, fmt.Sprintf("delivery %s still pending (%d attempts)", id, len(d.AttemptList))
	})
	return d
}

// waitAttempts polls until delivery id has at least n attempts recorded.
func waitAttempts(t *testing.T, db store.DB, id string, n int, timeout time.Duration) *store.Delivery {
	t.Helper()
	var d *store.Delivery
	testwait.For(t, timeout, func() (bool, string) {
		var err error
		d, err = store.GetDelivery(context.Background(), db, id)
		require.NoError(t, err)
		return len(d.AttemptList) >= n, fmt.Sprintf("delivery %s has %d attempts, want %d", id, len(d.AttemptList), n)
	})
	return d
}

// waitDeliveryJobsFinished waits until every delivery job in the test's
// database is finalized (completed, cancelled or discarded): whatever the
// jobs were going to send has been sent, so a count taken after it is the
// final one ("sleep, then check nothing more happened" without the sleep).
func waitDeliveryJobsFinished(t *testing.T, db store.DB) {
	t.Helper()
	testwait.For(t, 30*time.Second, func() (bool, string) {
		var n int
		require.NoError(t, db.QueryRow(context.Background(),
			"SELECT count(*) FROM river_job WHERE kind = 'webhookd.delivery' AND finalized_at IS NULL").Scan(&n))
		return n == 0, fmt.Sprintf("%d delivery jobs unfinished", n)
	})
}

func count(t *testing.T, db store.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }

// fakeClockRig is a delivery worker on a fake clock, working inside one
// transaction (rolled back at cleanup) that holds a webhook to url of
// account and one enqueued delivery to it.
type fakeClockRig struct {
	tx         pgx.Tx
	clock      *testclock.Clock
	worker     *rivertest.Worker[engine.DeliveryArgs, pgx.Tx]
	lookup     *river.Client[pgx.Tx]
	deliveryID string
}

func newFakeClockRig(t *testing.T, url, account string) *fakeClockRig {
	t.Helper()
	client, err := outbound.NewClient(&outbound.Policy{AllowPrivate: true}, &outbound.ClientConfig{Timeout: 2 * time.Second})
	require.NoError(t, err)
	return newFakeClockRigWith(t, url, account, client, nil)
}

// newFakeClockRigWith is newFakeClockRig with the worker's outbound client
// and logger (nil: none) given.
func newFakeClockRigWith(t *testing.T, url, account string, client *outbound.Client, logger *zap.Logger) *fakeClockRig {
	t.Helper()
	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	clock := testclock.New(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { tx.Rollback(ctx) }) //nolint:errcheck

	createWebhook(t, tx, keys, account, url)
	enqueuer, err := engine.NewEnqueuer(nil, clock.Now)
	require.NoError(t, err)
	res, err := enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: account, Type: "ping", Data: rawJSON(`{}`)})
	require.NoError(t, err)
	worker, err := engine.NewWorker(tx, keys, client, &engine.WorkerConfig{Now: clock.Now, HTTPTimeout: 2 * time.Second, Logger: logger,
		// rivertest's worker completes the job itself and fails when its
		// row is gone: the rig keeps finished jobs.
		KeepFinishedJobs: true})
	require.NoError(t, err)
	lookup, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	return &fakeClockRig{
		tx: tx, clock: clock, lookup: lookup, deliveryID: res.Deliveries[0].ID,
		worker: rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Test: river.TestConfig{Time: clock}}, worker),
	}
}

// target loads the rig's delivery.
func (r *fakeClockRig) target(t *testing.T) *store.Target {
	t.Helper()
	target, err := store.GetTarget(context.Background(), r.tx, r.deliveryID)
	require.NoError(t, err)
	return target
}

// work runs job jobID once at the clock's time.
func (r *fakeClockRig) work(t *testing.T, jobID int64) *rivertest.WorkResult {
	t.Helper()
	ctx := context.Background()
	job, err := r.lookup.JobGetTx(ctx, r.tx, jobID)
	require.NoError(t, err)
	result, err := r.worker.WorkJob(ctx, t, r.tx, job)
	require.NoError(t, err)
	return result
}
