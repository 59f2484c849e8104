package dashboard

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/mono/webhookd/internal/admin"
)

// apiError is an error of the API's typed operations as the dashboard
// shows it: the status and the API's one error shape, {"error":{"code",
// "message","field"}} (the secret eye's JSON answer).
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
	// RetryAfter is the Retry-After to answer (a 429 or 503).
	RetryAfter string `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

// opError is a typed operation's error (d.api's methods) as the dashboard
// shows an API error: an *admin.Error's status, code, field, message and
// Retry-After; anything else (which operations do not return) a 500. The
// operation has logged anything unexpected.
func opError(err error) *apiError {
	var e *admin.Error
	if !errors.As(err, &e) {
		return internalError(err)
	}
	out := &apiError{Status: e.Status, Code: e.Code, Message: e.Message, Field: e.Field}
	if e.RetryAfter > 0 {
		out.RetryAfter = strconv.Itoa(max(1, int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	return out
}

func internalError(err error) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: "internal_error", Message: err.Error()}
}
