package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// apiError is the one error shape every route answers with:
//
//	{"error":{"code":"invalid_url","message":"...","field":"url"}}
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// retryAfter, when set, is sent as the Retry-After header.
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.Message }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	setRetryAfter(w, e)
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

// errNotFound answers an unknown (or another account's) object, named by
// the path's id like a malformed id is.
func errNotFound(what string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: what + " not found"}
}

// errInternal answers an unexpected error: give it the error (the
// callers log it first) and a database that is away (store.Unavailable)
// is answered 503 database_unavailable with Retry-After instead of 500
// internal_error (see internalError).
func errInternal(causes ...error) *apiError {
	return internalError(causes)
}

// decodeJSON reads one JSON object from r's body (at most limit bytes) into
// dst, rejecting unknown fields, wrong types and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) *apiError {
	// JSON, or nothing, or curl's default for -d (the body is parsed as JSON
	// whatever it says); anything else is a client mistake worth naming.
	if ct := strings.ToLower(r.Header.Get("Content-Type")); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "the request body must be application/json"}
	}
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, limit))
	// A top-level null decodes into a struct without error, and anything
	// else that is not an object deserves the same answer.
	if c, err := firstNonSpace(body); err == nil && c != '{' {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body must be a JSON object"}
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
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body must hold exactly one JSON object"}
	}
	return nil
}

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

func jsonError(err error, limit int64) *apiError {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, errBodyTooSlow):
		return &apiError{Status: http.StatusRequestTimeout, Code: "body_too_slow", Message: "the request body arrived too slowly: " + err.Error()}
	case errors.As(err, &maxErr):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the request body is larger than the limit of %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body is empty; a JSON object is required"}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body is not valid JSON: " + err.Error()}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body must be a JSON object"}
		}
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_type", Field: field, Message: fmt.Sprintf("%s must be a JSON %s, not %s", field, jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apiError{Status: http.StatusBadRequest, Code: "unknown_field", Field: field, Message: fmt.Sprintf("unknown field %q", field)}
	default:
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the request body is not valid JSON: " + err.Error()}
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
