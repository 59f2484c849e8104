package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/mono/webhookd/internal/admin"
)

// apiError is an error answered by the API: its status and its one error
// shape, {"error":{"code","message","field"}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
	// RetryAfter is the answer's Retry-After header (a 429 or 503).
	RetryAfter string `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

// recorder is an in-memory http.ResponseWriter for in-process API calls.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// call makes one request to the API's route method path (with its query)
// in process, as principal p, sending body as JSON when it is not nil and
// decoding a success answer into out when it is not nil. An error answer
// comes back as *apiError; the API has logged anything unexpected.
func (d *Dashboard) call(ctx context.Context, p *admin.Principal, method, path string, body, out any) *apiError {
	var reqBody bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&reqBody).Encode(body); err != nil {
			return internalError(fmt.Errorf("error encoding API request: %w", err))
		}
	}
	req, err := http.NewRequestWithContext(admin.WithPrincipal(ctx, p), method, path, &reqBody)
	if err != nil {
		return internalError(fmt.Errorf("error building API request: %w", err))
	}
	req.RemoteAddr = "dashboard"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	d.apiH.ServeHTTP(rec, req)
	if rec.status >= 400 {
		var e struct {
			Error *apiError `json:"error"`
		}
		if err := json.Unmarshal(rec.body.Bytes(), &e); err != nil || e.Error == nil {
			return internalError(fmt.Errorf("API answered %d with an unexpected body", rec.status))
		}
		e.Error.Status = rec.status
		e.Error.RetryAfter = rec.header.Get("Retry-After")
		return e.Error
	}
	if out != nil {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return internalError(fmt.Errorf("error decoding API answer to %s %s: %w", method, req.URL.Path, err))
		}
	}
	return nil
}

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
