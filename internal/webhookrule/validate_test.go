package webhookrule

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// ValidateDataKnownJSON, told what json.Compact said, answers as
// ValidateData does: Enqueue reads an event's data once, to compact it.
func TestValidateDataKnownJSON(t *testing.T) {
	t.Parallel()

	for _, data := range []string{
		`{"a":1}`, " {\n\t\"a\" : [1, 2.5e10, null]}\r\n", `{}`, `{"a":1} {"b":2}`, `{"a":`, `[]`, `"x"`, `null`,
		" null ", ``, "   ", "\f{}", `{"s":"\xff"}`, `{"a":1,"a":2}`, `{"a":"\u003c"}`,
	} {
		var compact bytes.Buffer
		got := ValidateDataKnownJSON([]byte(data), json.Compact(&compact, []byte(data)) == nil)
		want := ValidateData([]byte(data))
		require.Equal(t, want, got, "%q", data)
	}
	require.NoError(t, ValidateDataKnownJSON([]byte(`{"a":1}`), true))
	var v *ValidationError
	require.ErrorAs(t, ValidateDataKnownJSON([]byte(`{"a":`), false), &v)
	require.Equal(t, "invalid_data", v.Code)
	require.ErrorAs(t, ValidateDataKnownJSON([]byte(`null`), false), &v)
	require.Equal(t, "missing_field", v.Code)
}
