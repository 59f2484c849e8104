package engine_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
)

// River UI is served at /riverui to admin keys only, sent as a Bearer token
// or as the password of HTTP Basic authentication.
func TestRiverUIAuth(t *testing.T) {
	t.Parallel()

	b := setupServer(t, nil)
	const adminKey = "test-admin-key-0123456789"
	base := "http://" + b.srv.Addr()

	get := func(t *testing.T, path string, set func(*http.Request)) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}
	bearer := func(key string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
	}
	basic := func(key string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth("anyone", key) }
	}

	// An account key, created through the API.
	req, err := http.NewRequest(http.MethodPost, base+"/v1/keys", strings.NewReader(`{"scope":"account","account_id":"acct_ui"}`))
	require.NoError(t, err)
	bearer(adminKey)(req)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	_, after, ok := strings.Cut(string(body), `"key":"`)
	require.True(t, ok, string(body))
	accountKey, _, _ := strings.Cut(after, `"`)

	t.Run("NoKey", func(t *testing.T) {
		resp, _ := get(t, "/riverui/", nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
	})
	t.Run("UnknownKey", func(t *testing.T) {
		resp, _ := get(t, "/riverui/", basic("not-a-key"))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
	t.Run("AccountKey", func(t *testing.T) {
		resp, _ := get(t, "/riverui/", bearer(accountKey))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		resp, _ = get(t, "/riverui/", basic(accountKey))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
	t.Run("AdminKeyBearer", func(t *testing.T) {
		resp, body := get(t, "/riverui/", bearer(adminKey))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
		require.Contains(t, strings.ToLower(body), "<html")
	})
	t.Run("AdminKeyBasic", func(t *testing.T) {
		resp, _ := get(t, "/riverui/", basic(adminKey))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
		// Its JSON API sits behind the same check.
		resp, _ = get(t, "/riverui/api/jobs?state=completed", basic(adminKey))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, _ = get(t, "/riverui/api/jobs?state=completed", nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

// River UI's retry and cancel buttons call River's JobRetry and JobCancel.
// Neither corrupts delivery state: a retried job of a succeeded delivery
// sends nothing, and a cancelled job of a pending delivery leaves it pending
// until the reconciler re-queues it, after which it is delivered once.
func TestRiverUIRetryAndCancel(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	signals := &server.TestSignals{}
	signals.Reconciler.PassDone.Init()
	b := setupServer(t, func(c *server.Config) {
		c.ReconcileInterval = 500 * time.Millisecond
		c.TestSignals = signals
		// A finished delivery's job is deleted unless kept; River UI can
		// retry only a kept one.
		c.KeepFinishedJobs = true
	})

	t.Run("RetrySucceeded", func(t *testing.T) {
		t.Parallel()

		recv := testreceiver.New(t, testreceiver.Status(200))
		createWebhook(t, b.pool, b.keys, "acct_ui_retry", recv.URL+"/")
		res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_ui_retry", Type: "ping", Data: rawJSON(`{}`)})
		id := res.Deliveries[0].ID
		require.Equal(t, store.StateSucceeded, waitFinished(t, b.pool, id, 10*time.Second).State)
		target, err := store.GetTarget(ctx, b.pool, id)
		require.NoError(t, err)
		jobID := *target.JobID
		waitJobState(t, b.srv.River(), jobID, rivertype.JobStateCompleted)

		job, err := b.srv.River().JobRetry(ctx, jobID)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateAvailable, job.State)
		waitJobState(t, b.srv.River(), jobID, rivertype.JobStateCompleted)
		job, err = b.srv.River().JobGet(ctx, jobID)
		require.NoError(t, err)
		require.Len(t, job.AttemptedBy, 2, "the retried job ran")

		d, err := store.GetDelivery(ctx, b.pool, id)
		require.NoError(t, err)
		require.Equal(t, store.StateSucceeded, d.State)
		require.Len(t, d.AttemptList, 1)
		require.Equal(t, 1, recv.Count(), "the retry sent nothing")
	})

	t.Run("CancelPending", func(t *testing.T) {
		t.Parallel()

		recv := testreceiver.New(t, testreceiver.Status(200))
		createWebhook(t, b.pool, b.keys, "acct_ui_cancel", recv.URL+"/")
		// The delivery's job is parked an hour out so that the cancel lands
		// on a job that has not run.
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		res, err := b.enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_ui_cancel", Type: "ping", Data: rawJSON(`{}`)})
		require.NoError(t, err)
		id := res.Deliveries[0].ID
		target, err := store.GetTarget(ctx, tx, id)
		require.NoError(t, err)
		jobID := *target.JobID
		_, err = tx.Exec(ctx, "UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '1 hour' WHERE id = $1", jobID)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))

		job, err := b.srv.River().JobCancel(ctx, jobID)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCancelled, job.State)

		// Still pending: the cancel finished the job, not the delivery.
		// (Unless the reconciler already gave it a new job.)
		target, err = store.GetTarget(ctx, b.pool, id)
		require.NoError(t, err)
		if *target.JobID == jobID {
			require.Equal(t, store.StatePending, target.State)
		}

		d := waitFinished(t, b.pool, id, 15*time.Second)
		require.Equal(t, store.StateSucceeded, d.State)
		require.Len(t, d.AttemptList, 1)
		target, err = store.GetTarget(ctx, b.pool, id)
		require.NoError(t, err)
		require.NotEqual(t, jobID, *target.JobID, "the reconciler gave it a new job")

		// Another whole reconciler pass (the one under way when the drain
		// runs may have read the delivery before it finished): nothing more
		// to do.
		signals.Reconciler.PassDone.Drain()
		for range 2 {
			require.NoError(t, signals.Reconciler.PassDone.WaitOrTimeout(t))
		}
		require.Equal(t, 1, recv.Count(), "delivered exactly once")
		d, err = store.GetDelivery(ctx, b.pool, id)
		require.NoError(t, err)
		require.Len(t, d.AttemptList, 1)
	})
}
