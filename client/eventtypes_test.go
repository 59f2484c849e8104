package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
)

// The catalogue methods against a running server: register, read, turn
// validation on (an enqueue of bad data is then refused with the path),
// deprecate.
func TestEventTypes(t *testing.T) {
	t.Parallel()

	b := setup(t)
	ctx := context.Background()
	c := b.client

	types, err := c.ListEventTypes(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, types, "migration 6 seeds the catalogue")

	created, err := c.CreateEventType(ctx, &client.CreateEventTypeParams{
		Type:    "card_charged",
		Schema:  json.RawMessage(`{"type":"object","required":["amount"],"properties":{"amount":{"type":"integer"}}}`),
		Example: json.RawMessage(`{"amount":240000}`),
	})
	require.NoError(t, err)
	require.False(t, created.Validate)
	got, err := c.GetEventType(ctx, "card_charged")
	require.NoError(t, err)
	require.Equal(t, created, got)

	_, err = c.CreateEventType(ctx, &client.CreateEventTypeParams{Type: "card_charged", Schema: json.RawMessage(`{}`), Example: json.RawMessage(`{}`)})
	requireAPIError(t, err, http.StatusConflict, "event_type_exists", "type")
	_, err = c.GetEventType(ctx, "no.such_type")
	requireAPIError(t, err, http.StatusNotFound, "not_found", "type")

	on, deprecated := true, true
	updated, err := c.UpdateEventType(ctx, "card_charged", &client.UpdateEventTypeParams{Validate: &on, Deprecated: &deprecated})
	require.NoError(t, err)
	require.True(t, updated.Validate)
	require.True(t, updated.Deprecated)
	require.NotNil(t, updated.DeprecatedAt)

	_, err = c.SendEvent(ctx, &client.EventParams{AccountID: "acct_client", Type: "card_charged", Data: json.RawMessage(`{"amount":"2400.00"}`)})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "data_schema_mismatch", "data.amount")
	_, err = c.SendEvent(ctx, &client.EventParams{AccountID: "acct_client", Type: "card_charged", Data: json.RawMessage(`{"amount":240000}`)})
	require.NoError(t, err)
}
