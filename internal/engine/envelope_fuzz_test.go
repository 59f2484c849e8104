package engine

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/webhookrule"
)

// FuzzEnvelope runs arbitrary producer input through what Enqueue does
// before any SQL (prepare: validation, compaction, envelope assembly) and
// checks the round trip: an accepted event's body is valid JSON whose
// event.data is the producer's data, compacted byte for byte, whose type is
// the producer's type and whose timestamp is the event time in the fixed
// layout; a refused one is a *ValidationError naming a field.
func FuzzEnvelope(f *testing.F) {
	f.Add("acct_1", "bank_transfer_approved", []byte(`{"amount":240000,"currency":"COP"}`), int64(1672326128), "")
	f.Add("acct_1", "a", []byte(" {\n\t\"<b>\" : \"&amp; \\u003c ü \\ud83d\\ude00\" , \"z\":[1,2.5e10,null,true]}\n"), int64(0), "key-1")
	f.Add("acct_1", "a.b_c", []byte(`{"a":1,"a":2}`), int64(-1), "")
	f.Add("acct_1", "a", []byte(`{"s":"\xff\xfe"}`), int64(253402300799), "")
	f.Add("acct_1", "a", []byte(`{}`), int64(-62135596800), "k\x00")
	f.Add("a", "A", []byte(`[]`), int64(1), "")
	f.Add("", "a", []byte(`{"a":1} {"b":2}`), int64(1), "")
	f.Add("acct_1", "a", []byte(`null`), int64(1), "")
	f.Fuzz(func(t *testing.T, accountID, eventType string, data []byte, occurredSec int64, key string) {
		var occurredAt time.Time
		if occurredSec != 0 {
			occurredAt = time.Unix(occurredSec, occurredSec%1e9)
		}
		ev := &Event{AccountID: accountID, Type: eventType, Data: data, OccurredAt: occurredAt, IdempotencyKey: key}
		now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
		p, err := prepare(ev, now)
		if err != nil {
			var v *ValidationError
			require.ErrorAs(t, err, &v, "prepare failed with %v, not a *ValidationError", err)
			require.NotEmpty(t, v.Field)
			require.NotEmpty(t, v.Code)
			if v.Field == "occurred_at" { // checked when the envelope is built
				y := occurredAt.UTC().Year()
				require.True(t, y < 0 || y > 9999, "occurred_at %s refused", occurredAt)
				return
			}
			require.Error(t, Validate(ev))
			return
		}
		require.NoError(t, Validate(ev))

		var env struct {
			Event struct {
				Data json.RawMessage `json:"data"`
				Type string          `json:"type"`
			} `json:"event"`
			Timestamp string `json:"timestamp"`
		}
		require.True(t, json.Valid(p.body), "body is not JSON: %q", p.body)
		dec := json.NewDecoder(bytes.NewReader(p.body))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&env), "%q", p.body)

		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, data))
		require.Equal(t, compact.Bytes(), []byte(env.Event.Data), "data changed on the way into the envelope")
		require.Equal(t, eventType, env.Event.Type)

		want := occurredAt
		if want.IsZero() {
			want = now
		}
		require.Len(t, env.Timestamp, len(webhookrule.TimestampLayout), "timestamp %q", env.Timestamp)
		ts, err := time.Parse(webhookrule.TimestampLayout, env.Timestamp)
		require.NoError(t, err, "timestamp %q", env.Timestamp)
		require.True(t, ts.Equal(want.UTC().Truncate(time.Microsecond)), "timestamp %s, want %s", ts, want)

		// The producer's data and the sent data decode to the same value.
		require.Equal(t, decodeAny(t, data), decodeAny(t, env.Event.Data))

		// The same input always makes the same bytes (every attempt sends them).
		again, err := prepare(ev, now)
		require.NoError(t, err)
		require.Equal(t, p.body, again.body)
		// Envelope, which compacts the data itself, makes the same bytes as
		// prepare's EnvelopeCompacted of the data compacted once.
		direct, err := webhookrule.Envelope(eventType, data, p.occurredAt)
		require.NoError(t, err)
		require.Equal(t, p.body, direct)
	})
}

// decodeAny decodes JSON keeping numbers as written (1e400 is valid JSON
// but no float64).
func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return v
}
