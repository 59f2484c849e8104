package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// APIError is an answer other than 2xx, as the API describes it:
// {"error":{"code","message","field"}}. Branch on Status and Code.
type APIError struct {
	// Status is the HTTP status code.
	Status int `json:"-"`
	// Code is the machine-readable reason, such as "invalid_url" or
	// "not_found". Empty when the answer was not the API's JSON (a proxy's
	// error page, say).
	Code string `json:"code"`
	// Message says what is wrong, for people.
	Message string `json:"message"`
	// Field names the request field or parameter at fault, if any.
	Field string `json:"field,omitempty"`
	// Items lists the bad events of a refused batch (SendEvents).
	Items []ItemError `json:"items,omitempty"`
	// RetryAfter is the answer's Retry-After (a 429 or a 503): how long
	// the server asks to wait before trying again; 0 when it gave none.
	RetryAfter time.Duration `json:"-"`
}

// ItemError is what is wrong with one event of a batch.
type ItemError struct {
	// Index is the event's position in the batch, from 0.
	Index   int    `json:"index"`
	Field   string `json:"field,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns "webhookd: 422 invalid_url (url): message".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhookd: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Field != "" {
		b.WriteString(" (" + e.Field + ")")
	}
	b.WriteString(": " + e.Message)
	return b.String()
}

// newAPIError reads an error answer; one that is not the API's error shape
// keeps the start of its body as the message.
func newAPIError(status int, body []byte) *APIError {
	var wrapped struct {
		Error *APIError `json:"error"`
	}
	if err := json.Unmarshal(body, &wrapped); err == nil && wrapped.Error != nil && wrapped.Error.Message != "" {
		wrapped.Error.Status = status
		return wrapped.Error
	}
	// GET /readyz answers 503 {"status":"not_ready","reasons":[...]}.
	var notReady struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal(body, &notReady); err == nil && notReady.Status != "" && len(notReady.Reasons) > 0 {
		return &APIError{Status: status, Code: notReady.Status, Message: strings.Join(notReady.Reasons, "; ")}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Message: msg}
}
