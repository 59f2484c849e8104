package dashboard

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/webhookrule"
)

// apiWebhook is a webhook as the API answers it, with what the templates
// ask of it.
type apiWebhook struct {
	apitype.Webhook
}

// GonePaused says the webhook was paused because its endpoint answered
// 410 Gone (on_gone pause).
func (h apiWebhook) GonePaused() bool {
	return h.PauseReason != nil && *h.PauseReason == apitype.PauseGone
}

// AutoPaused says the webhook was paused by webhookd (its endpoint kept
// failing), not by hand.
func (h apiWebhook) AutoPaused() bool {
	return h.PauseReason != nil && *h.PauseReason == apitype.PauseAuto
}

// Notices shown after a redirect, by the code in ?notice=. Only these
// fixed texts are ever shown from the query string.
var notices = map[string]string{
	"created":   "We successfully created your webhook.",
	"deleted":   "Webhook deleted. Its pending and paused deliveries were cancelled; creating the same URL again gives a new secret.",
	"replayed":  "Delivery replayed: it is back on its schedule with a new generation of ten attempts.",
	"headers":   "Custom headers saved. They are sent with every attempt from now on.",
	"noheaders": "Custom headers removed.",
	"tls":       "TLS setting saved. Attempts present it from now on.",
	"notls":     "TLS setting removed: no client certificate, public CAs only.",
	"oauth":     "OAuth2 setting saved. Attempts send a token from it from now on.",
	"nooauth":   "OAuth2 setting removed.",
	"delivery":  "Signature and 410 settings saved. They apply to attempts from now on.",
	"filter":    "Event-type filter saved. It applies to events accepted from now on.",
	"nofilter":  "Event-type filter removed: the webhook receives every event type accepted from now on.",
	"paused":    "Webhook paused. New deliveries wait in state paused; nothing is sent or dropped until you resume it.",
	"resumed":   "Webhook resumed. Its paused deliveries are back on their schedule, the ones due first.",
	"revoked":   "API key revoked. Anything using it now gets 401.",
	"skipped":   "Blocked delivery skipped: it stays dead (replaying it sends it outside the order), and the next delivery in line goes.",
}

func settingsCrumbs(more ...crumb) []crumb {
	return append([]crumb{{Label: "Settings", Href: Prefix + "/settings"}}, more...)
}

func (d *Dashboard) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, Prefix+"/settings/personal/api", http.StatusSeeOther)
}

func (d *Dashboard) settings(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "settings", &view{Title: "Settings", Nav: "settings", Crumbs: []crumb{{Label: "Settings"}}})
}

func (d *Dashboard) personal(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "personal", &view{Title: "Personal", Nav: "settings", Crumbs: settingsCrumbs(crumb{Label: "Personal"})})
}

// health sums up a webhook's endpoint health on the Webhooks page.
type health struct {
	// Class is ok, degraded, failing or none (for the colour; the label
	// says the same in words).
	Class  string
	Label  string
	Detail string
}

// judgeHealth is the Webhooks page's summary of the health operation's
// answer (GET /v1/webhooks/{id}/health), by the API's one rule
// (admin.EndpointState), the detail view's too.
func judgeHealth(h *apitype.WebhookHealth) health {
	out := health{Class: admin.EndpointState(h)}
	switch out.Class {
	case admin.EndpointNone:
		out.Label = "No deliveries yet"
		return out
	case admin.EndpointOK:
		out.Label = "Healthy"
	case admin.EndpointDegraded:
		out.Label = "Degraded"
	default:
		out.Label = "Failing"
	}
	if n := h.LastHour.Attempts; n > 0 {
		out.Detail = strconv.Itoa(h.LastHour.Successes) + " of " + strconv.Itoa(n) + " attempts succeeded in the last hour"
	}
	return out
}

type webhookRow struct {
	apiWebhook
	Health health
	// Endpoint is the endpoint's health (GET /v1/webhooks/{id}/health).
	Endpoint apiHealth
}

type webhooksData struct {
	// AccountID is the account shown; an admin chooses it.
	AccountID    string
	AccountError string
	Webhooks     []webhookRow
	NextCursor   string
	Created      string
	// Limits are the account's and the signed-in key's (GET /v1/limits).
	Limits *apitype.Limits
}

