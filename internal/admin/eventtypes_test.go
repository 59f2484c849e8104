package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/catalogue"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
)

// transferSchema follows the seed's money rule: integer amounts in the
// smallest currency unit, fx_rates a decimal string.
const transferSchema = `{
  "type": "object",
  "required": ["amount", "currency"],
  "properties": {
    "amount": {"type": "integer", "minimum": 0},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "fx_rates": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
    "items": {"type": "array", "items": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}}
  }
}`

const transferExample = `{"amount":240000,"currency":"COP","fx_rates":"4002.24","items":[{"sku":"a"}]}`

func (b *testBundle) registerEventType(t *testing.T, name string, validate bool) *apitype.EventType {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"type": name, "description": "a transfer", "schema": json.RawMessage(transferSchema),
		"example": json.RawMessage(transferExample), "validate": validate,
	})
	require.NoError(t, err)
	var out apitype.EventType
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/event-types", body: string(body)}), http.StatusCreated, &out)
	return &out
}

func (b *testBundle) getEventType(t *testing.T, name string) *apitype.EventType {
	t.Helper()
	var out apitype.EventType
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/event-types/" + name}), http.StatusOK, &out)
	return &out
}

func countEventTypes(t *testing.T, b *testBundle) int {
	t.Helper()
	return countTable(t, b.pool, "event_types")
}

