package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/schedule"
)

// The whole 8.44 h schedule on a fake clock: a receiver that always answers
// 500 gets exactly ten attempts, the gaps are exactly the table's, and the
// delivery ends dead with every attempt recorded.
func TestFullScheduleFakeClock(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	recv := testreceiver.New(t, testreceiver.Status(500))
	rig := newFakeClockRig(t, recv.URL+"/", "acct_sched")
	tx, clock, deliveryID := rig.tx, rig.clock, rig.deliveryID
	start := clock.Now()
	jobID := *rig.target(t).JobID

	for attempt := 1; attempt <= schedule.MaxAttempts; attempt++ {
		target := rig.target(t)
		require.Equal(t, store.StatePending, target.State)
		require.Equal(t, attempt-1, target.Attempts)

		if attempt > 1 {
			// One microsecond early: the worker snoozes and sends nothing.
			clock.Set(target.NextAttemptAt.Add(-time.Microsecond))
			result := rig.work(t, jobID)
			require.Equal(t, river.EventKindJobSnoozed, result.EventKind)
			require.Equal(t, attempt-1, recv.Count(), "nothing sent before the attempt is due")
		}

		clock.Set(*target.NextAttemptAt)
		result := rig.work(t, jobID)
		require.Equal(t, attempt, recv.Count())
		if attempt < schedule.MaxAttempts {
			require.Equal(t, river.EventKindJobSnoozed, result.EventKind, "attempt %d", attempt)
		} else {
			require.Equal(t, river.EventKindJobCompleted, result.EventKind, "attempt %d", attempt)
		}
	}

	d, err := store.GetDelivery(ctx, tx, deliveryID)
	require.NoError(t, err)
	require.Equal(t, store.StateDead, d.State)
	require.Equal(t, schedule.MaxAttempts, d.Attempts)
	require.Nil(t, d.NextAttemptAt)
	require.Len(t, d.AttemptList, schedule.MaxAttempts)

	wantGaps := []int64{30, 90, 210, 450, 930, 1890, 3810, 7650, 15330}
	reqs := recv.Requests()
	require.Len(t, reqs, schedule.MaxAttempts)
	for i, a := range d.AttemptList {
		require.Equal(t, i+1, a.Number)
		require.Equal(t, 1, a.Generation)
		require.True(t, a.Counted)
		require.Equal(t, 500, *a.StatusCode)
		require.Equal(t, "http_status", *a.ErrorKind)
		require.True(t, a.ScheduledAt.Equal(a.StartedAt), "attempt %d started when scheduled", i+1)
		// Each attempt is signed with its own time.
		require.Equal(t, a.StartedAt.Unix(), a.SignatureT)
		require.True(t, strings.HasPrefix(reqs[i].Header.Get("Mono-Signature"), "t="+strconv.FormatInt(a.SignatureT, 10)+",v1="))
		if i > 0 {
			gap := a.StartedAt.Sub(d.AttemptList[i-1].StartedAt)
			require.Equal(t, time.Duration(wantGaps[i-1])*time.Second, gap, "gap before attempt %d", i+1)
		}
	}
	total := d.AttemptList[9].StartedAt.Sub(start)
	require.Equal(t, 30390*time.Second, total)

	// The job is done; running it again (a stray River retry) sends nothing.
	job, err := rig.lookup.JobGetTx(ctx, tx, jobID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, job.State)
	job, err = rig.lookup.JobRetryTx(ctx, tx, jobID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateAvailable, job.State)
	rig.work(t, jobID)
	require.Equal(t, schedule.MaxAttempts, recv.Count())
}

