// Package webhookrule holds the rules about events and webhooks that the
// API, the dashboard, the CLI and the engine share, each written once:
// what an account id, an event type, event data and an idempotency key may
// be (ValidationError names the field at fault), the envelope sent on every
// attempt, a webhook's custom headers (their rules), its event-type filter,
// webhookd's own notification types, the traceparent a producer may give,
// and how a webhook's secrets are encrypted at rest (custom headers, client
// certificate, OAuth2 client secret). It does no I/O; of webhookd's
// packages it imports only the keyring and outbound's TLS material.
package webhookrule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"unicode/utf8"
)

var (
	accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	typePattern      = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,99}$`)
)

// IdempotencyKeyMaxLen is the longest idempotency key accepted.
const IdempotencyKeyMaxLen = 255

// ValidationError is bad input, named by field. The API answers it with 422
// (or 400 for a wrong JSON type) and the JSON error shape.
type ValidationError struct {
	// Field is the input field at fault ("account_id", "type", "data", ...).
	Field string
	// Code is a stable machine-readable code ("invalid_account_id", ...).
	Code string
	// Message says what is wrong and what is expected.
	Message string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Message)
}

// ValidateAccountID checks an account id: 1–64 of A–Z, a–z, 0–9, _ and -.
func ValidateAccountID(accountID string) error {
	if accountID == "" {
		return &ValidationError{Field: "account_id", Code: "missing_field", Message: "account_id is required"}
	}
	if !accountIDPattern.MatchString(accountID) {
		return &ValidationError{Field: "account_id", Code: "invalid_account_id", Message: "account_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"}
	}
	return nil
}

// ValidateType checks an event type name: 1–100 characters of lowercase
// letters, digits, _ and ., starting with a letter.
func ValidateType(eventType string) error {
	if eventType == "" {
		return &ValidationError{Field: "type", Code: "missing_field", Message: "type is required"}
	}
	if !typePattern.MatchString(eventType) {
		return &ValidationError{Field: "type", Code: "invalid_event_type", Message: "type must be 1 to 100 characters of lowercase letters, digits, _ and ., starting with a letter (for example bank_transfer_approved)"}
	}
	return nil
}

// ValidateData checks that data is one JSON object.
func ValidateData(data []byte) error {
	return validateData(data, json.Valid)
}

// ValidateDataKnownJSON is ValidateData for data whose caller already
// knows whether it is JSON (isJSON): json.Compact returned no error (it
// accepts what json.Valid accepts), or a JSON decoder produced it. The same
// answers, without reading the data a second time.
func ValidateDataKnownJSON(data []byte, isJSON bool) error {
	return validateData(data, func([]byte) bool { return isJSON })
}

func validateData(data []byte, valid func([]byte) bool) error {
	// JSON's white space only: bytes.TrimSpace would also drop \f, \v and
	// Unicode spaces, which json.Compact (in Enqueue) refuses.
	trimmed := bytes.Trim(data, " \t\r\n")
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return &ValidationError{Field: "data", Code: "missing_field", Message: "data is required and must be a JSON object"}
	}
	if trimmed[0] != '{' || !valid(trimmed) {
		return &ValidationError{Field: "data", Code: "invalid_data", Message: "data must be a JSON object"}
	}
	return nil
}

// ValidateIdempotencyKey checks an optional idempotency key: up to 255
// printable characters.
func ValidateIdempotencyKey(key string) error {
	if len(key) > IdempotencyKeyMaxLen || !utf8.ValidString(key) {
		return &ValidationError{Field: "idempotency_key", Code: "invalid_idempotency_key", Message: fmt.Sprintf("idempotency_key must be valid UTF-8 of at most %d bytes", IdempotencyKeyMaxLen)}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return &ValidationError{Field: "idempotency_key", Code: "invalid_idempotency_key", Message: "idempotency_key must not contain control characters"}
		}
	}
	return nil
}
