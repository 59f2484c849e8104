package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// ordering through POST, PATCH and GET ("none" by default, "fifo"),
// anything else refused naming the field; a dead head shows as
// fifo.blocked_by with the count waiting behind it, and POST
// /v1/webhooks/{id}/fifo/skip takes only that head out of the line (which
// then moves on), refusing anything else with nothing skipped.
func TestWebhookFIFOSetting(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))

	var hook apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks",
		body: `{"account_id":"acct_fifo","url":"` + recv.URL + `/hook","ordering":"fifo"}`}), http.StatusCreated, &hook)
	require.Equal(t, "fifo", hook.Ordering)
	require.NotNil(t, hook.FIFO)
	require.Nil(t, hook.FIFO.BlockedBy)
	get := func(id string) apitype.Webhook {
		var v apitype.Webhook
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + id}), http.StatusOK, &v)
		return v
	}
	require.Equal(t, "fifo", get(hook.ID).Ordering)

	// Bad input changes nothing.
	other := b.createWebhook(t, "acct_fifo_other", "https://fifo.example.com/hook")
	plain := get(other.ID)
	require.Equal(t, "none", plain.Ordering, "no order by default")
	require.Nil(t, plain.FIFO)
	patch := func(id, body string) *response {
		return b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + id, body: body})
	}
	requireError(t, patch(other.ID, `{"ordering":"lifo"}`), http.StatusUnprocessableEntity, "invalid_ordering", "ordering")
	requireError(t, patch(other.ID, `{"ordering":1}`), http.StatusBadRequest, "invalid_type", "ordering")
	requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks",
		body: `{"account_id":"acct_fifo","url":"https://fifo2.example.com/hook","ordering":"FIFO"}`}), http.StatusUnprocessableEntity, "invalid_ordering", "ordering")
	require.Equal(t, "none", get(other.ID).Ordering)
	skip := func(id, body string) *response {
		return b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + id + "/fifo/skip", body: body})
	}
	requireError(t, skip(other.ID, `{"delivery_id":"dlv_01a2463c9d2f7c4e92cefd79df658ddf"}`), http.StatusConflict, "not_fifo", "id")
	requireError(t, skip(hook.ID, `{}`), http.StatusUnprocessableEntity, "missing_field", "delivery_id")
	requireError(t, skip(hook.ID, `{"delivery_id":"wh_1"}`), http.StatusUnprocessableEntity, "invalid_delivery_id", "delivery_id")

	// Two events; the first dies (ten failures) and blocks the second.
	var ids []string
	for range 2 {
		var ev apitype.Enqueued
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_fifo","type":"ping","data":{}}`}), http.StatusAccepted, &ev)
		ids = append(ids, ev.Deliveries[0].ID)
	}
	testwait.For(t, 2*time.Minute, func() (bool, string) {
		v := get(hook.ID)
		return v.FIFO != nil && v.FIFO.BlockedBy != nil, fmt.Sprintf("the dead head does not block the line yet: %+v", v.FIFO)
	})
	v := get(hook.ID)
	require.Equal(t, ids[0], *v.FIFO.BlockedBy)
	require.EqualValues(t, 1, v.FIFO.Waiting)
	require.Equal(t, "pending", b.getDelivery(t, ids[1]).State)
	require.Empty(t, b.getDelivery(t, ids[1]).Attempts, "nothing behind a dead head is attempted")

	requireError(t, skip(hook.ID, `{"delivery_id":"`+ids[1]+`"}`), http.StatusConflict, "not_blocking", "delivery_id")
	recv.SetRespond(testreceiver.Status(http.StatusOK))
	jsonBody(t, skip(hook.ID, `{"delivery_id":"`+ids[0]+`"}`), http.StatusOK, &v)
	require.Nil(t, v.FIFO.BlockedBy)
	b.waitDeliveryState(t, ids[1], "succeeded")
	require.Equal(t, "dead", b.getDelivery(t, ids[0]).State, "a skipped head stays dead")

	// Switching back: no line any more.
	var switched apitype.Webhook
	jsonBody(t, patch(hook.ID, `{"ordering":"none"}`), http.StatusOK, &switched)
	require.Equal(t, "none", switched.Ordering)
	require.Nil(t, switched.FIFO)
	require.Equal(t, "none", get(hook.ID).Ordering)
}

// A skip made while the job waiting behind the dead head is running (it has
// just seen the head dead and is about to snooze for the blocked wait, 5
// minutes) still moves the line within seconds: the skip's own wake misses
// a running job, so the skip wakes the new head again once River has
// recorded that snooze. The test holds the job "running" across the skip
// and then records the 5-minute snooze itself, as River's completer would.
func TestFIFOSkipWakesAJobSnoozedDuringTheSkip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startServer(t, true)
	recv := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	var hook apitype.Webhook
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks",
		body: `{"account_id":"acct_fifo_race","url":"` + recv.URL + `/hook","ordering":"fifo"}`}), http.StatusCreated, &hook)
	var ids []string
	for range 2 {
		var ev apitype.Enqueued
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_fifo_race","type":"ping","data":{}}`}), http.StatusAccepted, &ev)
		ids = append(ids, ev.Deliveries[0].ID)
	}
	testwait.For(t, 2*time.Minute, func() (bool, string) {
		var v apitype.Webhook
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID}), http.StatusOK, &v)
		return v.FIFO != nil && v.FIFO.BlockedBy != nil, "the line is not blocked yet"
	})
	recv.SetRespond(testreceiver.Status(http.StatusOK))

	var jobID int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT job_id FROM deliveries WHERE id = $1`, ids[1]).Scan(&jobID))
	_, err := b.pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempted_at = now() WHERE id = $1`, jobID)
	require.NoError(t, err)
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/fifo/skip", body: `{"delivery_id":"` + ids[0] + `"}`}), http.StatusOK, new(apitype.Webhook))
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '5 minutes' WHERE id = $1`, jobID)
	require.NoError(t, err)

	b.waitDeliveryState(t, ids[1], "succeeded")
}