// A stale job — a second job for the same delivery, or a River-level retry
// of a finished job — sends nothing.
func TestStaleJobs(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	signals := &server.TestSignals{}
	signals.Worker.JobDone.Init()
	// Finished jobs kept (WEBHOOKD_KEEP_FINISHED_JOBS), for River's retry
	// of one.
	b := setupServer(t, func(c *server.Config) { c.TestSignals = signals; c.KeepFinishedJobs = true })
	recv := testreceiver.New(t, testreceiver.Status(200))
	createWebhook(t, b.pool, b.keys, "acct_stale", recv.URL+"/")
	res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_stale", Type: "ping", Data: rawJSON(`{}`)})
	deliveryID := res.Deliveries[0].ID
	d := waitFinished(t, b.pool, deliveryID, 10*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)
	target, err := store.GetTarget(ctx, b.pool, deliveryID)
	require.NoError(t, err)
	originalJob := *target.JobID

	// A second job for the same delivery.
	inserted, err := b.srv.River().Insert(ctx, engine.DeliveryArgs{DeliveryID: deliveryID}, nil)
	require.NoError(t, err)
	waitJobState(t, b.srv.River(), inserted.Job.ID, rivertype.JobStateCompleted)

	// A River-level retry (River UI's button) of the finished job.
	_, err = b.srv.River().JobRetry(ctx, originalJob)
	require.NoError(t, err)
	waitJobState(t, b.srv.River(), originalJob, rivertype.JobStateCompleted)

	// A second job while the delivery is pending, due, and served by its
	// own job (parked an hour out so it can't send meanwhile): the intruder
	// finds job_id is not its own and sends nothing.
	failing := testreceiver.New(t, testreceiver.Status(500))
	createWebhook(t, b.pool, b.keys, "acct_stale2", failing.URL+"/")
	res2 := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_stale2", Type: "ping", Data: rawJSON(`{}`)})
	pendingID := res2.Deliveries[0].ID
	waitAttempts(t, b.pool, pendingID, 1, 10*time.Second)
	target2, err := store.GetTarget(ctx, b.pool, pendingID)
	require.NoError(t, err)
	ownJob := *target2.JobID
	// The job retries every few ms at this scale: park it between runs.
	for parked := false; !parked; {
		waitJobState(t, b.srv.River(), ownJob, rivertype.JobStateScheduled, rivertype.JobStateAvailable)
		tag, err := b.pool.Exec(ctx, "UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '1 hour' WHERE id = $1 AND state IN ('scheduled', 'available')", ownJob)
		require.NoError(t, err)
		parked = tag.RowsAffected() == 1
	}
	// Every request the receiver got is recorded as an attempt (a run
	// that ended just before parking commits its attempt after answering).
	testwait.For(t, 10*time.Second, func() (bool, string) {
		d, err := store.GetDelivery(ctx, b.pool, pendingID)
		require.NoError(t, err)
		return len(d.AttemptList) == failing.Count(), fmt.Sprintf("%d attempts recorded, %d requests received", len(d.AttemptList), failing.Count())
	})
	_, err = b.pool.Exec(ctx, "UPDATE deliveries SET next_attempt_at = now() - interval '1 second' WHERE id = $1", pendingID)
	require.NoError(t, err)
	before := failing.Count()
	intruder, err := b.srv.River().Insert(ctx, engine.DeliveryArgs{DeliveryID: pendingID}, nil)
	require.NoError(t, err)
	// The worker's signal: the intruder's run has ended, so whatever it
	// sent has been received.
	done := waitJobDone(t, signals, intruder.Job.ID)
	require.NoError(t, done.Err)
	require.Equal(t, pendingID, done.DeliveryID)
	require.Equal(t, 1, recv.Count(), "stale jobs never send")
	require.Equal(t, before, failing.Count(), "the intruder sent nothing")
	d2, err := store.GetDelivery(ctx, b.pool, pendingID)
	require.NoError(t, err)
	require.Equal(t, store.StatePending, d2.State)
	require.Len(t, d2.AttemptList, before)
}

func waitJobState(t *testing.T, client *river.Client[pgx.Tx], jobID int64, states ...rivertype.JobState) {
	t.Helper()
	testwait.For(t, 10*time.Second, func() (bool, string) {
		job, err := client.JobGet(context.Background(), jobID)
		require.NoError(t, err)
		return slices.Contains(states, job.State), fmt.Sprintf("job %d is %s, want %v", jobID, job.State, states)
	})
}

// waitJobDone reads the worker's JobDone signals until job jobID's run
// ends, and returns that signal.
func waitJobDone(t *testing.T, signals *server.TestSignals, jobID int64) engine.WorkerJobDone {
	t.Helper()
	for {
		if done := signals.Worker.JobDone.WaitOrTimeout(t); done.JobID == jobID {
			return done
		}
	}
}

