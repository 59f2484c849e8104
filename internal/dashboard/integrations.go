package dashboard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mono/webhookd/apitype"
)

// TestEventType is the type of a test send that names no catalogue type
// (admin.TestEventType).
const TestEventType = "webhook.test"

// HeaderRows is how many name/value rows the custom headers form has: the
// API's limit (webhookrule.HeadersMax).
const HeaderRows = 10

// eventTypes is the catalogue through the API's ListEventTypes (GET
// /v1/event-types, by name).
func (d *Dashboard) eventTypes(r *http.Request) ([]apitype.EventType, *apiError) {
	out, err := d.api.ListEventTypes(r.Context(), sessionFrom(r.Context()).Principal, &apitype.EventTypeList{})
	if err != nil {
		return nil, opError(err)
	}
	return out.Data, nil
}

// --- Send test event ---

// testSendView is the Send test event form: the type chosen, the API's
// error about it, the types to choose from, and the last test's result.
type testSendView struct {
	Type   string
	Error  string
	Types  []apitype.EventType
	Result *testResult
}

// testResult is the one attempt of a test send, as shown.
type testResult struct {
	DeliveryID string
	EventID    string
	EventType  string
	Succeeded  bool
	StartedAt  time.Time
	// Status is the status code, or "—" when there was no answer.
	Status       string
	Duration     time.Duration
	ErrorKind    string
	ErrorMessage string
	Excerpt      string
	Cut          bool
	// Href is the delivery in the detail view's deliveries, searched by
	// its event id.
	Href string
}

// sendTest sends a test event through POST /v1/webhooks/{id}/test and
// shows its result on the detail view (after a redirect, so that reloading
// the page does not send another). The result is read back from the test
// delivery the API recorded (GET /v1/deliveries/{id}): the same attempt the
// API answered with.
func (d *Dashboard) sendTest(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	eventType := strings.TrimSpace(r.PostFormValue("type"))
	req := &apitype.TestSendRequest{ID: hook.ID}
	if eventType != "" && eventType != TestEventType {
		req.Type = &eventType
	}
	out, err := d.api.SendTest(r.Context(), s.Principal, req)
	if err != nil {
		e := opError(err)
		if e.Field == "type" && e.Status < 500 {
			d.showWebhook(w, r, hook, &detail{
				Test:   &testSendView{Type: eventType, Error: e.Message},
				Status: e.Status, Error: "No test event was sent: " + e.Message,
			})
			return
		}
		d.apiFailed(w, r, e, Prefix+"/webhooks/"+url.PathEscape(hook.ID))
		return
	}
	http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(hook.ID)+"?"+url.Values{"test": {out.DeliveryID}}.Encode()+"#test-result", http.StatusSeeOther)
}

// loadTestResult is the result of the test delivery id of hook, or nil
// when id is no test delivery of it (a link edited by hand shows nothing).
func (d *Dashboard) loadTestResult(r *http.Request, hook *apiWebhook, id string) (*testResult, *apiError) {
	dl, err := d.api.GetDelivery(r.Context(), sessionFrom(r.Context()).Principal, &apitype.DeliveryGet{ID: id})
	if err != nil {
		if e := opError(err); e.Status >= 500 {
			return nil, e
		}
		return nil, nil
	}
	switch {
	case !dl.Test || dl.WebhookID != hook.ID || len(dl.Attempts) == 0:
		return nil, nil
	}
	// The test's own attempt is the first of the first generation; a
	// replay adds more, which the deliveries list shows.
	a := dl.Attempts[0]
	res := &testResult{
		DeliveryID: dl.ID, EventID: dl.EventID, EventType: dl.EventType, StartedAt: a.StartedAt, Status: "—",
		Duration: time.Duration(a.DurationMS*1000) * time.Microsecond,
		Href:     Prefix + "/webhooks/" + url.PathEscape(hook.ID) + "?" + url.Values{"event_id": {dl.EventID}}.Encode() + "#" + dl.ID,
	}
	if a.StatusCode != nil {
		res.Status = strconv.Itoa(*a.StatusCode)
	}
	if a.ErrorKind != nil {
		res.ErrorKind = *a.ErrorKind
	}
	if a.ErrorMessage != nil {
		res.ErrorMessage = *a.ErrorMessage
	}
	// As outbound.Result.Succeeded judges it.
	res.Succeeded = res.ErrorKind == "" && a.StatusCode != nil && *a.StatusCode >= 200 && *a.StatusCode <= 299
	if a.ResponseExcerpt != nil {
		res.Excerpt = *a.ResponseExcerpt
		if len(res.Excerpt) > ExcerptShown {
			res.Excerpt, res.Cut = strings.ToValidUTF8(res.Excerpt[:ExcerptShown], ""), true
		}
	}
	return res, nil
}

