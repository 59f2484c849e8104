package admin

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/ident"
)

// Page sizes of the list routes.
const (
	// LimitDefault is a list's page size when the request names none.
	LimitDefault = 100
	// LimitMax is the largest page size a request may ask for.
	LimitMax = 1000
)

// page is where a list request starts and how much it wants.
type page struct {
	limit int
	// before is the id the page continues below (exclusive); "" for the
	// first page.
	before string
}

// queryParams parses r's query string, refusing parameters other than
// allowed and any given twice, so that a misspelt filter is an error rather
// than silently ignored.
func queryParams(r *http.Request, allowed ...string) (url.Values, *Error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_query", Message: "the query string is malformed: " + err.Error()}
	}
	for name, values := range q {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			return nil, &Error{Status: http.StatusBadRequest, Code: "unknown_parameter", Field: name, Message: fmt.Sprintf("unknown query parameter %q", name)}
		}
		if len(values) > 1 {
			return nil, &Error{Status: http.StatusBadRequest, Code: "repeated_parameter", Field: name, Message: fmt.Sprintf("query parameter %q is given more than once", name)}
		}
	}
	return q, nil
}

// listQuery parses the query string of a list route: limit and cursor (for
// ids of type p) and the named filters, nothing else.
func listQuery(r *http.Request, p ident.Prefix, filters ...string) (url.Values, page, *Error) {
	q, apiErr := queryParams(r, append([]string{"limit", "cursor"}, filters...)...)
	if apiErr != nil {
		return nil, page{}, apiErr
	}
	pg, apiErr := parsePage(q, p)
	return q, pg, apiErr
}

// parsePage reads limit (1 to LimitMax, default LimitDefault) and cursor (as
// returned in next_cursor by a list of objects with ids of type p).
func parsePage(q url.Values, p ident.Prefix) (page, *Error) {
	pg := page{limit: LimitDefault}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil {
			return page{}, &Error{Status: http.StatusBadRequest, Code: "invalid_type", Field: "limit", Message: fmt.Sprintf("limit must be a whole number from 1 to %d", LimitMax)}
		}
		if n < 1 || n > LimitMax {
			return page{}, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_limit", Field: "limit", Message: fmt.Sprintf("limit must be from 1 to %d, not %d", LimitMax, n)}
		}
		pg.limit = n
	}
	if raw := q.Get("cursor"); raw != "" {
		id, err := base64.RawURLEncoding.DecodeString(raw)
		if err != nil || !ident.Valid(p, string(id)) {
			return page{}, &Error{Status: http.StatusBadRequest, Code: "invalid_cursor", Field: "cursor", Message: "cursor is not a cursor of this list: pass next_cursor from the previous page as it is"}
		}
		pg.before = string(id)
	}
	return pg, nil
}

// newPage makes the answer from rows fetched with limit pg.limit+1: the
// extra row, if any, only says that there is a next page.
func newPage[T any](rows []T, pg page, id func(T) string) apitype.Page[T] {
	out := apitype.Page[T]{Data: rows}
	if len(rows) > pg.limit {
		out.Data = rows[:pg.limit]
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(id(out.Data[pg.limit-1])))
	}
	return out
}

// pathID returns the request's {id}, or a 404 naming the expected form when
// it is not an identifier of type p (what names the object: "webhook").
func pathID(r *http.Request, p ident.Prefix, what string) (string, *Error) {
	id := r.PathValue("id")
	if e := checkID(id, p, what); e != nil {
		return "", e
	}
	return id, nil
}

// checkID is pathID's rule for an operation's id: one that is not an
// identifier of type p is a 404 naming the expected form.
func checkID(id string, p ident.Prefix, what string) *Error {
	if !ident.Valid(p, id) {
		return &Error{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: fmt.Sprintf("%s not found (ids look like %s_ followed by 32 hex digits)", what, p)}
	}
	return nil
}

// pageOf is parsePage for an operation's typed request: limit 0 is the
// default, cursor "" the first page.
func pageOf(limit int, cursor string, p ident.Prefix) (page, *Error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return parsePage(q, p)
}