// A webhook deleted after the event was accepted: the delivery is
// cancelled and nothing is sent.
func TestWebhookDeletedCancels(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Status(200))
	webhookID, _ := createWebhook(t, b.pool, b.keys, "acct_gone", recv.URL+"/")

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	res, err := b.enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_gone", Type: "ping", Data: rawJSON(`{}`)})
	require.NoError(t, err)
	// Deleted behind the API's back, so the worker is the one to notice.
	_, err = tx.Exec(ctx, "UPDATE webhooks SET deleted_at = now() WHERE id = $1", webhookID)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	d := waitFinished(t, b.pool, res.Deliveries[0].ID, 10*time.Second)
	require.Equal(t, store.StateCancelled, d.State)
	require.Empty(t, d.AttemptList)
	require.Zero(t, recv.Count())

	// An account whose only webhook is deleted gets no deliveries at all.
	res2 := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_gone", Type: "ping", Data: rawJSON(`{}`)})
	require.Empty(t, res2.Deliveries)
}

// The reconciler re-queues a pending delivery whose job is missing or was
// discarded, and it is then delivered.
func TestReconciler(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setupServer(t, func(c *server.Config) { c.ReconcileInterval = 500 * time.Millisecond })
	recv := testreceiver.New(t, testreceiver.Status(200))
	createWebhook(t, b.pool, b.keys, "acct_orphan", recv.URL+"/")

	orphan := func(sql string) (string, int64) {
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		res, err := b.enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_orphan", Type: "ping", Data: rawJSON(`{}`)})
		require.NoError(t, err)
		target, err := store.GetTarget(ctx, tx, res.Deliveries[0].ID)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, sql, *target.JobID)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		return res.Deliveries[0].ID, *target.JobID
	}
	missing, missingJob := orphan("DELETE FROM river_job WHERE id = $1")
	discarded, discardedJob := orphan("UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = $1")

	for id, oldJob := range map[string]int64{missing: missingJob, discarded: discardedJob} {
		d := waitFinished(t, b.pool, id, 15*time.Second)
		require.Equal(t, store.StateSucceeded, d.State)
		require.Len(t, d.AttemptList, 1)
		target, err := store.GetTarget(ctx, b.pool, id)
		require.NoError(t, err)
		require.NotEqual(t, oldJob, *target.JobID, "a new job took over")
	}
	require.Equal(t, 2, recv.Count())
}

// A secret encrypted under a key that is no longer configured: nothing is
// sent, each attempt fails as secret_unavailable, and the delivery ends dead
// (replayable once the key is back) instead of hanging pending.
func TestSecretUnavailable(t *testing.T) {
	t.Parallel()

	b := setupServer(t, func(c *server.Config) { c.RetryScale = 0.0001 })
	recv := testreceiver.New(t, testreceiver.Status(200))
	otherKeys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	createWebhook(t, b.pool, otherKeys, "acct_lostkey", recv.URL+"/")
	res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_lostkey", Type: "ping", Data: rawJSON(`{}`)})

	d := waitFinished(t, b.pool, res.Deliveries[0].ID, 20*time.Second)
	require.Equal(t, store.StateDead, d.State)
	require.Len(t, d.AttemptList, schedule.MaxAttempts)
	for _, a := range d.AttemptList {
		require.Equal(t, engine.ErrorKindSecretUnavailable, *a.ErrorKind)
		require.Contains(t, *a.ErrorMessage, "WEBHOOKD_ENCRYPTION_KEY")
		require.Nil(t, a.StatusCode)
	}
	require.Zero(t, recv.Count())
}

