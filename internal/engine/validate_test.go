package engine_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
)

// ValidateDecoded answers as Validate does for an event decoded from an
// API request: the decoder has already proved its data JSON.
func TestValidateDecoded(t *testing.T) {
	t.Parallel()

	for _, body := range []string{
		`{"account_id":"acct_1","type":"ping","data":{"a":1}}`,
		`{"account_id":"acct_1","type":"ping","data": {  "a" : [1, 2.5e10, null] } }`,
		`{"account_id":"acct_1","type":"ping","data":{}}`,
		`{"account_id":"acct_1","type":"ping","data":null}`,
		`{"account_id":"acct_1","type":"ping"}`,
		`{"account_id":"acct_1","type":"ping","data":[1]}`,
		`{"account_id":"acct_1","type":"ping","data":"x"}`,
		`{"account_id":"acct_1","type":"ping","data":3}`,
		`{"account_id":"acct_1","type":"Bad Type","data":{"a":1}}`,
		`{"account_id":"","type":"ping","data":[]}`,
		`{"account_id":"acct_1","type":"ping","data":{"a":1},"idempotency_key":"k\u0001"}`,
	} {
		var req apitype.EventCreate
		require.NoError(t, json.Unmarshal([]byte(body), &req), body)
		ev := &engine.Event{AccountID: req.AccountID, Type: req.Type, Data: req.Data, IdempotencyKey: req.IdempotencyKey}
		require.Equal(t, engine.Validate(ev), engine.ValidateDecoded(ev), body)
	}
	require.NoError(t, engine.ValidateDecoded(&engine.Event{AccountID: "acct_1", Type: "ping", Data: json.RawMessage(`{"a":1}`)}))
	var v *engine.ValidationError
	require.ErrorAs(t, engine.ValidateDecoded(&engine.Event{AccountID: "acct_1", Type: "ping", Data: json.RawMessage(`[1]`)}), &v)
	require.Equal(t, "data", v.Field)
}
