package apitype

import (
	"bytes"
	"encoding/json"
)

// Page is one page of a list route: Data, and NextCursor to pass as the
// next request's cursor, "" on the last page (null on the wire).
type Page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// MarshalJSON writes next_cursor null on the last page, and data [] when
// empty. HTML characters are left as they are, as the API writes them.
func (p Page[T]) MarshalJSON() ([]byte, error) {
	out := struct {
		Data       []T     `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}{Data: p.Data}
	if out.Data == nil {
		out.Data = []T{}
	}
	if p.NextCursor != "" {
		out.NextCursor = &p.NextCursor
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// List is the answer of a list route that is never paged (GET
// /v1/event-types, POST /v1/events/batch): {"data":[...]}.
type List[T any] struct {
	Data []T `json:"data"`
}
