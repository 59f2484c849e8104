package dashboard

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
)

// deliveryRow is one delivery as listed, with its attempts.
type deliveryRow struct {
	apitype.Delivery
	// LastStatus is the last attempt's status code or error kind.
	LastStatus string
	Attempts   []attemptRow
	Replayable bool
}

type attemptRow struct {
	Number       int
	Generation   int
	Counted      bool
	StartedAt    time.Time
	Duration     time.Duration
	Status       string
	ErrorKind    string
	ErrorMessage string
	Excerpt      string
	// Cut says the excerpt shown is shorter than the one stored.
	Cut bool
}

// deliveryList is a page of deliveries and what their forms need.
type deliveryList struct {
	Rows []deliveryRow
	CSRF string
	// From is where a replay returns to: "webhook" or "dead".
	From string
	// ShowAccount adds the account and webhook to each row (dead view).
	ShowAccount bool
}

// listDeliveries lists a page of deliveries through the API's
// ListDeliveries with filter (GET /v1/deliveries's parameters; the API
// validates them) and their attempts through ListDeliveryAttempts. The
// error is the API's, naming the parameter at fault.
func (d *Dashboard) listDeliveries(r *http.Request, filter url.Values, cursor string) (deliveryList, string, *apiError) {
	s := sessionFrom(r.Context())
	req := deliveryListOf(filter)
	req.Limit = DeliveriesPageDefault
	if cursor != "" {
		req.Cursor = &cursor
	}
	page, err := d.api.ListDeliveries(r.Context(), s.Principal, req)
	if err != nil {
		return deliveryList{}, "", opError(err)
	}
	ids := make([]string, len(page.Data))
	for i, dl := range page.Data {
		ids[i] = dl.ID
	}
	// The attempts of the whole page, in one query.
	attempts, err := d.api.ListDeliveryAttempts(r.Context(), s.Principal, &admin.DeliveryAttemptsRequest{IDs: ids, ExcerptMax: ExcerptShown})
	if err != nil {
		return deliveryList{}, "", opError(err)
	}
	list := deliveryList{Rows: make([]deliveryRow, len(page.Data))}
	for i, dl := range page.Data {
		row := deliveryRow{Delivery: dl, LastStatus: "—", Replayable: dl.State == apitype.StateDead}
		for _, a := range attempts.Attempts[dl.ID] {
			row.Attempts = append(row.Attempts, newAttemptRow(&a))
		}
		if n := len(row.Attempts); n > 0 {
			row.LastStatus = row.Attempts[n-1].Status
		}
		list.Rows[i] = row
	}
	return list, page.NextCursor, nil
}

// deliveryListOf is the listing of filter's parameters: each one given
// (even empty) is passed for the API to validate.
func deliveryListOf(filter url.Values) *apitype.DeliveryList {
	req := &apitype.DeliveryList{}
	for name, dst := range map[string]**string{
		"state": &req.State, "account_id": &req.AccountID, "webhook_id": &req.WebhookID,
		"event_type": &req.EventType, "event_id": &req.EventID,
		"created_after": &req.CreatedAfter, "created_before": &req.CreatedBefore,
	} {
		if v, has := filter[name]; has {
			*dst = &v[0]
		}
	}
	return req
}

func newAttemptRow(a *admin.ListedAttempt) attemptRow {
	row := attemptRow{Number: a.Number, Generation: a.Generation, Counted: a.Counted, StartedAt: a.StartedAt,
		Duration: time.Duration(math.Round(a.DurationMS*1000)) * time.Microsecond, Cut: a.ExcerptCut}
	switch {
	case a.StatusCode != nil:
		row.Status = strconv.Itoa(*a.StatusCode)
	case a.ErrorKind != nil:
		row.Status = *a.ErrorKind
	default:
		row.Status = "—"
	}
	if a.ErrorKind != nil {
		row.ErrorKind = *a.ErrorKind
	}
	if a.ErrorMessage != nil {
		row.ErrorMessage = *a.ErrorMessage
	}
	if a.ResponseExcerpt != nil {
		row.Excerpt = *a.ResponseExcerpt
	}
	return row
}