func TestEventTypes(t *testing.T) {
	t.Parallel()

	bundle := startServer(t, true)
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return bundle
	}

	// The migration seeds an example that follows the money rule, and
	// its example matches its own schema.
	t.Run("SeededCatalogue", func(t *testing.T) {
		b := setup(t)
		var list struct {
			Data []apitype.EventType `json:"data"`
		}
		jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/event-types"}), http.StatusOK, &list)
		var seeded *apitype.EventType
		for i := range list.Data {
			if list.Data[i].Type == "bank_transfer_approved" {
				seeded = &list.Data[i]
			}
		}
		require.NotNil(t, seeded, "the catalogue lists the seeded type: %+v", list.Data)
		require.Equal(t, *seeded, *b.getEventType(t, "bank_transfer_approved"))
		require.False(t, seeded.Validate)
		require.False(t, seeded.Deprecated)

		var example map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(seeded.Example, &example))
		require.Equal(t, "240000", string(example["amount"]), "amounts are integers in the smallest currency unit")
		require.Equal(t, `"4002.24"`, string(example["fx_rates"]), "fx_rates is a decimal string")
		sch, err := catalogue.Compile(seeded.Schema)
		require.NoError(t, err)
		require.NoError(t, catalogue.Check(sch, seeded.Example))
		require.ErrorAs(t, catalogue.Check(sch, []byte(`{"id":"t","amount":"2400.00","currency":"COP","status":"approved"}`)), new(*catalogue.MismatchError))
		require.Error(t, catalogue.Check(sch, []byte(`{"id":"t","amount":240000,"currency":"COP","status":"approved","fx_rates":4002.24}`)))
	})

	t.Run("RegisterAndGet", func(t *testing.T) {
		b := setup(t)
		created := b.registerEventType(t, "transfer.registered", false)
		require.Equal(t, "transfer.registered", created.Type)
		require.Equal(t, "a transfer", created.Description)
		require.JSONEq(t, transferSchema, string(created.Schema))
		require.Equal(t, transferExample, string(created.Example))
		require.Nil(t, created.DeprecatedAt)
		require.Equal(t, *created, *b.getEventType(t, "transfer.registered"))

		before := countEventTypes(t, b)
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/event-types",
			body: `{"type":"transfer.registered","schema":{"type":"object"},"example":{}}`})
		requireError(t, resp, http.StatusConflict, "event_type_exists", "type")
		require.Equal(t, before, countEventTypes(t, b))
		require.Equal(t, *created, *b.getEventType(t, "transfer.registered"), "nothing changed")
	})

	t.Run("NotFound", func(t *testing.T) {
		b := setup(t)
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/event-types/no.such_type"}), http.StatusNotFound, "not_found", "type")
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/event-types/Not-A-Name"}), http.StatusNotFound, "not_found", "type")
		requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/no.such_type", body: `{"validate":true}`}), http.StatusNotFound, "not_found", "type")
	})

	// A bad registration names its field and stores nothing.
	t.Run("BadRegistration", func(t *testing.T) {
		b := setup(t)
		before := countEventTypes(t, b)
		cases := []struct {
			name, body  string
			status      int
			code, field string
		}{
			{"BadType", `{"type":"Bad Type","schema":{"type":"object"},"example":{}}`, 422, "invalid_event_type", "type"},
			{"MissingSchema", `{"type":"x.one","example":{}}`, 422, "missing_field", "schema"},
			{"NullSchema", `{"type":"x.one","schema":null,"example":{}}`, 422, "missing_field", "schema"},
			{"MissingExample", `{"type":"x.one","schema":{"type":"object"}}`, 422, "missing_field", "example"},
			{"SchemaNotAnObject", `{"type":"x.one","schema":"object","example":{}}`, 422, "invalid_schema", "schema"},
			{"SchemaUnknownType", `{"type":"x.one","schema":{"type":"objekt"},"example":{}}`, 422, "invalid_schema", "schema"},
			{"SchemaBadPattern", `{"type":"x.one","schema":{"type":"object","properties":{"a":{"type":"string","pattern":"("}}},"example":{}}`, 422, "invalid_schema", "schema"},
			{"SchemaExternalRef", `{"type":"x.one","schema":{"$ref":"file:///etc/passwd"},"example":{}}`, 422, "invalid_schema", "schema"},
			{"SchemaRemoteRef", `{"type":"x.one","schema":{"$ref":"https://example.com/s.json"},"example":{}}`, 422, "invalid_schema", "schema"},
			{"ExampleNotAnObject", `{"type":"x.one","schema":{},"example":[1]}`, 422, "invalid_example", "example"},
			{"ExampleMismatch", `{"type":"x.one","schema":` + transferSchema + `,"example":{"amount":"2400.00","currency":"COP"}}`, 422, "example_mismatch", "example.amount"},
			{"ExampleMissingField", `{"type":"x.one","schema":` + transferSchema + `,"example":{"amount":1}}`, 422, "example_mismatch", "example.currency"},
			{"ExampleNested", `{"type":"x.one","schema":` + transferSchema + `,"example":{"amount":1,"currency":"COP","items":[{"sku":"a"},{"sku":2}]}}`, 422, "example_mismatch", "example.items[1].sku"},
			{"UnknownField", `{"type":"x.one","schema":{},"example":{},"validation":true}`, 400, "unknown_field", "validation"},
			{"WrongType", `{"type":"x.one","schema":{},"example":{},"validate":"yes"}`, 400, "invalid_type", "validate"},
			{"TooLongDescription", `{"type":"x.one","schema":{},"example":{},"description":"` + strings.Repeat("a", 501) + `"}`, 422, "too_long", "description"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/event-types", body: c.body}), c.status, c.code, c.field)
			})
		}
		require.Equal(t, before, countEventTypes(t, b))
		requireError(t, b.do(t, request{method: http.MethodGet, path: "/v1/event-types/x.one"}), http.StatusNotFound, "not_found", "type")
	})

	// Only admin keys change the catalogue; every key reads it.
	t.Run("Scopes", func(t *testing.T) {
		b := setup(t)
		account := bearer(b.createKey(t, store.ScopeAccount, "acct_catalogue").Key)
		writer := bearer(b.createKey(t, store.ScopeEventsWrite, "").Key)
		for _, auth := range []string{account, writer} {
			require.Equal(t, http.StatusOK, b.do(t, request{method: http.MethodGet, path: "/v1/event-types", auth: auth}).status)
			require.Equal(t, http.StatusOK, b.do(t, request{method: http.MethodGet, path: "/v1/event-types/bank_transfer_approved", auth: auth}).status)
			requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/event-types", auth: auth, body: `{"type":"x.scoped","schema":{},"example":{}}`}), http.StatusForbidden, "insufficient_scope", "Authorization")
			requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/bank_transfer_approved", auth: auth, body: `{"validate":true}`}), http.StatusForbidden, "insufficient_scope", "Authorization")
		}
		require.False(t, b.getEventType(t, "bank_transfer_approved").Validate)
	})

	// With validate on, enqueue refuses data that does not match, naming
	// the failing path, and stores nothing; with it off anything goes.
	t.Run("ValidateOnEnqueue", func(t *testing.T) {
		b := setup(t)
		b.registerEventType(t, "transfer.validated", true)
		rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
		b.createWebhook(t, "acct_schema", rcv.URL+"/hook")
		waitSettled(t, b.pool)

		event := func(data string) string {
			return `{"account_id":"acct_schema","type":"transfer.validated","data":` + data + `}`
		}
		before := countRows(t, b.pool)
		for _, c := range []struct{ data, field string }{
			{`{"amount":"2400.00","currency":"COP"}`, "data.amount"},
			{`{"amount":2400.5,"currency":"COP"}`, "data.amount"},
			{`{"amount":240000,"currency":"COP","fx_rates":4002.24}`, "data.fx_rates"},
			{`{"amount":240000}`, "data.currency"},
			{`{"amount":1,"currency":"COP","items":[{"sku":"a"},{}]}`, "data.items[1].sku"},
		} {
			resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: event(c.data)})
			requireError(t, resp, http.StatusUnprocessableEntity, "data_schema_mismatch", c.field)
			require.Contains(t, string(resp.body), "transfer.validated")
		}
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch",
			body: batch(event(transferExample), event(`{"amount":"1","currency":"COP"}`))})
		requireBatchError(t, resp, http.StatusUnprocessableEntity, "invalid_batch", []itemError{{Index: 1, Field: "data.amount", Code: "data_schema_mismatch"}})
		require.Equal(t, before, countRows(t, b.pool), "a refused event stores nothing")

		var ev apitype.Enqueued
		jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: event(transferExample)}), http.StatusAccepted, &ev)
		require.Len(t, ev.Deliveries, 1)
		got := rcv.Wait(t, 1, 10*time.Second)[0]
		require.Contains(t, string(got.Body), `"data":`+transferExample)

		// Turned off, the same bad data is accepted; on again, refused.
		var patched apitype.EventType
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/transfer.validated", body: `{"validate":false}`}), http.StatusOK, &patched)
		require.False(t, patched.Validate)
		require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: event(`{"amount":"2400.00"}`)}).status)
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/transfer.validated", body: `{"validate":true}`}), http.StatusOK, &patched)
		require.True(t, patched.Validate)
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: event(`{"amount":"2400.00","currency":"COP"}`)}), http.StatusUnprocessableEntity, "data_schema_mismatch", "data.amount")

		// A new schema takes effect at once: amount may now be a string.
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/transfer.validated",
			body: `{"schema":{"type":"object","properties":{"amount":{"type":"string"}}},"example":{"amount":"1"}}`}), http.StatusOK, &patched)
		require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: event(`{"amount":"2400.00"}`)}).status)
		requireError(t, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: event(`{"amount":2400}`)}), http.StatusUnprocessableEntity, "data_schema_mismatch", "data.amount")

		// Types without validation, registered or not, are not checked.
		b.registerEventType(t, "transfer.unvalidated", false)
		for _, name := range []string{"transfer.unvalidated", "transfer.unregistered"} {
			body := `{"account_id":"acct_schema","type":"` + name + `","data":{"amount":"2400.00"}}`
			require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events", body: body}).status)
		}
	})

	t.Run("Deprecate", func(t *testing.T) {
		b := setup(t)
		created := b.registerEventType(t, "transfer.old", false)
		var patched apitype.EventType
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/transfer.old", body: `{"deprecated":true,"description":"use transfer.new"}`}), http.StatusOK, &patched)
		require.True(t, patched.Deprecated)
		require.NotNil(t, patched.DeprecatedAt)
		require.Equal(t, "use transfer.new", patched.Description)
		require.Equal(t, created.Schema, patched.Schema, "absent fields stay")
		require.Equal(t, created.Example, patched.Example)
		require.Equal(t, patched, *b.getEventType(t, "transfer.old"))
		at := *patched.DeprecatedAt

		// Deprecating again keeps the first time; events are still accepted.
		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/transfer.old", body: `{"deprecated":true}`}), http.StatusOK, &patched)
		require.True(t, at.Equal(*patched.DeprecatedAt))
		require.Equal(t, http.StatusAccepted, b.do(t, request{method: http.MethodPost, path: "/v1/events",
			body: `{"account_id":"acct_deprecated","type":"transfer.old","data":{}}`}).status)

		jsonBody(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/transfer.old", body: `{"deprecated":false}`}), http.StatusOK, &patched)
		require.False(t, patched.Deprecated)
		require.Nil(t, patched.DeprecatedAt)
	})

	// A change that would leave the example not matching the schema is
	// refused, and changes nothing.
	t.Run("BadPatch", func(t *testing.T) {
		b := setup(t)
		created := b.registerEventType(t, "transfer.patched", false)
		for _, c := range []struct {
			body, code, field string
			status            int
		}{
			{`{"schema":{"type":"object","required":["missing"]}}`, "example_mismatch", "example.missing", 422},
			{`{"example":{"amount":"x","currency":"COP"},"validate":true}`, "example_mismatch", "example.amount", 422},
			{`{"schema":{"type":7}}`, "invalid_schema", "schema", 422},
			{`{"deprecated":"yes"}`, "invalid_type", "deprecated", 400},
			{`{"type":"renamed"}`, "unknown_field", "type", 400},
		} {
			requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/event-types/transfer.patched", body: c.body}), c.status, c.code, c.field)
		}
		require.Equal(t, *created, *b.getEventType(t, "transfer.patched"))
	})
}

// The catalogue's cache: no query per event, a change through the API seen
// at once by the same process and by another one within the refresh
// interval.
func TestEventTypeCacheAcrossProcesses(t *testing.T) {
	t.Parallel()

	b := startServer(t, false)
	now := time.Now()
	clock := func() time.Time { return now }
	other := catalogue.New(b.pool, &catalogue.Config{RefreshInterval: time.Minute, Now: clock})
	ctx := context.Background()
	bad := []byte(`{"amount":"2400.00","currency":"COP"}`)

	for range 50 {
		require.NoError(t, other.Validate(ctx, "transfer.cached", bad))
	}
	require.EqualValues(t, 1, other.Loads(), "one load for every event within the interval")

	b.registerEventType(t, "transfer.cached", true)
	require.NoError(t, other.Validate(ctx, "transfer.cached", bad), "another process keeps its schemas until the interval passes")
	now = now.Add(time.Minute)
	var m *catalogue.MismatchError
	require.ErrorAs(t, other.Validate(ctx, "transfer.cached", bad), &m)
	require.Equal(t, "data.amount", m.Path)
	require.EqualValues(t, 2, other.Loads())
}
