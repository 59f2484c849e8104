package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
)

// The detail view's endpoint lifecycle: rotate the secret with an overlap,
// the event-type filter, pause and resume, and the endpoint's health. Each
// goes through the API's route (POST /v1/webhooks/{id}/rotate-secret,
// PATCH /v1/webhooks/{id}, GET /v1/webhooks/{id}/health).

// apiHealth is GET /v1/webhooks/{id}/health, with what the templates ask
// of it.
type apiHealth struct {
	apitype.WebhookHealth
}

// Rate is the last hour's success rate as shown ("92.5 %"), or "—"
// without attempts.
func (h apiHealth) Rate() string {
	if h.LastHour.SuccessRate == nil {
		return "—"
	}
	return strings.TrimSuffix(strconv.FormatFloat(*h.LastHour.SuccessRate*100, 'f', 1, 64), ".0") + " %"
}

// Class is the health panel's colour, by the API's rule
// (admin.EndpointState): failing or degraded (the last attempt failed;
// degraded when one succeeded within the hour), ok (it succeeded) or none
// (never attempted).
func (h apiHealth) Class() string { return admin.EndpointState(&h.WebhookHealth) }

// RotateOverlapDefault is the Rotate secret form's default overlap: the
// API's (admin.RotationOverlapDefault).
const RotateOverlapDefault = "24h"

// overlapChoice is one overlap the Rotate secret form offers.
type overlapChoice struct{ Value, Label string }

// OverlapChoices are the overlaps offered: the API takes 0 to 7 days.
var overlapChoices = []overlapChoice{
	{"0", "None: the old secret stops signing at once"},
	{"1h", "1 hour"},
	{"24h", "24 hours"},
	{"7d", "7 days"},
}

// rotateView is the Rotate secret form: the overlap chosen, the API's error
// about it, and just after a rotation its result.
type rotateView struct {
	Choice string
	Error  string
	Result *rotateResult
}

// Choices are the overlaps offered.
func (rotateView) Choices() []overlapChoice { return overlapChoices }

// rotateResult is a rotation just made: the new secret, shown this once,
// and until when the old one signs too (nil: it stopped at once).
type rotateResult struct {
	Secret        string
	PreviousUntil *time.Time
}

// rotateSecret rotates the webhook's secret through POST
// /v1/webhooks/{id}/rotate-secret and answers the detail view with the new
// secret, this once: it is not put in any URL, and the page is not cached
// (the script also turns the page's history entry into a plain GET, so a
// reload shows the page without it and rotates nothing).
func (d *Dashboard) rotateSecret(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	choice := strings.TrimSpace(r.PostFormValue("expires_in"))
	if choice == "" {
		choice = RotateOverlapDefault
	}
	out, err := d.api.RotateWebhookSecret(r.Context(), s.Principal, &apitype.WebhookRotateSecret{ID: hook.ID, ExpiresIn: &choice})
	if err != nil {
		e := opError(err)
		if e.Status >= 500 || e.Status == http.StatusNotFound {
			d.apiFailed(w, r, e, "")
			return
		}
		d.showWebhook(w, r, hook, &detail{Rotate: &rotateView{Choice: choice, Error: e.Message}, Status: e.Status,
			Error: "The secret was not rotated: " + e.Message})
		return
	}
	d.showWebhook(w, r, &apiWebhook{*out}, &detail{Rotate: &rotateView{Choice: choice,
		Result: &rotateResult{Secret: out.Secret, PreviousUntil: out.PreviousSecretExpiresAt}}})
}

// filterForm is the event-type filter form: the text as typed (one entry a
// line, or comma-separated) and the API's error about it.
type filterForm struct {
	Text  string
	Error string
	// Open says the form is shown unfolded (after an error).
	Open bool
}

// filterEntries splits the filter form's text into its entries: one a
// line or comma-separated, blanks dropped. None means every type.
func filterEntries(text string) []string {
	out := []string{}
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
		if entry := strings.TrimSpace(line); entry != "" {
			out = append(out, entry)
		}
	}
	return out
}

// setEventTypes replaces the webhook's event-type filter through PATCH
// /v1/webhooks/{id} {"event_types":[…]}. The API's error is shown beside
// the field, naming the entry at fault, and nothing is changed.
func (d *Dashboard) setEventTypes(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	text := r.PostFormValue("event_types")
	entries := filterEntries(text)
	_, err := d.api.UpdateWebhook(r.Context(), s.Principal, &apitype.WebhookPatch{ID: hook.ID, EventTypes: &entries})
	if err != nil {
		e := opError(err)
		if e.Status >= 500 || e.Status == http.StatusNotFound {
			d.apiFailed(w, r, e, "")
			return
		}
		msg := e.Message
		if i, ok := entryIndex(e.Field); ok && i < len(entries) {
			msg = fmt.Sprintf("Entry %d (%q): %s", i+1, entries[i], e.Message)
		}
		d.showWebhook(w, r, hook, &detail{Filter: &filterForm{Text: text, Error: msg, Open: true}, Status: e.Status,
			Error: "The event-type filter was not changed: " + msg})
		return
	}
	notice := "filter"
	if len(entries) == 0 {
		notice = "nofilter"
	}
	http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(hook.ID)+"?notice="+notice+"#filter-h", http.StatusSeeOther)
}

// entryIndex reads the i of an API error's field event_types[i].
func entryIndex(field string) (int, bool) {
	rest, ok := strings.CutPrefix(field, "event_types[")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
	return n, err == nil && strings.HasSuffix(rest, "]") && n >= 0
}

// confirmPause asks before pausing; a paused webhook goes back to its page.
func (d *Dashboard) confirmPause(w http.ResponseWriter, r *http.Request) {
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	if hook.Paused {
		http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(hook.ID)+"#pause-h", http.StatusSeeOther)
		return
	}
	s := sessionFrom(r.Context())
	d.render(w, r, http.StatusOK, "pause", &view{Title: "Pause webhook", Nav: "settings", Data: hook,
		Crumbs: webhookCrumbs(hook, s, crumb{Label: "Webhook", Href: Prefix + "/webhooks/" + hook.ID}, crumb{Label: "Pause"})})
}

// pauseWebhook and resumeWebhook are PATCH /v1/webhooks/{id}
// {"paused":true|false}.
func (d *Dashboard) pauseWebhook(w http.ResponseWriter, r *http.Request)  { d.setPaused(w, r, true) }
func (d *Dashboard) resumeWebhook(w http.ResponseWriter, r *http.Request) { d.setPaused(w, r, false) }

func (d *Dashboard) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	s := sessionFrom(r.Context())
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	if _, err := d.api.UpdateWebhook(r.Context(), s.Principal, &apitype.WebhookPatch{ID: hook.ID, Paused: &paused}); err != nil {
		d.apiFailed(w, r, opError(err), Prefix+"/webhooks/"+url.PathEscape(hook.ID))
		return
	}
	notice := "resumed"
	if paused {
		notice = "paused"
	}
	http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(hook.ID)+"?notice="+notice+"#pause-h", http.StatusSeeOther)
}
