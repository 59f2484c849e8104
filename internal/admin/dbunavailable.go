package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/mono/webhookd/internal/store"
)

// DatabaseRetryAfter is the Retry-After of a 503 database_unavailable: a
// restart takes a second or two and a failover a few more, and the Go
// client backs off further on each refusal.
const DatabaseRetryAfter = 2 * time.Second

// errDatabaseUnavailable is the answer when the database could not be
// reached or would not write (restarting, failing over, read-only while a
// standby is promoted): 503 with Retry-After, so callers retry rather
// than give up. An enqueue refused this way may have been stored or not
// (the commit's answer can be what was lost); retrying it with the same
// idempotency key stores it exactly once.
func errDatabaseUnavailable() *Error {
	return &Error{
		Status: http.StatusServiceUnavailable, Code: "database_unavailable",
		Message:    "the database is unavailable (restarting or failing over); retry shortly, with the same idempotency key",
		RetryAfter: DatabaseRetryAfter,
	}
}

// internalError maps an unexpected error to its answer: 503
// database_unavailable when store.Unavailable says the database is away,
// 500 internal_error otherwise. errInternal calls it; it is the one place
// that decides.
func internalError(causes []error) *Error {
	var cause error
	for _, err := range causes {
		if store.Unavailable(err) {
			e := errDatabaseUnavailable()
			e.cause = err
			return e
		}
		if cause == nil {
			cause = err
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "internal error; the details are in the server log", cause: cause}
}

// setRetryAfter writes e's Retry-After header, if it has one, in whole
// seconds (at least 1).
func setRetryAfter(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((e.RetryAfter+time.Second-1)/time.Second))))
	}
}
