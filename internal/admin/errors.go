package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Error is the one error of the API and of its typed operations (ops.go):
// every refusal, whoever the caller (the JSON API, the dashboard, the
// CLI), is an *Error carrying the HTTP status and the body's fields. On
// the wire it is
//
//	{"error":{"code":"invalid_url","message":"...","field":"url"}}
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (whole
	// seconds, at least 1): a 429 or a 503.
	RetryAfter time.Duration `json:"-"`
	// cause is what lies behind the answer, never sent: the unexpected
	// error of a 500/503 (errInternal), or a detail a caller in process
	// can read with errors.Is/As (the CLI does).
	cause error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns e's cause (nil when it has none).
func (e *Error) Unwrap() error { return e.cause }

// apiError is Error's former name, kept as an alias for the files not yet
// renamed (fifo.go and throttle.go are being edited by another change).
type apiError = Error

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	setRetryAfter(w, e)
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

// errNotFound answers an unknown (or another account's) object, named by
// the path's id like a malformed id is.
func errNotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: what + " not found"}
}

// errInternal answers an unexpected error: give it the error (the
// callers log it first) and a database that is away (store.Unavailable)
// is answered 503 database_unavailable with Retry-After instead of 500
// internal_error (see internalError).
func errInternal(causes ...error) *Error {
	return internalError(causes)
}

// decodeJSON reads one JSON object from r's body (at most limit bytes) into
// dst, rejecting unknown fields, wrong types and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) *Error {
	// JSON, or nothing, or curl's default for -d (the body is parsed as JSON
	// whatever it says); anything else is a client mistake worth naming.
	if ct := strings.ToLower(r.Header.Get("Content-Type")); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "the request body must be application/json"}
	}
	// A reader from the pool: one of 4 KiB a request was ~4 % of all that
	// the intake scenario allocated (the garbage collector's pace is set
	// by what is allocated: BENCHMARKS.md, issue 30).
	body := bodyReaders.Get().(*bufio.Reader)
	body.Reset(http.MaxBytesReader(w, r.Body, limit))
	defer func() {
		body.Reset(nil)
		bodyReaders.Put(body)
	}()
	// A top-level null decodes into a struct without error, and anything
	// else that is not an object deserves the same answer.
	if c, err := firstNonSpace(body); err == nil && c != '{' {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body must be a JSON object"}
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return jsonError(err, limit)
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body must hold exactly one JSON object"}
	}
	return nil
}

// bodyReaders are decodeJSON's buffered readers, reused across requests.
var bodyReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// firstNonSpace returns the first byte of r that is not JSON white space,
// leaving it unread. Its errors are the reader's.
func firstNonSpace(r *bufio.Reader) (byte, error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c, r.UnreadByte()
	}
}

func jsonError(err error, limit int64) *Error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, errBodyTooSlow):
		return &Error{Status: http.StatusRequestTimeout, Code: "body_too_slow", Message: "the request body arrived too slowly: " + err.Error()}
	case errors.As(err, &maxErr):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the request body is larger than the limit of %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body is empty; a JSON object is required"}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body is not valid JSON: " + err.Error()}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body must be a JSON object"}
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_type", Field: field, Message: fmt.Sprintf("%s must be a JSON %s, not %s", field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &Error{Status: http.StatusBadRequest, Code: "unknown_field", Field: field, Message: fmt.Sprintf("unknown field %q", field)}
	default:
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body is not valid JSON: " + err.Error()}
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	default:
		return "number"
	}
}