// --- Custom headers ---

// headersForm is the custom headers form: HeaderRows name/value rows (more
// if more were sent). Values are never put back into the page, not even
// the user's own after an error.
type headersForm struct {
	Rows []headerRow
	// Error is an error about the whole set (too many), shown above the
	// rows.
	Error string
	// Open says the form is shown unfolded (after an error).
	Open bool
}

type headerRow struct {
	Index int
	Name  string
	// HadValue says a value was typed (and must be typed again).
	HadValue bool
	// Error is the API's message about this header; OnValue says it is
	// about the value rather than the name.
	Error   string
	OnValue bool
}

// Number is the row's 1-based number, for labels.
func (h headerRow) Number() int { return h.Index + 1 }

func newHeadersForm(names []string) headersForm {
	f := headersForm{}
	for i := range max(HeaderRows, len(names)) {
		row := headerRow{Index: i}
		if i < len(names) {
			row.Name = names[i]
		}
		f.Rows = append(f.Rows, row)
	}
	return f
}

// setHeaders replaces the webhook's custom headers through PATCH
// /v1/webhooks/{id} {"headers":{…}}: the rows with a name (blank rows are
// ignored; none removes every header). An error is shown beside the row
// it names, and nothing is changed.
func (d *Dashboard) setHeaders(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	names, values := r.PostForm["header_name"], r.PostForm["header_value"]
	n := max(len(names), len(values))
	trimmed := make([]string, n)
	for i := range n {
		if i < len(names) {
			trimmed[i] = strings.TrimSpace(names[i])
		}
	}
	form := newHeadersForm(trimmed)
	form.Open = true
	for i := range n {
		form.Rows[i].HadValue = i < len(values) && values[i] != ""
	}
	fail := func(status int, msg string) {
		d.showWebhook(w, r, hook, &detail{Headers: &form, Status: status,
			Error: "The custom headers were not changed: " + msg + " Values are never shown again: type them again before saving."})
	}

	headers := map[string]string{}
	for i := range n {
		name, value := trimmed[i], ""
		if i < len(values) {
			value = values[i]
		}
		switch {
		case name == "" && value == "":
			continue // a blank row
		case name == "":
			form.Rows[i].Error = "Give this header a name, or clear its value."
			fail(http.StatusUnprocessableEntity, "header "+strconv.Itoa(i+1)+" has a value but no name.")
			return
		}
		if _, dup := headers[name]; dup {
			form.Rows[i].Error = "the same header name is given twice (names are case-insensitive)"
			fail(http.StatusUnprocessableEntity, form.Rows[i].Error+".")
			return
		}
		headers[name] = value
	}
	if _, err := d.api.UpdateWebhook(r.Context(), s.Principal, &apitype.WebhookPatch{ID: hook.ID, Headers: &headers}); err != nil {
		e := opError(err)
		if e.Status >= 500 || e.Status == http.StatusNotFound {
			d.apiFailed(w, r, e, "")
			return
		}
		placed := false
		if name, ok := strings.CutPrefix(e.Field, "headers."); ok {
			for i := range form.Rows {
				if form.Rows[i].Name == name {
					form.Rows[i].Error, form.Rows[i].OnValue = e.Message, e.Code == "invalid_header_value"
					placed = true
					break
				}
			}
		}
		if !placed {
			form.Error = e.Message
		}
		fail(e.Status, e.Message+".")
		return
	}
	notice := "headers"
	if len(headers) == 0 {
		notice = "noheaders"
	}
	http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(hook.ID)+"?notice="+notice+"#headers-h", http.StatusSeeOther)
}

// --- Event types ---

// eventTypeRow is a catalogue entry as the Event types page shows it:
// schema and example indented.
type eventTypeRow struct {
	apitype.EventType
	SchemaText  string
	ExampleText string
}

func indentJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// eventTypesPage lists the event catalogue (GET /v1/event-types): read-only.
func (d *Dashboard) eventTypesPage(w http.ResponseWriter, r *http.Request) {
	types, e := d.eventTypes(r)
	if e != nil {
		d.apiFailed(w, r, e, "")
		return
	}
	rows := make([]eventTypeRow, len(types))
	for i, et := range types {
		rows[i] = eventTypeRow{EventType: et, SchemaText: indentJSON(et.Schema), ExampleText: indentJSON(et.Example)}
	}
	d.render(w, r, http.StatusOK, "eventtypes", &view{Title: "Event types", Nav: "event-types", Data: rows,
		Crumbs: []crumb{{Label: "Event types"}}})
}
