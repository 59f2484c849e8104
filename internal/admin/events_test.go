package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/testreceiver"
)

// itemError is one entry of a batch error's items.
type itemError struct {
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
	Code  string `json:"code"`
}

// requireBatchError asserts the batch error shape,
// {"error":{"code","message","field":"events","items":[{"index","field","code","message"}]}},
// with status, code and exactly items (messages only checked non-empty).
func requireBatchError(t *testing.T, resp *response, status int, code string, items []itemError) {
	t.Helper()
	require.Equal(t, status, resp.status, "body: %s", resp.body)
	require.Equal(t, "application/json", resp.header.Get("Content-Type"))
	var out struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
			Items   []struct {
				itemError
				Message string `json:"message"`
			} `json:"items"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&out), "body: %s", resp.body)
	require.Equal(t, code, out.Error.Code, "body: %s", resp.body)
	require.NotEmpty(t, out.Error.Message)
	require.Equal(t, "events", out.Error.Field)
	got := make([]itemError, len(out.Error.Items))
	for i, it := range out.Error.Items {
		require.NotEmpty(t, it.Message, "body: %s", resp.body)
		got[i] = it.itemError
	}
	require.Equal(t, items, got, "body: %s", resp.body)
}

// batch builds a batch body from events given as JSON objects.
func batch(events ...string) string {
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

func TestEventBatch(t *testing.T) {
	t.Parallel()

	// Private networks are allowed so that webhooks can point at the test
	// receiver. The subtests count rows, so they run in turn.
	bundle := startServer(t, true)
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return bundle
	}
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hookA1 := bundle.createWebhook(t, "acct_batch_a", rcv.URL+"/a1")
	hookA2 := bundle.createWebhook(t, "acct_batch_a", rcv.URL+"/a2")
	hookB := bundle.createWebhook(t, "acct_batch_b", rcv.URL+"/b")

	t.Run("Accepted", func(t *testing.T) {
		b := setup(t)
		waitSettled(t, b.pool)
		before := countRows(t, b.pool)
		sent := rcv.Count()

		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: batch(
			`{"account_id":"acct_batch_a","type":"payment.created","data":{"n":0,"note":"<&>"}}`,
			`{"account_id":"acct_batch_b","type":"payment.created","data":{"n":1}}`,
			`{"account_id":"acct_batch_nobody","type":"payment.created","data":{"n":2}}`,
			`{"account_id":"acct_batch_a","type":"payment.updated","data":{"n":3},"idempotency_key":"batch-accepted-1"}`,
		)})
		var out apitype.List[apitype.EventBatchItem]
		jsonBody(t, resp, http.StatusAccepted, &out)
		require.Len(t, out.Data, 4)
		wantHooks := [][]string{{hookA1.ID, hookA2.ID}, {hookB.ID}, {}, {hookA1.ID, hookA2.ID}}
		for i, item := range out.Data {
			require.True(t, ident.Valid(ident.Event, item.ID), item.ID)
			require.False(t, item.Repeat)
			hooks := []string{}
			for _, d := range item.Deliveries {
				require.True(t, ident.Valid(ident.Delivery, d.ID), d.ID)
				hooks = append(hooks, d.WebhookID)
			}
			require.Equal(t, wantHooks[i], hooks, "event %d", i)
		}

		after := countRows(t, b.pool)
		require.Equal(t, before.Events+4, after.Events)
		require.Equal(t, before.Deliveries+5, after.Deliveries)
		// Each delivery has a job of its own. A handed-off delivery's job
		// is deleted by the statement that records its first attempt's
		// success, which can run before this count (the attempt starts at
		// the COMMIT, before the 202 is read): a job gone from river_job
		// must be a succeeded delivery's.
		var ids []string
		for _, item := range out.Data {
			for _, d := range item.Deliveries {
				ids = append(ids, d.ID)
			}
		}
		var withJob, jobs, goneUnfinished int
		require.NoError(t, b.pool.QueryRow(t.Context(), `
SELECT count(d.job_id), count(DISTINCT d.job_id),
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = d.job_id) AND d.state <> 'succeeded')
FROM deliveries d WHERE d.id = ANY($1)`, ids).Scan(&withJob, &jobs, &goneUnfinished))
		require.Equal(t, 5, withJob, "every delivery points at a job")
		require.Equal(t, 5, jobs, "a job of its own")
		require.Zero(t, goneUnfinished, "a job missing for a delivery that has not succeeded")
		require.LessOrEqual(t, after.DeliveryJobs, before.DeliveryJobs+5, "no job beyond the deliveries'")
		require.Equal(t, before.IdempotencyKeys+1, after.IdempotencyKeys)

		// Every delivery arrives, with the event's id and exact body.
		reqs := rcv.Wait(t, sent+5, 10*time.Second)[sent:]
		byEvent := map[string][]string{}
		for _, r := range reqs {
			byEvent[r.Header.Get("Mono-Event-Id")] = append(byEvent[r.Header.Get("Mono-Event-Id")], string(r.Body))
		}
		require.Len(t, byEvent[out.Data[0].ID], 2)
		require.Contains(t, byEvent[out.Data[0].ID][0], `{"event":{"data":{"n":0,"note":"<&>"},"type":"payment.created"},"timestamp":"`)

		// GET /v1/events/{id}: the stored body as JSON, and the deliveries.
		waitSettled(t, b.pool)
		var ev apitype.Event
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/events/" + out.Data[0].ID}), http.StatusOK, &ev)
		require.Equal(t, out.Data[0].ID, ev.ID)
		require.Equal(t, "acct_batch_a", ev.AccountID)
		require.Equal(t, "payment.created", ev.Type)
		require.Nil(t, ev.IdempotencyKey)
		require.Equal(t, byEvent[out.Data[0].ID][0], string(ev.Body))
		require.Len(t, ev.Deliveries, 2)
		for i, d := range ev.Deliveries {
			require.Equal(t, out.Data[0].Deliveries[i].ID, d.ID)
			require.Equal(t, out.Data[0].Deliveries[i].WebhookID, d.WebhookID)
			require.Equal(t, "succeeded", d.State)
		}
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/events/" + out.Data[2].ID}), http.StatusOK, &ev)
		require.Empty(t, ev.Deliveries)

		// GET /v1/events?idempotency_key finds the keyed one.
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/events?account_id=acct_batch_a&idempotency_key=batch-accepted-1"}), http.StatusOK, &ev)
		require.Equal(t, out.Data[3].ID, ev.ID)
		require.Equal(t, "batch-accepted-1", *ev.IdempotencyKey)
		require.Len(t, ev.Deliveries, 2)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/events?account_id=acct_batch_b&idempotency_key=batch-accepted-1"}), http.StatusNotFound, "not_found", "id")
	})

	t.Run("IdempotencyPerItem", func(t *testing.T) {
		b := setup(t)

		first := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: batch(
			`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":1},"idempotency_key":"k1"}`,
			`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":2},"idempotency_key":"k2"}`,
		)})
		var one apitype.List[apitype.EventBatchItem]
		jsonBody(t, first, http.StatusAccepted, &one)
		waitSettled(t, b.pool)

		// A repeated item returns its original; a new one is created.
		before := countRows(t, b.pool)
		var two apitype.List[apitype.EventBatchItem]
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: batch(
			`{"account_id":"acct_batch_a","type":"invoice.paid","data":{ "n" : 1 },"idempotency_key":"k1"}`,
			`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":3},"idempotency_key":"k3"}`,
		)}), http.StatusAccepted, &two)
		require.True(t, two.Data[0].Repeat)
		require.Equal(t, one.Data[0].ID, two.Data[0].ID)
		require.Equal(t, one.Data[0].Deliveries, two.Data[0].Deliveries)
		require.False(t, two.Data[1].Repeat)
		after := countRows(t, b.pool)
		require.Equal(t, before.Events+1, after.Events)
		require.Equal(t, before.Deliveries+2, after.Deliveries)
		waitSettled(t, b.pool)

		// The same key twice in one batch: the second is the first.
		var three apitype.List[apitype.EventBatchItem]
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: batch(
			`{"account_id":"acct_batch_b","type":"invoice.paid","data":{"n":4},"idempotency_key":"k4"}`,
			`{"account_id":"acct_batch_b","type":"invoice.paid","data":{"n":4},"idempotency_key":"k4"}`,
			`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":4},"idempotency_key":"k4"}`,
		)}), http.StatusAccepted, &three)
		require.False(t, three.Data[0].Repeat)
		require.True(t, three.Data[1].Repeat)
		require.Equal(t, three.Data[0].ID, three.Data[1].ID)
		require.Equal(t, three.Data[0].Deliveries, three.Data[1].Deliveries)
		require.False(t, three.Data[2].Repeat, "keys are per account")
		require.NotEqual(t, three.Data[0].ID, three.Data[2].ID)
		waitSettled(t, b.pool)

		// A batch of repeats only: 200, the same answer, nothing stored.
		before = countRows(t, b.pool)
		again := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: batch(
			`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":1},"idempotency_key":"k1"}`,
			`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":2},"idempotency_key":"k2"}`,
		)})
		var four apitype.List[apitype.EventBatchItem]
		jsonBody(t, again, http.StatusOK, &four)
		for i := range four.Data {
			require.True(t, four.Data[i].Repeat)
			require.Equal(t, one.Data[i].ID, four.Data[i].ID)
			require.Equal(t, one.Data[i].Deliveries, four.Data[i].Deliveries)
		}
		require.Equal(t, before, countRows(t, b.pool))

		// POST /v1/events and the batch share keys.
		var single apitype.Enqueued
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: `{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":2},"idempotency_key":"k2"}`}), http.StatusOK, &single)
		require.Equal(t, one.Data[1].ID, single.ID)
		require.Equal(t, before, countRows(t, b.pool))

		// A conflicting key fails the whole batch, naming the index;
		// nothing of the batch is stored.
		for _, tc := range []struct {
			name  string
			body  string
			index int
		}{
			{"Stored", batch(
				`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":9},"idempotency_key":"k9"}`,
				`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":1},"idempotency_key":"k1"}`,
				`{"account_id":"acct_batch_a","type":"invoice.paid","data":{"n":20},"idempotency_key":"k2"}`,
			), 2},
			{"InBatch", batch(
				`{"account_id":"acct_batch_b","type":"invoice.paid","data":{"n":5},"idempotency_key":"k5"}`,
				`{"account_id":"acct_batch_b","type":"invoice.paid","data":{"n":6}}`,
				`{"account_id":"acct_batch_b","type":"invoice.paid","data":{"n":7},"idempotency_key":"k5"}`,
			), 2},
			{"OtherType", batch(
				`{"account_id":"acct_batch_a","type":"invoice.voided","data":{"n":1},"idempotency_key":"k1"}`,
			), 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				requireBatchError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: tc.body}), http.StatusConflict, "idempotency_key_reused",
					[]itemError{{Index: tc.index, Field: "idempotency_key", Code: "idempotency_key_reused"}})
				require.Equal(t, before, countRows(t, b.pool))
			})
		}
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/events?account_id=acct_batch_a&idempotency_key=k9"}), http.StatusNotFound, "not_found", "id")
	})

	t.Run("BoundKey", func(t *testing.T) {
		b := setup(t)
		waitSettled(t, b.pool)

		key := b.createKey(t, "events:write", "acct_batch_c")
		before := countRows(t, b.pool)
		requireBatchError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", auth: bearer(key.Key), body: batch(
			`{"type":"a","data":{}}`,
			`{"account_id":"acct_batch_a","type":"a","data":{}}`,
			`{"account_id":"acct_batch_c","type":"BAD","data":{}}`,
		)}), http.StatusForbidden, "account_not_allowed", []itemError{
			{Index: 1, Field: "account_id", Code: "account_not_allowed"},
			{Index: 2, Field: "type", Code: "invalid_event_type"},
		})
		require.Equal(t, before, countRows(t, b.pool))

		// Items without account_id take the key's.
		var out apitype.List[apitype.EventBatchItem]
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", auth: bearer(key.Key), body: batch(`{"type":"a","data":{}}`, `{"account_id":"acct_batch_c","type":"b","data":{}}`)}), http.StatusAccepted, &out)
		var ev apitype.Event
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/events/" + out.Data[0].ID}), http.StatusOK, &ev)
		require.Equal(t, "acct_batch_c", ev.AccountID)

		// An account key reads its own events only.
		reader := b.createKey(t, "account", "acct_batch_c")
		other := b.createKey(t, "account", "acct_batch_d")
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/events/" + out.Data[0].ID, auth: bearer(reader.Key)}), http.StatusOK, &ev)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/events/" + out.Data[0].ID, auth: bearer(other.Key)}), http.StatusNotFound, "not_found", "id")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/events/" + out.Data[0].ID, auth: bearer(key.Key)}), http.StatusForbidden, "insufficient_scope", "Authorization")
	})

	t.Run("BadInput", func(t *testing.T) {
		b := setup(t)
		waitSettled(t, b.pool)

		good := `{"account_id":"acct_batch_a","type":"a","data":{}}`
		// Bulk events go to an account without webhooks: this test is about
		// the limits, not about delivering (engine's tests insert a full
		// batch of deliveries).
		many := func(n int) string {
			events := make([]string, n)
			for i := range events {
				events[i] = fmt.Sprintf(`{"account_id":"acct_batch_bulk","type":"bulk","data":{"i":%d}}`, i)
			}
			return batch(events...)
		}
		post := func(body string) request {
			return request{method: http.MethodPost, path: "/v1/events/batch", body: body}
		}
		big := `{"account_id":"acct_batch_a","type":"a","data":{"blob":"` + strings.Repeat("x", 5000) + `"}}`
		plain := []struct {
			name   string
			req    request
			status int
			code   string
			field  string
		}{
			{"InvalidJSON", post(`{"events":[`), 400, "invalid_json", ""},
			{"EmptyBody", post(``), 400, "invalid_json", ""},
			{"TopLevelArray", post(`[` + good + `]`), 400, "invalid_json", ""},
			{"UnknownTopField", post(`{"events":[` + good + `],"atomic":true}`), 400, "unknown_field", "atomic"},
			{"EventsObject", post(`{"events":` + good + `}`), 400, "invalid_type", "events"},
			{"EventsString", post(`{"events":"[]"}`), 400, "invalid_type", "events"},
			{"EventsMissing", post(`{}`), 422, "missing_field", "events"},
			{"EventsNull", post(`{"events":null}`), 422, "missing_field", "events"},
			{"EventsEmpty", post(`{"events":[]}`), 422, "empty_batch", "events"},
			{"Events1001", post(many(1001)), 422, "too_many_events", "events"},
			{"BodyOver4MiB", post(batch(strings.Repeat(big+",", 850) + big)), 413, "body_too_large", ""},
			{"IdempotencyKeyHeader", request{method: http.MethodPost, path: "/v1/events/batch", body: batch(good), header: map[string]string{"Idempotency-Key": "k"}}, 422, "idempotency_key_header_not_allowed", "Idempotency-Key"},
			{"NoKey", request{method: http.MethodPost, path: "/v1/events/batch", body: batch(good), auth: noAuth}, 401, "missing_api_key", "Authorization"},
			{"GetEventUnknown", request{method: http.MethodGet, path: "/v1/events/" + ident.New(ident.Event)}, 404, "not_found", "id"},
			{"GetEventMalformed", request{method: http.MethodGet, path: "/v1/events/evt_123"}, 404, "not_found", "id"},
			{"GetEventDeliveryID", request{method: http.MethodGet, path: "/v1/events/" + ident.New(ident.Delivery)}, 404, "not_found", "id"},
			{"GetEventBatch", request{method: http.MethodGet, path: "/v1/events/batch"}, 404, "not_found", "id"},
			{"FindNoKey", request{method: http.MethodGet, path: "/v1/events?account_id=acct_batch_a"}, 422, "missing_field", "idempotency_key"},
			{"FindNoAccount", request{method: http.MethodGet, path: "/v1/events?idempotency_key=k1"}, 422, "missing_field", "account_id"},
			{"FindBadAccount", request{method: http.MethodGet, path: "/v1/events?idempotency_key=k1&account_id=%C3%A1"}, 422, "invalid_account_id", "account_id"},
			{"FindKeyTooLong", request{method: http.MethodGet, path: "/v1/events?account_id=acct_batch_a&idempotency_key=" + strings.Repeat("k", 256)}, 422, "invalid_idempotency_key", "idempotency_key"},
			{"FindUnknownParameter", request{method: http.MethodGet, path: "/v1/events?account_id=acct_batch_a&idempotency_key=k1&type=a"}, 400, "unknown_parameter", "type"},
			{"FindUnknownKey", request{method: http.MethodGet, path: "/v1/events?account_id=acct_batch_a&idempotency_key=never-used"}, 404, "not_found", "id"},
		}
		items := []struct {
			name   string
			body   string
			status int
			code   string
			items  []itemError
		}{
			{"OneBadType", batch(good, good, good, `{"account_id":"acct_batch_a","type":"Bad Type","data":{}}`, good), 422, "invalid_batch",
				[]itemError{{Index: 3, Field: "type", Code: "invalid_event_type"}}},
			{"EveryProblemListed", batch(
				`{"account_id":"acct 1","type":"a","data":{}}`,
				good,
				`{"account_id":"acct_batch_a","data":{}}`,
				`{"account_id":"acct_batch_a","type":"a"}`,
				`{"account_id":"acct_batch_a","type":"a","data":{},"idempotency_key":"`+strings.Repeat("k", 256)+`"}`,
			), 422, "invalid_batch", []itemError{
				{Index: 0, Field: "account_id", Code: "invalid_account_id"},
				{Index: 2, Field: "type", Code: "missing_field"},
				{Index: 3, Field: "data", Code: "missing_field"},
				{Index: 4, Field: "idempotency_key", Code: "invalid_idempotency_key"},
			}},
			{"MalformedItems", batch(good, `"not an event"`, `{"account_id":"acct_batch_a","type":"a","data":{},"webhook_id":"wh_1"}`, `{"account_id":"acct_batch_a","type":7,"data":{}}`, `{"account_id":"acct_batch_a","type":"a","data":[1]}`, `{"account_id":"acct_batch_a","type":"BAD","data":{}}`), 400, "invalid_batch", []itemError{
				{Index: 1, Code: "invalid_type"},
				{Index: 2, Field: "webhook_id", Code: "unknown_field"},
				{Index: 3, Field: "type", Code: "invalid_type"},
				{Index: 4, Field: "data", Code: "invalid_data"},
				{Index: 5, Field: "type", Code: "invalid_event_type"},
			}},
			{"NullItem", batch(good, `null`), 400, "invalid_batch", []itemError{{Index: 1, Code: "invalid_type"}}},
			{"LastOf1000", batch(strings.TrimSuffix(strings.TrimPrefix(many(999), `{"events":[`), `]}`), `{"account_id":"acct_batch_a","type":"","data":{}}`), 422, "invalid_batch",
				[]itemError{{Index: 999, Field: "type", Code: "missing_field"}}},
		}

		for _, tc := range plain {
			t.Run(tc.name, func(t *testing.T) {
				before := countRows(t, b.pool)
				requireError(t, b.do(t, tc.req), tc.status, tc.code, tc.field)
				require.Equal(t, before, countRows(t, b.pool), "a refused request stored something")
			})
		}
		for _, tc := range items {
			t.Run(tc.name, func(t *testing.T) {
				before := countRows(t, b.pool)
				requireBatchError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: tc.body}), tc.status, tc.code, tc.items)
				require.Equal(t, before, countRows(t, b.pool), "a refused batch stored something")
			})
		}

		// 1000 events are fine: one answer, all stored.
		before := countRows(t, b.pool)
		var out apitype.List[apitype.EventBatchItem]
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: many(1000)}), http.StatusAccepted, &out)
		require.Len(t, out.Data, 1000)
		require.Equal(t, before.Events+1000, countRows(t, b.pool).Events)
	})
}