// replayDelivery replays one dead delivery through the API's
// ReplayDelivery (POST /v1/deliveries/{id}/replay) and returns to the page
// the button was on.
func (d *Dashboard) replayDelivery(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	back := Prefix + "/settings/personal/api"
	if r.PostFormValue("from") == "dead" && s.Admin() {
		back = Prefix + "/dead"
	}
	out, err := d.api.ReplayDelivery(r.Context(), s.Principal, &apitype.DeliveryReplay{ID: r.PathValue("id")})
	if err != nil {
		d.apiFailed(w, r, opError(err), back)
		return
	}
	if back == Prefix+"/dead" {
		http.Redirect(w, r, back+"?notice=replayed", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(out.WebhookID)+"?notice=replayed#"+out.ID, http.StatusSeeOther)
}

// deadFilters are the dead view's filters: GET /v1/deliveries's, with
// state=dead.
var deadFilters = []string{"account_id", "webhook_id", "event_type", "event_id", "created_after", "created_before"}

type deadData struct {
	Filter     map[string]string
	Errors     map[string]string
	Deliveries deliveryList
	// BulkHref is the bulk replay of this filter; NextHref the next page.
	BulkHref string
	NextHref string
}

// readFilter takes the dead view's filters from q, trimmed, turning a
// browser's datetime-local value (no zone) into an RFC 3339 UTC time.
func readFilter(q url.Values) map[string]string {
	f := map[string]string{}
	for _, name := range deadFilters {
		v := strings.TrimSpace(q.Get(name))
		if v == "" {
			continue
		}
		if strings.HasPrefix(name, "created_") {
			v = localToRFC3339(v)
		}
		f[name] = v
	}
	return f
}

func localToRFC3339(v string) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return v // the API says what is wrong with it
}

func filterValues(f map[string]string) url.Values {
	q := url.Values{}
	for k, v := range f {
		q.Set(k, v)
	}
	return q
}

func (d *Dashboard) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if !sessionFrom(r.Context()).Admin() {
		d.errorPage(w, r, http.StatusForbidden, "Admin keys only", "Dead deliveries across accounts are for admin keys. Your account's deliveries are on each webhook's page.", Prefix+"/settings/personal/api")
		return false
	}
	return true
}

func (d *Dashboard) deadView(r *http.Request) *view {
	v := &view{Title: "Dead deliveries", Nav: "dead", Crumbs: []crumb{{Label: "Dead deliveries"}}}
	v.Notice = notices[r.URL.Query().Get("notice")]
	return v
}

// dead lists dead deliveries of every account (admin keys), filtered like
// GET /v1/deliveries?state=dead.
func (d *Dashboard) dead(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdmin(w, r) {
		return
	}
	s := sessionFrom(r.Context())
	v := d.deadView(r)
	data := &deadData{Filter: readFilter(r.URL.Query())}
	v.Data = data
	q := filterValues(data.Filter)
	data.BulkHref = Prefix + "/dead/replay?" + q.Encode()
	q.Set("state", apitype.StateDead)
	list, next, e := d.listDeliveries(r, q, r.URL.Query().Get("cursor"))
	if next != "" {
		nq := filterValues(data.Filter)
		nq.Set("cursor", next)
		data.NextHref = Prefix + "/dead?" + nq.Encode()
	}
	status := http.StatusOK
	if e != nil {
		if e.Status >= 500 || e.Status == http.StatusNotFound {
			d.apiFailed(w, r, e, "")
			return
		}
		status = e.Status
		if e.Field != "" && e.Field != "cursor" {
			data.Errors = map[string]string{e.Field: e.Message}
		}
		v.Error = e.Message
	}
	list.CSRF, list.From, list.ShowAccount = s.CSRF, "dead", true
	data.Deliveries = list
	d.render(w, r, status, "dead", v)
}

type bulkData struct {
	Filter map[string]string
	// BackHref is the dead view of the same filter.
	BackHref string
	// Count is how many deliveries the bulk replay takes now; TooMany
	// says it is over the API's limit.
	Count   int
	TooMany bool
	Max     int
	// Blocked says why the filter can't be replayed in bulk.
	Blocked string
}

