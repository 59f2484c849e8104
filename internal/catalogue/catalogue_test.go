package catalogue_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/catalogue"
)

func TestCompile(t *testing.T) {
	t.Parallel()

	for _, c := range []struct {
		name, schema string
		ok           bool
	}{
		{"Empty", `{}`, true},
		{"Object", `{"type":"object","properties":{"amount":{"type":"integer"}}}`, true},
		{"Draft7", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`, true},
		{"InternalRef", `{"$defs":{"money":{"type":"integer"}},"properties":{"amount":{"$ref":"#/$defs/money"}}}`, true},
		{"NotJSON", `{"type":`, false},
		{"NotAnObject", `true`, false},
		{"UnknownType", `{"type":"money"}`, false},
		{"BadPattern", `{"pattern":"("}`, false},
		{"FileRef", `{"$ref":"file:///etc/passwd"}`, false},
		{"RemoteRef", `{"$ref":"https://example.com/schema.json"}`, false},
		{"RemoteMetaSchema", `{"$schema":"https://example.com/meta.json"}`, false},
		{"DanglingRef", `{"$ref":"#/$defs/none"}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := catalogue.Compile([]byte(c.schema))
			if c.ok {
				require.NoError(t, err)
				return
			}
			var schemaErr *catalogue.SchemaError
			require.ErrorAs(t, err, &schemaErr)
			require.NotContains(t, err.Error(), "urn:webhookd", "the message names the schema, not our internal URL")
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()

	sch, err := catalogue.Compile([]byte(`{
	  "type": "object",
	  "required": ["amount", "currency"],
	  "additionalProperties": false,
	  "properties": {
	    "amount": {"type": "integer", "minimum": 0},
	    "currency": {"type": "string"},
	    "fx_rates": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
	    "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
	    "meta": {"type": "object"}
	  }
	}`))
	require.NoError(t, err)

	for _, c := range []struct {
		name, data, path string
	}{
		{"Valid", `{"amount":240000,"currency":"COP","fx_rates":"4002.24"}`, ""},
		{"BigInteger", `{"amount":123456789012345678901234567890,"currency":"COP"}`, ""},
		{"DecimalAmount", `{"amount":2400.5,"currency":"COP"}`, "data.amount"},
		{"StringAmount", `{"amount":"240000","currency":"COP"}`, "data.amount"},
		{"Negative", `{"amount":-1,"currency":"COP"}`, "data.amount"},
		{"NumericFxRates", `{"amount":1,"currency":"COP","fx_rates":4002.24}`, "data.fx_rates"},
		{"BadFxRates", `{"amount":1,"currency":"COP","fx_rates":"4,002.24"}`, "data.fx_rates"},
		{"Missing", `{"amount":1}`, "data.currency"},
		{"Extra", `{"amount":1,"currency":"COP","note":"x"}`, "data.note"},
		{"ExtraOddKey", `{"amount":1,"currency":"COP","a.b":1}`, `data["a.b"]`},
		{"Nested", `{"amount":1,"currency":"COP","lines":[{"sku":"a"},{"sku":7}]}`, "data.lines[1].sku"},
		{"NotAnObject", `[]`, "data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := catalogue.Check(sch, []byte(c.data))
			if c.path == "" {
				require.NoError(t, err)
				return
			}
			var m *catalogue.MismatchError
			require.ErrorAs(t, err, &m)
			require.Equal(t, c.path, m.Path, "message: %s", m.Message)
			require.NotEmpty(t, m.Message)
		})
	}
}

func TestPath(t *testing.T) {
	t.Parallel()

	for _, c := range []struct {
		location []string
		want     string
	}{
		{nil, "data"},
		{[]string{"amount"}, "data.amount"},
		{[]string{"lines", "0", "sku"}, "data.lines[0].sku"},
		{[]string{"a b"}, `data["a b"]`},
		{[]string{""}, `data[""]`},
		{[]string{"_x9"}, "data._x9"},
		{[]string{"9x"}, `data["9x"]`},
	} {
		require.Equal(t, c.want, catalogue.Path(c.location))
	}
}