// The reconciler walks the pending deliveries a slice at a time, in job id
// order from where its last pass stopped, wrapping round at the end: each
// pass fixes the orphans of its own slice (and any delivery with no job at
// all), and the walk reaches every one.
func TestReconcilerWalksInSlices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Insert-only: no worker sends, so every delivery stays pending.
	b := setupInsertOnly(t)
	pool, client, enqueuer := b.pool, b.client, b.enqueuer
	createWebhook(t, pool, b.keys, "acct_walk", "https://example.com/hook")

	type pending struct {
		id  string
		job int64
	}
	var ds []pending // in job id order
	for range 7 {
		res := enqueue(t, pool, enqueuer, &engine.Event{AccountID: "acct_walk", Type: "ping", Data: rawJSON(`{}`)})
		target, err := store.GetTarget(ctx, pool, res.Deliveries[0].ID)
		require.NoError(t, err)
		ds = append(ds, pending{res.Deliveries[0].ID, *target.JobID})
	}
	jobOf := func(id string) *int64 {
		target, err := store.GetTarget(ctx, pool, id)
		require.NoError(t, err)
		return target.JobID
	}
	// Orphans: the 2nd's job deleted, the 6th's cancelled, the 4th has none.
	_, err := pool.Exec(ctx, `DELETE FROM river_job WHERE id = $1`, ds[1].job)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1`, ds[5].job)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE deliveries SET job_id = NULL WHERE id = $1`, ds[3].id)
	require.NoError(t, err)

	r := engine.NewReconcilerWithConfig(pool, &engine.ReconcilerConfig{Slice: 3})
	pass := func() int {
		n, err := r.Reconcile(ctx, client)
		require.NoError(t, err)
		return n
	}

	// Pass 1: the jobless one, and the 1st to 3rd (the 2nd an orphan); the
	// 6th is not looked at yet.
	require.Equal(t, 2, pass())
	require.NotNil(t, jobOf(ds[3].id))
	require.NotEqual(t, ds[1].job, *jobOf(ds[1].id))
	require.Equal(t, ds[5].job, *jobOf(ds[5].id), "outside the first slice")
	// Pass 2: the 5th to 7th (the 4th now has a new, later job).
	require.Equal(t, 1, pass())
	require.NotEqual(t, ds[5].job, *jobOf(ds[5].id))
	// Passes 3 and 4: the re-queued ones, then round again from the start:
	// nothing left to fix.
	require.Equal(t, 0, pass())
	require.Equal(t, 0, pass())
	var orphans int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM deliveries d LEFT JOIN river_job j ON j.id = d.job_id
WHERE d.state = 'pending' AND (j.id IS NULL OR j.state = 'cancelled')`).Scan(&orphans))
	require.Zero(t, orphans)
	require.Equal(t, int64(3), r.Fixed())
}

// A finished delivery's River job is deleted by the statement that records
// its last attempt, unless KeepFinishedJobs keeps it, completed (River
// UI's view); either way the delivery and its attempt are the record. A
// failed attempt's job stays, snoozed until the next attempt is due.
func TestFinishedJobs(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%t", keep), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			signals := &server.TestSignals{}
			signals.Worker.JobDone.Init()
			b := setupServer(t, func(c *server.Config) { c.TestSignals = signals; c.KeepFinishedJobs = keep })
			ok := testreceiver.New(t, testreceiver.Status(200))
			failing := testreceiver.New(t, testreceiver.Status(500))
			createWebhook(t, b.pool, b.keys, "acct_fin_ok", ok.URL+"/")
			createWebhook(t, b.pool, b.keys, "acct_fin_fail", failing.URL+"/")

			succeeded := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_fin_ok", Type: "ping", Data: rawJSON(`{}`)}).Deliveries[0].ID
			d := waitFinished(t, b.pool, succeeded, 10*time.Second)
			require.Equal(t, store.StateSucceeded, d.State)
			require.Len(t, d.AttemptList, 1)
			target, err := store.GetTarget(ctx, b.pool, succeeded)
			require.NoError(t, err)
			if keep {
				waitJobState(t, b.srv.River(), *target.JobID, rivertype.JobStateCompleted)
			} else {
				_, err = b.srv.River().JobGet(ctx, *target.JobID)
				require.ErrorIs(t, err, rivertype.ErrNotFound, "the succeeded delivery's job is gone once its attempt is recorded")
			}

			retried := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_fin_fail", Type: "ping", Data: rawJSON(`{}`)}).Deliveries[0].ID
			target, err = store.GetTarget(ctx, b.pool, retried)
			require.NoError(t, err)
			done := waitJobDone(t, signals, *target.JobID)
			var snoozed *river.JobSnoozeError
			require.ErrorAs(t, done.Err, &snoozed, "the failed attempt's job snoozes")
			d, err = store.GetDelivery(ctx, b.pool, retried)
			require.NoError(t, err)
			require.Equal(t, store.StatePending, d.State)
			require.Len(t, d.AttemptList, 1)
			waitJobState(t, b.srv.River(), *target.JobID, rivertype.JobStateScheduled)
		})
	}
}