// accountParam is the account a page acts on: an account key's own, or
// for an admin the account_id in the query (validated like the API does).
func accountParam(s *session, q url.Values) (accountID, errMsg string) {
	if !s.Admin() {
		return s.Principal.AccountID, ""
	}
	accountID = strings.TrimSpace(q.Get("account_id"))
	if accountID == "" {
		return "", ""
	}
	if err := webhookrule.ValidateAccountID(accountID); err != nil {
		return "", err.Error()
	}
	return accountID, ""
}

func (d *Dashboard) webhooks(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	q := r.URL.Query()
	v := &view{Title: "API", Nav: "settings", Crumbs: settingsCrumbs(crumb{Label: "Personal", Href: Prefix + "/settings/personal"}, crumb{Label: "API"})}
	data := &webhooksData{Created: q.Get("created")}
	v.Data = data
	v.Notice = notices[q.Get("notice")]
	data.AccountID, data.AccountError = accountParam(s, q)
	if data.AccountID == "" {
		data.AccountID = strings.TrimSpace(q.Get("account_id"))
		d.render(w, r, http.StatusOK, "webhooks", v)
		return
	}
	page, err := d.api.ListWebhooks(r.Context(), s.Principal, &apitype.WebhookList{AccountID: data.AccountID, Cursor: q.Get("cursor"), Limit: WebhooksPageDefault})
	if err != nil {
		e := opError(err)
		if e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity {
			v.Error = e.Message
			d.render(w, r, e.Status, "webhooks", v)
			return
		}
		d.apiFailed(w, r, e, "")
		return
	}
	for _, hook := range page.Data {
		row := webhookRow{apiWebhook: apiWebhook{hook}}
		h, err := d.api.GetWebhookHealth(r.Context(), s.Principal, &apitype.WebhookGet{ID: hook.ID})
		if err != nil {
			d.apiFailed(w, r, opError(err), "")
			return
		}
		row.Endpoint = apiHealth{*h}
		row.Health = judgeHealth(h)
		data.Webhooks = append(data.Webhooks, row)
	}
	data.NextCursor = page.NextCursor
	limits, err := d.api.GetLimits(r.Context(), s.Principal, &apitype.LimitsQuery{AccountID: data.AccountID})
	if err != nil {
		d.apiFailed(w, r, opError(err), "")
		return
	}
	data.Limits = limits
	d.render(w, r, http.StatusOK, "webhooks", v)
}

// webhookForm is the New webhook form, as sent and as shown again with
// the API's error beside the field it names.
type webhookForm struct {
	AccountID   string
	URL         string
	Description string
	// Errors by field: url, description, account_id.
	Errors map[string]string
}

func (d *Dashboard) newWebhookView(f *webhookForm) *view {
	return &view{Title: "New webhook", Nav: "settings", Data: f, Crumbs: settingsCrumbs(
		crumb{Label: "Personal", Href: Prefix + "/settings/personal"},
		crumb{Label: "API", Href: apiPageURL(f.AccountID)},
		crumb{Label: "New webhook"})}
}

// apiPageURL is the Webhooks page of account (an admin's choice).
func apiPageURL(accountID string) string {
	if accountID == "" {
		return Prefix + "/settings/personal/api"
	}
	return Prefix + "/settings/personal/api?" + url.Values{"account_id": {accountID}}.Encode()
}

func (d *Dashboard) newWebhook(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	f := &webhookForm{AccountID: s.Principal.AccountID}
	if s.Admin() {
		f.AccountID = strings.TrimSpace(r.URL.Query().Get("account_id"))
	}
	d.render(w, r, http.StatusOK, "new", d.newWebhookView(f))
}

