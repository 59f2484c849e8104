package webhookrule

import (
	"bytes"
	"encoding/json"
	"time"
)

// TimestampLayout is the envelope's timestamp: UTC with exactly six
// fractional digits and a Z (RFC3339Nano would drop trailing zeros).
const TimestampLayout = "2006-01-02T15:04:05.000000Z"

// Envelope assembles the exact bytes sent on every attempt:
//
//	{"event":{"data":<data>,"type":"<type>"},"timestamp":"<occurredAt>"}
//
// data must be a JSON object; it is compacted, never re-marshalled, so the
// producer's key order and characters such as <, > and & stay as they were.
// eventType must already be valid (ValidateType); occurredAt must fall in
// the years 0000 to 9999, or the answer is a *ValidationError (field
// occurred_at), since the layout has room for four year digits.
func Envelope(eventType string, data []byte, occurredAt time.Time) ([]byte, error) {
	var compact bytes.Buffer
	compact.Grow(len(data))
	if err := json.Compact(&compact, data); err != nil {
		return nil, err
	}
	return EnvelopeCompacted(eventType, compact.Bytes(), occurredAt)
}

// EnvelopeCompacted is Envelope for data that is already json.Compact's
// output (Enqueue compacts the data once, for the envelope and the
// idempotency hash): the same bytes, without compacting a second time,
// which was half of the envelope's cost at intake.
func EnvelopeCompacted(eventType string, compact []byte, occurredAt time.Time) ([]byte, error) {
	// The layout has four year digits: a year outside 0–9999 would be
	// written as something that is not an RFC 3339 time.
	if y := occurredAt.UTC().Year(); y < 0 || y > 9999 {
		return nil, &ValidationError{Field: "occurred_at", Code: "invalid_time", Message: "occurred_at must be between the years 0000 and 9999"}
	}
	const (
		head = `{"event":{"data":`
		mid  = `,"type":"`
		tail = `"},"timestamp":"`
	)
	body := make([]byte, 0, len(head)+len(compact)+len(mid)+len(eventType)+len(tail)+len(TimestampLayout)+2)
	body = append(body, head...)
	body = append(body, compact...)
	body = append(body, mid...)
	body = append(body, eventType...) // validated: [a-z0-9_.] only, nothing to escape
	body = append(body, tail...)
	body = occurredAt.UTC().AppendFormat(body, TimestampLayout)
	body = append(body, `"}`...)
	return body, nil
}