// bulkFilter is the bulk replay the dead view's filter f asks for (the
// API's POST /v1/deliveries/replay body), or why the dead view's filter
// can't be one. Everything else about the filter (the webhook, the
// account, the times) is the API's to resolve and refuse.
func bulkFilter(f map[string]string) (*apitype.BulkReplay, string) {
	if f["event_type"] != "" || f["event_id"] != "" {
		return nil, "A bulk replay selects by account, webhook and creation time; remove the event type and event id filters to replay in bulk."
	}
	if f["account_id"] == "" && f["webhook_id"] == "" {
		return nil, "A bulk replay never crosses accounts: filter by account or webhook first."
	}
	body := &apitype.BulkReplay{}
	for k, dst := range map[string]**string{"account_id": &body.AccountID, "webhook_id": &body.WebhookID, "created_after": &body.CreatedAfter, "created_before": &body.CreatedBefore} {
		if v := f[k]; v != "" {
			*dst = &v
		}
	}
	return body, ""
}

// confirmBulkReplay shows how many dead deliveries the filter's bulk replay
// takes, before anything is replayed.
func (d *Dashboard) confirmBulkReplay(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdmin(w, r) {
		return
	}
	s := sessionFrom(r.Context())
	f := readFilter(r.URL.Query())
	q := filterValues(f)
	// The listing validates the filter exactly as the API does; on an
	// error, the dead view shows it beside the field.
	probe := deliveryListOf(q)
	probe.State, probe.Limit = new(string), 1
	*probe.State = apitype.StateDead
	if _, err := d.api.ListDeliveries(r.Context(), s.Principal, probe); err != nil {
		http.Redirect(w, r, Prefix+"/dead?"+q.Encode(), http.StatusSeeOther)
		return
	}
	data := &bulkData{Filter: f, BackHref: Prefix + "/dead?" + q.Encode(), Max: engine.ReplayBatchMax}
	v := &view{Title: "Replay dead deliveries", Nav: "dead", Data: data,
		Crumbs: []crumb{{Label: "Dead deliveries", Href: Prefix + "/dead?" + q.Encode()}, {Label: "Bulk replay"}}}
	body, blocked := bulkFilter(f)
	if body != nil {
		// Counted by the API's own resolution of the filter: what POST
		// /v1/deliveries/replay will replay.
		n, refused, err := d.api.CountBulkReplay(r.Context(), s.Principal, body, engine.ReplayBatchMax+1)
		if err != nil {
			d.logger.Error("error counting deliveries to replay", zap.Error(err))
			d.serverError(w, r)
			return
		}
		blocked = refused
		data.Count, data.TooMany = n, n > engine.ReplayBatchMax
	}
	data.Blocked = blocked
	d.render(w, r, http.StatusOK, "bulk", v)
}

// bulkReplay starts the bulk replay through the API's ReplayDeliveries
// (POST /v1/deliveries/replay) and shows its progress.
func (d *Dashboard) bulkReplay(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdmin(w, r) {
		return
	}
	s := sessionFrom(r.Context())
	f := readFilter(r.PostForm)
	body, blocked := bulkFilter(f)
	if blocked != "" {
		d.errorPage(w, r, http.StatusUnprocessableEntity, "Not replayed", blocked, Prefix+"/dead?"+filterValues(f).Encode())
		return
	}
	batch, err := d.api.ReplayDeliveries(r.Context(), s.Principal, body)
	if err != nil {
		d.apiFailed(w, r, opError(err), Prefix+"/dead?"+filterValues(f).Encode())
		return
	}
	http.Redirect(w, r, Prefix+"/replays/"+url.PathEscape(batch.ID), http.StatusSeeOther)
}

func (d *Dashboard) replayBatch(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdmin(w, r) {
		return
	}
	s := sessionFrom(r.Context())
	batch, err := d.api.GetReplayBatch(r.Context(), s.Principal, &apitype.ReplayBatchGet{ID: r.PathValue("id")})
	if err != nil {
		d.apiFailed(w, r, opError(err), Prefix+"/dead")
		return
	}
	d.render(w, r, http.StatusOK, "batch", &view{Title: "Bulk replay", Nav: "dead", Data: batch,
		Crumbs: []crumb{{Label: "Dead deliveries", Href: Prefix + "/dead"}, {Label: "Bulk replay"}}})
}