// createWebhook sends the form to POST /v1/webhooks: on success back to
// the list with the success alert; otherwise the form again, with the
// API's message beside the field, and nothing created.
func (d *Dashboard) createWebhook(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	f := &webhookForm{URL: r.PostFormValue("url"), Description: r.PostFormValue("description"), AccountID: s.Principal.AccountID}
	req := &apitype.WebhookCreate{URL: &f.URL, Description: &f.Description}
	if s.Admin() {
		f.AccountID = strings.TrimSpace(r.PostFormValue("account_id"))
		req.AccountID = &f.AccountID
	}
	created, err := d.api.CreateWebhook(r.Context(), s.Principal, req)
	if err != nil {
		e := opError(err)
		if e.Status >= 500 {
			d.apiFailed(w, r, e, "")
			return
		}
		v := d.newWebhookView(f)
		switch e.Field {
		case "url", "description", "account_id":
			f.Errors = map[string]string{e.Field: e.Message}
			v.Error = "The webhook was not created: " + e.Message
		default:
			v.Error = e.Message
		}
		d.render(w, r, e.Status, "new", v)
		return
	}
	q := url.Values{"notice": {"created"}, "created": {created.ID}}
	if s.Admin() {
		q.Set("account_id", created.AccountID)
	}
	http.Redirect(w, r, Prefix+"/settings/personal/api?"+q.Encode(), http.StatusSeeOther)
}

type webhookData struct {
	Webhook apiWebhook
	// Secret is set only when the user asked to see it without JavaScript.
	Secret     string
	Deliveries deliveryList
	EventID    string
	EventError string
	NextCursor string
	// Test is the Send test event form and the last test's result.
	Test testSendView
	// Headers is the custom headers form.
	Headers headersForm
	// Health is the endpoint's health panel.
	Health apiHealth
	// Rotate is the Rotate secret form and, just after a rotation, the new
	// secret (shown this once).
	Rotate rotateView
	// Filter is the event-type filter form.
	Filter filterForm
	// TLS is the mutual TLS form; OAuth the OAuth2 one.
	TLS   tlsForm
	OAuth oauthForm
	// Delivery is the Signatures and 410 form.
	Delivery deliveryForm
}

// detail is what a detail view shows beyond the webhook and its
// deliveries: the secret (no-script eye), a form sent back with the API's
// error, and that error's status and page-level message.
type detail struct {
	Secret  string
	Test    *testSendView
	Headers *headersForm
	Rotate  *rotateView
	Filter  *filterForm
	TLS     *tlsForm
	OAuth   *oauthForm
	// Delivery is the Signatures and 410 form sent back with an error.
	Delivery *deliveryForm
	Status   int
	Error    string
}

func webhookCrumbs(hook *apiWebhook, s *session, more ...crumb) []crumb {
	account := ""
	if s.Admin() {
		account = hook.AccountID
	}
	return settingsCrumbs(append([]crumb{
		{Label: "Personal", Href: Prefix + "/settings/personal"},
		{Label: "API", Href: apiPageURL(account)},
	}, more...)...)
}

// loadWebhook fetches the webhook of the path through the API's
// GetWebhook, answering the error page itself (404 for another account's)
// when it can't.
func (d *Dashboard) loadWebhook(w http.ResponseWriter, r *http.Request) (*apiWebhook, bool) {
	hook, err := d.api.GetWebhook(r.Context(), sessionFrom(r.Context()).Principal, &apitype.WebhookGet{ID: r.PathValue("id")})
	if err != nil {
		d.apiFailed(w, r, opError(err), "")
		return nil, false
	}
	return &apiWebhook{*hook}, true
}

func (d *Dashboard) webhook(w http.ResponseWriter, r *http.Request) {
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	d.showWebhook(w, r, hook, &detail{})
}

