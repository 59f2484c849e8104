package engine_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// handoffRig is an enqueuer handing deliveries off to a worker, with no
// River client working jobs: whatever is delivered, the hand-off sent.
type handoffRig struct {
	pool     *pgxpool.Pool
	enqueuer *engine.Enqueuer
	handoffs *engine.Handoffs
	recv     *testreceiver.Receiver
	keys     *keyring.Keyring
}

func newHandoffRig(t *testing.T, account string, places int, respond testreceiver.Respond) *handoffRig {
	t.Helper()
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	recv := testreceiver.New(t, respond)
	createWebhook(t, pool, keys, account, recv.URL+"/hook")
	client, err := outbound.NewClient(&outbound.Policy{AllowPrivate: true}, &outbound.ClientConfig{Timeout: 2 * time.Second})
	require.NoError(t, err)
	worker, err := engine.NewWorker(pool, keys, client, &engine.WorkerConfig{HTTPTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(worker.Close)
	handoffs, err := engine.NewHandoffs(worker, pool, &engine.HandoffsConfig{Max: places, Lease: time.Hour})
	require.NoError(t, err)
	enqueuer, err := engine.NewEnqueuer(nil, nil) // insert-only: nothing works River's jobs
	require.NoError(t, err)
	enqueuer.SetHandoffs(handoffs)
	return &handoffRig{pool: pool, enqueuer: enqueuer, handoffs: handoffs, recv: recv, keys: keys}
}

// enqueue stores events in one committed transaction and returns their
// results and the hand-off, not started.
func (r *handoffRig) enqueue(t *testing.T, events ...*engine.Event) ([]*engine.Enqueued, *engine.Handoff) {
	t.Helper()
	ctx := context.Background()
	tx, err := r.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	res, ho, err := r.enqueuer.EnqueueEach(ctx, tx, events)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return res, ho
}

type jobRow struct {
	state       string
	scheduledAt time.Time
	priority    int
}

// job is delivery id's job, ok false when it is gone.
func (r *handoffRig) job(t *testing.T, deliveryID string) (jobRow, bool) {
	t.Helper()
	var j jobRow
	err := r.pool.QueryRow(context.Background(), `
SELECT j.state::text, j.scheduled_at, j.priority FROM deliveries d JOIN river_job j ON j.id = d.job_id WHERE d.id = $1`, deliveryID).
		Scan(&j.state, &j.scheduledAt, &j.priority)
	if err != nil {
		require.ErrorContains(t, err, "no rows")
		return j, false
	}
	return j, true
}

// jobAsRiverSees is delivery id's job as River reads it, but for its id,
// its delivery, its state and its times.
func (r *handoffRig) jobAsRiverSees(t *testing.T, deliveryID string) string {
	t.Helper()
	var row string
	require.NoError(t, r.pool.QueryRow(context.Background(), `
SELECT jsonb_build_object('args', args - 'delivery_id', 'keys', (SELECT array_agg(k) FROM jsonb_object_keys(args) k),
    'kind', kind, 'queue', queue, 'priority', priority, 'max_attempts', max_attempts, 'metadata', metadata, 'tags', tags,
    'unique_key', unique_key, 'unique_states', unique_states, 'attempt', attempt, 'attempted_at', attempted_at,
    'attempted_by', attempted_by, 'errors', errors, 'finalized_at', finalized_at, 'recent', created_at > now() - interval '1 minute')::text
FROM river_job WHERE args->>'delivery_id' = $1`, deliveryID).Scan(&row))
	return row
}

func pingEvent(account string) *engine.Event {
	return &engine.Event{AccountID: account, Type: "ping", Data: rawJSON(`{"n":1}`)}
}

// A handed-off delivery's job waits a lease ahead, so that neither River's
// insert notification nor a fetch comes for it; after the commit the
// process makes the attempt itself, and the statement recording the
// success deletes the job. Over Max, a delivery is River's as before.
func TestHandoffFirstAttempt(t *testing.T) {
	t.Parallel()
	r := newHandoffRig(t, "acct_handoff", 1, testreceiver.Status(http.StatusOK))
	before := time.Now()
	res, ho := r.enqueue(t, pingEvent("acct_handoff"), pingEvent("acct_handoff"))
	handed, queued := res[0].Deliveries[0].ID, res[1].Deliveries[0].ID

	job, ok := r.job(t, handed)
	require.True(t, ok)
	require.Equal(t, "scheduled", job.state)
	require.WithinRange(t, job.scheduledAt, before.Add(time.Hour-time.Minute), time.Now().Add(time.Hour))
	job, ok = r.job(t, queued)
	require.True(t, ok)
	require.Equal(t, "available", job.state, "over Max: River's queue")
	require.Zero(t, r.recv.Count(), "nothing sent before Start")
	// The handed-off delivery's job, written with the event, is the row
	// River's insert wrote for the other, but for its id, its delivery
	// and its lease.
	handedRow := r.jobAsRiverSees(t, handed)
	require.Equal(t, r.jobAsRiverSees(t, queued), handedRow)
	require.Contains(t, handedRow, `"kind": "webhookd.delivery"`)

	ho.Start()
	reqs := r.recv.Wait(t, 1, 10*time.Second)
	require.Equal(t, res[0].EventID, reqs[0].Header.Get("Mono-Event-Id"))
	d := waitFinished(t, r.pool, handed, 10*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)
	require.Len(t, d.AttemptList, 1)
	_, ok = r.job(t, handed)
	require.False(t, ok, "the job is deleted with the last attempt")

	// The other waits for River, which this rig doesn't run.
	d, err := store.GetDelivery(context.Background(), r.pool, queued)
	require.NoError(t, err)
	require.Equal(t, store.StatePending, d.State)
	require.Equal(t, 1, r.recv.Count())

	// The place is free again: the next event is handed off.
	res, ho = r.enqueue(t, pingEvent("acct_handoff"))
	job, ok = r.job(t, res[0].Deliveries[0].ID)
	require.True(t, ok)
	require.Equal(t, "scheduled", job.state)
	ho.Start()
	require.Equal(t, store.StateSucceeded, waitFinished(t, r.pool, res[0].Deliveries[0].ID, 10*time.Second).State)
}

// A failed handed-off attempt leaves the job to River, due when the
// delivery's next attempt is.
func TestHandoffRetryIsRivers(t *testing.T) {
	t.Parallel()
	r := newHandoffRig(t, "acct_handoff_retry", 4, testreceiver.Status(http.StatusInternalServerError))
	res, ho := r.enqueue(t, pingEvent("acct_handoff_retry"))
	id := res[0].Deliveries[0].ID
	ho.Start()
	// GetDelivery reads the row and its attempts on one snapshot: the
	// row is the one the attempt's record wrote.
	d := waitAttempts(t, r.pool, id, 1, 10*time.Second)
	require.Equal(t, store.StatePending, d.State)
	require.Equal(t, 1, d.Attempts)
	require.NotNil(t, d.NextAttemptAt)
	// The job is moved after the attempt is recorded: wait for it.
	var job jobRow
	testwait.For(t, 10*time.Second, func() (bool, string) {
		var ok bool
		job, ok = r.job(t, id)
		require.True(t, ok)
		return job.scheduledAt.Before(time.Now().Add(time.Minute)), "job still on its lease: " + job.scheduledAt.String()
	})
	// The schedule's second attempt is 30 s after the first: River's
	// scheduler makes the job available then.
	require.Equal(t, "scheduled", job.state)
	require.WithinDuration(t, *d.NextAttemptAt, job.scheduledAt, 2*time.Second)
}

// A transaction that doesn't commit gives its places back (Release); once
// Handoffs has stopped, a hand-off goes to River's queue at once; and a
// stop cuts an attempt under way short, recorded as interrupted, its job
// River's at once.
func TestHandoffReleaseAndStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hang := make(chan struct{})
	r := newHandoffRig(t, "acct_handoff_stop", 1, func(n int, w http.ResponseWriter, req *http.Request) {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	defer close(hang)

	tx, err := r.pool.Begin(ctx)
	require.NoError(t, err)
	_, ho, err := r.enqueuer.EnqueueEach(ctx, tx, []*engine.Event{pingEvent("acct_handoff_stop")})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	ho.Release()

	// Its place is free: this one is handed off, and hangs.
	res, ho := r.enqueue(t, pingEvent("acct_handoff_stop"))
	hung := res[0].Deliveries[0].ID
	job, ok := r.job(t, hung)
	require.True(t, ok)
	require.Equal(t, "scheduled", job.state)
	ho.Start()
	r.recv.Wait(t, 1, 10*time.Second)

	// The one place is taken: this one is River's.
	res, _ = r.enqueue(t, pingEvent("acct_handoff_stop"))
	job, ok = r.job(t, res[0].Deliveries[0].ID)
	require.True(t, ok)
	require.Equal(t, "available", job.state)

	stopCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	r.handoffs.Stop(stopCtx)
	d := waitAttempts(t, r.pool, hung, 1, 10*time.Second)
	require.Equal(t, store.StatePending, d.State)
	require.NotNil(t, d.AttemptList[0].ErrorKind)
	require.Equal(t, engine.ErrorKindInterrupted, *d.AttemptList[0].ErrorKind)
	require.Zero(t, d.Attempts, "an interrupted attempt doesn't count")
	job, ok = r.job(t, hung)
	require.True(t, ok)
	require.Equal(t, "available", job.state, "given to River at once")
	require.WithinDuration(t, time.Now(), job.scheduledAt, 5*time.Second)

	// Planned before the stop, started after it: River's at once.
	stopped := newHandoffRig(t, "acct_handoff_stopped", 4, testreceiver.Status(http.StatusOK))
	res, ho = stopped.enqueue(t, pingEvent("acct_handoff_stopped"))
	job, ok = stopped.job(t, res[0].Deliveries[0].ID)
	require.True(t, ok)
	require.Equal(t, "scheduled", job.state)
	stopped.handoffs.Stop(ctx)
	ho.Start()
	job, ok = stopped.job(t, res[0].Deliveries[0].ID)
	require.True(t, ok)
	require.Equal(t, "available", job.state)
	require.Zero(t, stopped.recv.Count())
}

// A hand-off never started (the process died after the commit) is River's
// at the end of its lease: a server's workers deliver it then.
func TestHandoffNotStartedIsRiversAtLease(t *testing.T) {
	t.Parallel()
	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	createWebhook(t, b.pool, b.keys, "acct_handoff_lease", recv.URL+"/hook")
	client, err := outbound.NewClient(&outbound.Policy{AllowPrivate: true}, &outbound.ClientConfig{Timeout: 2 * time.Second})
	require.NoError(t, err)
	dead, err := engine.NewWorker(b.pool, b.keys, client, nil) // the dead process's: never runs
	require.NoError(t, err)
	handoffs, err := engine.NewHandoffs(dead, b.pool, &engine.HandoffsConfig{Max: 1, Lease: time.Second})
	require.NoError(t, err)
	enqueuer, err := engine.NewEnqueuer(b.srv.River(), nil)
	require.NoError(t, err)
	enqueuer.SetHandoffs(handoffs)
	r := &handoffRig{pool: b.pool, enqueuer: enqueuer, handoffs: handoffs, recv: recv}

	res, _ := r.enqueue(t, pingEvent("acct_handoff_lease")) // not started
	id := res[0].Deliveries[0].ID
	job, ok := r.job(t, id)
	require.True(t, ok)
	require.Equal(t, "scheduled", job.state)
	// River's scheduler makes due jobs available every few seconds.
	d := waitFinished(t, b.pool, id, 30*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)
	require.Len(t, d.AttemptList, 1)
	require.Equal(t, 1, recv.Count())
	require.False(t, recv.Requests()[0].At.Before(job.scheduledAt), "not before the lease ended")
}

// A handed-off first attempt uses the target made at its enqueue instead
// of loading it: the same Target that GetTarget loads once the event has
// committed, for a webhook with everything an attempt reads set (custom
// headers, a previous secret, a client certificate) and an event with a
// traceparent.
func TestHandoffTargetIsTheLoadedOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newHandoffRig(t, "acct_handoff_target", 2, testreceiver.Status(http.StatusOK))
	expires := time.Now().Add(time.Hour)
	_, err := r.pool.Exec(ctx, `UPDATE webhooks SET headers_ciphertext = '\x0102', headers_key_id = 'k1',
	    previous_secret_ciphertext = '\x0304', previous_secret_key_id = 'k0', previous_secret_expires_at = $2,
	    tls_ciphertext = '\x0506', tls_key_id = 'k2', tls_ca_bundle = 'bundle' WHERE account_id = $1`, "acct_handoff_target", expires)
	require.NoError(t, err)
	ev := pingEvent("acct_handoff_target")
	ev.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res, ho := r.enqueue(t, ev)
	defer ho.Release()
	id := res[0].Deliveries[0].ID

	made := engine.HandoffTargets(ho)[id]
	require.NotNil(t, made, "the hand-off carries its target")
	loaded, err := store.GetTarget(ctx, r.pool, id)
	require.NoError(t, err)
	require.NotNil(t, loaded.HeadersCipher)
	require.NotNil(t, loaded.PreviousSecretExpiresAt)
	require.NotNil(t, loaded.TLSCABundle)
	require.NotNil(t, loaded.Traceparent)
	require.Equal(t, inUTC(loaded), inUTC(made))
}

// inUTC is t with its times in UTC (loaded ones come in the local zone).
func inUTC(t *store.Target) store.Target {
	c := *t
	utc := func(p *time.Time) *time.Time {
		if p == nil {
			return nil
		}
		u := p.UTC()
		return &u
	}
	c.CreatedAt, c.PartDay = c.CreatedAt.UTC(), c.PartDay.UTC()
	c.NextAttemptAt, c.PreviousSecretExpiresAt, c.ThrottleSlot = utc(c.NextAttemptAt), utc(c.PreviousSecretExpiresAt), utc(c.ThrottleSlot)
	return c
}

// A burst's excess (an account over its fair share: bulk priority) is
// handed off while fewer than half of Max are under way, its job at bulk
// priority as River's insert writes it; over half it is River's, while a
// delivery within its account's share still takes a place above half.
func TestHandoffBurstExcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const account, other = "acct_handoff_burst", "acct_handoff_share"
	r := newHandoffRig(t, account, 4, testreceiver.Status(http.StatusOK))
	createWebhook(t, r.pool, r.keys, other, r.recv.URL+"/hook")
	// A clock that stands still: the account's share never refills.
	at := time.Now()
	enqueuer, err := engine.NewEnqueuerWithConfig(nil, &engine.EnqueuerConfig{Now: func() time.Time { return at }})
	require.NoError(t, err)
	enqueuer.SetHandoffs(r.handoffs)
	r.enqueuer = enqueuer

	// A burst uses up the account's share (the transaction rolls back:
	// the share is drawn at enqueue).
	burst := make([]*engine.Event, int(engine.FairBurstDefault))
	for i := range burst {
		burst[i] = pingEvent(account)
	}
	tx, err := r.pool.Begin(ctx)
	require.NoError(t, err)
	_, ho, err := r.enqueuer.EnqueueEach(ctx, tx, burst)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	ho.Release()

	// Over its share: two of the four places (half), then River's queue.
	res, ho := r.enqueue(t, pingEvent(account), pingEvent(account), pingEvent(account))
	for k, want := range []string{"scheduled", "scheduled", "available"} {
		job, ok := r.job(t, res[k].Deliveries[0].ID)
		require.True(t, ok)
		require.Equal(t, want, job.state, "delivery %d", k)
		require.Equal(t, engine.PriorityBulk, job.priority, "delivery %d", k)
	}
	queued := res[2].Deliveries[0].ID
	// The handed-off excess's job is the row River's insert wrote for the
	// third.
	require.Equal(t, r.jobAsRiverSees(t, queued), r.jobAsRiverSees(t, res[0].Deliveries[0].ID))

	// Another account within its share takes a place above half.
	mine, hoMine := r.enqueue(t, pingEvent(other))
	job, ok := r.job(t, mine[0].Deliveries[0].ID)
	require.True(t, ok)
	require.Equal(t, "scheduled", job.state)
	require.Equal(t, engine.PriorityNormal, job.priority)

	ho.Start()
	hoMine.Start()
	for _, id := range []string{res[0].Deliveries[0].ID, res[1].Deliveries[0].ID, mine[0].Deliveries[0].ID} {
		require.Equal(t, store.StateSucceeded, waitFinished(t, r.pool, id, 10*time.Second).State)
		_, ok := r.job(t, id)
		require.False(t, ok, "the job is deleted with the last attempt")
	}
	d, err := store.GetDelivery(ctx, r.pool, queued)
	require.NoError(t, err)
	require.Equal(t, store.StatePending, d.State, "River's, which this rig doesn't run")
	require.Equal(t, 3, r.recv.Count())

	// The places are free again: the excess is handed off.
	res, ho = r.enqueue(t, pingEvent(account))
	job, ok = r.job(t, res[0].Deliveries[0].ID)
	require.True(t, ok)
	require.Equal(t, "scheduled", job.state)
	require.Equal(t, engine.PriorityBulk, job.priority)
	ho.Start()
	require.Equal(t, store.StateSucceeded, waitFinished(t, r.pool, res[0].Deliveries[0].ID, 10*time.Second).State)
}
