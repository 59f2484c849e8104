package webhookrule

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
)

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

// ValidateTraceparent checks a W3C trace context traceparent (version 00):
// empty is allowed (none given).
func ValidateTraceparent(tp string) error {
	if tp == "" {
		return nil
	}
	m := traceparentRE.FindStringSubmatch(tp)
	if m == nil || m[1] == strings.Repeat("0", 32) || m[2] == strings.Repeat("0", 16) {
		return &ValidationError{Field: "traceparent", Code: "invalid_traceparent", Message: "traceparent must be a W3C trace context of the form 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lowercase, ids not all zero"}
	}
	return nil
}

// AttemptTraceparent is the traceparent sent on one attempt: the
// producer's trace id and flags with a new span id for the attempt, so the
// receiver's span is a child of the attempt's within the producer's trace.
func AttemptTraceparent(producer string) string {
	m := traceparentRE.FindStringSubmatch(producer)
	if m == nil {
		return ""
	}
	var span [8]byte
	if _, err := rand.Read(span[:]); err != nil {
		panic(err)
	}
	span[0] |= 1 // never all zero
	return "00-" + m[1] + "-" + hex.EncodeToString(span[:]) + "-" + m[3]
}