// showWebhook renders the detail view: the webhook, its secret hidden
// (unless given), the test send and custom headers forms (as sent back
// with an error, if any, or the last test's result), and a page of its
// deliveries.
func (d *Dashboard) showWebhook(w http.ResponseWriter, r *http.Request, hook *apiWebhook, dt *detail) {
	s := sessionFrom(r.Context())
	q := r.URL.Query()
	data := &webhookData{Webhook: *hook, Secret: dt.Secret, EventID: strings.TrimSpace(q.Get("event_id"))}
	v := &view{Title: "Webhook " + hook.URL, Nav: "settings", Data: data, Notice: notices[q.Get("notice")], Error: dt.Error,
		Crumbs: webhookCrumbs(hook, s, crumb{Label: "Webhook"})}
	if dt.Test != nil {
		data.Test = *dt.Test
	} else {
		data.Test = testSendView{Type: TestEventType}
		if id := q.Get("test"); id != "" {
			res, e := d.loadTestResult(r, hook, id)
			if e != nil {
				d.apiFailed(w, r, e, "")
				return
			}
			data.Test.Result = res
			if res != nil {
				data.Test.Type = res.EventType
			}
		}
	}
	if dt.Headers != nil {
		data.Headers = *dt.Headers
	} else {
		data.Headers = newHeadersForm(nil)
	}
	data.Rotate = rotateView{Choice: RotateOverlapDefault}
	if dt.Rotate != nil {
		data.Rotate = *dt.Rotate
	}
	data.Filter = filterForm{Text: strings.Join(hook.EventTypes, "\n")}
	if dt.Filter != nil {
		data.Filter = *dt.Filter
	}
	if dt.TLS != nil {
		data.TLS = *dt.TLS
	}
	data.OAuth = oauthForm{AuthStyle: "header"}
	if o := hook.OAuth; o != nil {
		data.OAuth = oauthForm{TokenURL: o.TokenURL, ClientID: o.ClientID, Scopes: strings.Join(o.Scopes, " "), Audience: o.Audience, AuthStyle: o.AuthStyle}
	}
	if dt.OAuth != nil {
		data.OAuth = *dt.OAuth
	}
	data.Delivery = deliveryForm{Scheme: hook.SignatureScheme, OnGone: hook.OnGone}
	if dt.Delivery != nil {
		data.Delivery = *dt.Delivery
	}
	h, err := d.api.GetWebhookHealth(r.Context(), s.Principal, &apitype.WebhookGet{ID: hook.ID})
	if err != nil {
		d.apiFailed(w, r, opError(err), "")
		return
	}
	data.Health = apiHealth{*h}
	types, e := d.eventTypes(r)
	if e != nil {
		d.apiFailed(w, r, e, "")
		return
	}
	data.Test.Types = types
	status := cmp.Or(dt.Status, http.StatusOK)
	filter := url.Values{"webhook_id": {hook.ID}}
	if data.EventID != "" {
		filter.Set("event_id", data.EventID)
	}
	list, next, e := d.listDeliveries(r, filter, q.Get("cursor"))
	switch {
	case e != nil && e.Field == "event_id":
		data.EventError = e.Message
		status = e.Status
	case e != nil && e.Field == "cursor":
		v.Error = e.Message
		status = e.Status
	case e != nil:
		d.apiFailed(w, r, e, "")
		return
	}
	list.CSRF, list.From = s.CSRF, "webhook"
	data.Deliveries, data.NextCursor = list, next
	d.render(w, r, status, "webhook", v)
}

// revealSecret answers the eye: GET /v1/webhooks/{id}/secret through the
// API (which records the reveal). The page's script asks for JSON; without
// script the detail view is shown with the secret.
func (d *Dashboard) revealSecret(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	out, err := d.api.RevealWebhookSecret(r.Context(), s.Principal, &apitype.WebhookGet{ID: r.PathValue("id")})
	var e *apiError
	if err != nil {
		e = opError(err)
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if e != nil {
			if e.Status >= 500 {
				d.apiFailed(w, r, e, "") // logs; answers HTML, which the script reports as a failure
				return
			}
			w.WriteHeader(e.Status)
			_ = json.NewEncoder(w).Encode(map[string]*apiError{"error": e})
			return
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	if e != nil {
		d.apiFailed(w, r, e, "")
		return
	}
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	d.showWebhook(w, r, hook, &detail{Secret: out.Secret})
}

func (d *Dashboard) confirmDelete(w http.ResponseWriter, r *http.Request) {
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	s := sessionFrom(r.Context())
	d.render(w, r, http.StatusOK, "delete", &view{Title: "Delete webhook", Nav: "settings", Data: hook,
		Crumbs: webhookCrumbs(hook, s, crumb{Label: "Webhook", Href: Prefix + "/webhooks/" + hook.ID}, crumb{Label: "Delete"})})
}

func (d *Dashboard) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	if _, err := d.api.DeleteWebhook(r.Context(), s.Principal, &apitype.WebhookGet{ID: hook.ID}); err != nil {
		d.apiFailed(w, r, opError(err), "")
		return
	}
	q := url.Values{"notice": {"deleted"}}
	if s.Admin() {
		q.Set("account_id", hook.AccountID)
	}
	http.Redirect(w, r, Prefix+"/settings/personal/api?"+q.Encode(), http.StatusSeeOther)
}
