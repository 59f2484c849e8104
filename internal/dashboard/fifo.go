package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/mono/webhookd/apitype"
)

// A FIFO webhook's line blocked by a dead head (fifo.blocked_by): the
// detail view links to a confirmation, whose form skips it through POST
// /v1/webhooks/{id}/fifo/skip, naming the delivery it showed (the API
// refuses, 409 not_blocking, when that is no longer the head blocking).

// confirmFIFOSkip asks before skipping the dead delivery that blocks the
// webhook's line; a line not blocked goes back to the webhook's page.
func (d *Dashboard) confirmFIFOSkip(w http.ResponseWriter, r *http.Request) {
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	if hook.FIFO == nil || hook.FIFO.BlockedBy == nil {
		http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(hook.ID)+"#ordering", http.StatusSeeOther)
		return
	}
	s := sessionFrom(r.Context())
	d.render(w, r, http.StatusOK, "fifoskip", &view{Title: "Skip blocked delivery", Nav: "settings", Data: hook,
		Crumbs: webhookCrumbs(hook, s, crumb{Label: "Webhook", Href: Prefix + "/webhooks/" + hook.ID}, crumb{Label: "Skip blocked delivery"})})
}

// skipFIFOHead is POST /v1/webhooks/{id}/fifo/skip {"delivery_id": …}
// with the delivery the confirmation named.
func (d *Dashboard) skipFIFOHead(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	back := Prefix + "/webhooks/" + url.PathEscape(hook.ID)
	dlv := strings.TrimSpace(r.PostFormValue("delivery_id"))
	if _, err := d.api.SkipFIFOHead(r.Context(), s.Principal, &apitype.FIFOSkip{ID: hook.ID, DeliveryID: &dlv}); err != nil {
		d.apiFailed(w, r, opError(err), back)
		return
	}
	http.Redirect(w, r, back+"?notice=skipped#ordering", http.StatusSeeOther)
}
