package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/mono/webhookd/apitype"
)

// tlsForm is the mutual TLS form. What was pasted is never put back into
// the page (the key is a secret): after an error it must be pasted again.
type tlsForm struct {
	// Error is the API's message, FieldID the form field it is about
	// ("tls-client-certificate", "tls-client-key", "tls-ca-bundle"; ""
	// for the whole form).
	Error   string
	FieldID string
	// Open says the form is shown unfolded (after an error).
	Open bool
}

// tlsFieldIDs maps the API's field names to the form's.
var tlsFieldIDs = map[string]string{
	"tls.client_certificate": "tls-client-certificate",
	"tls.client_key":         "tls-client-key",
	"tls.ca_bundle":          "tls-ca-bundle",
}

// setTLS replaces the webhook's tls setting through PATCH /v1/webhooks/{id}
// {"tls":{…}}; "remove" sends {} (no client certificate, no CA bundle).
// An error is shown beside the field it names, and nothing is changed.
func (d *Dashboard) setTLS(w http.ResponseWriter, r *http.Request) {
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	setting := &apitype.WebhookTLSSetting{}
	notice := "notls"
	if r.PostFormValue("remove") == "" {
		for form, field := range map[string]**string{"client_certificate": &setting.ClientCertificate, "client_key": &setting.ClientKey, "ca_bundle": &setting.CABundle} {
			if v := strings.TrimSpace(r.PostFormValue(form)); v != "" {
				pem := v + "\n"
				*field, notice = &pem, "tls"
			}
		}
	}
	d.patchCredentials(w, r, hook, &apitype.WebhookPatch{TLS: setting}, notice, func(e *apiError) *detail {
		return &detail{TLS: &tlsForm{Error: e.Message, FieldID: tlsFieldIDs[e.Field], Open: true},
			Error: "The TLS setting was not changed: " + e.Message + ". Nothing you pasted is shown again: paste it again before saving."}
	})
}

// patchCredentials is patchWebhook back to the Gateway credentials card.
func (d *Dashboard) patchCredentials(w http.ResponseWriter, r *http.Request, hook *apiWebhook, patch *apitype.WebhookPatch, notice string, refused func(*apiError) *detail) {
	d.patchWebhook(w, r, hook, patch, notice, "tls-h", refused)
}

// patchWebhook changes hook by patch through the API's UpdateWebhook
// (PATCH /v1/webhooks/{id}; patch.ID is set to hook's) and, done, goes
// back to the card whose heading is anchor with notice; a refusal shows
// the detail view refused makes of the API's error (its status kept).
func (d *Dashboard) patchWebhook(w http.ResponseWriter, r *http.Request, hook *apiWebhook, patch *apitype.WebhookPatch, notice, anchor string, refused func(*apiError) *detail) {
	patch.ID = hook.ID
	if _, err := d.api.UpdateWebhook(r.Context(), sessionFrom(r.Context()).Principal, patch); err != nil {
		e := opError(err)
		if e.Status >= 500 || e.Status == http.StatusNotFound {
			d.apiFailed(w, r, e, "")
			return
		}
		dt := refused(e)
		dt.Status = e.Status
		d.showWebhook(w, r, hook, dt)
		return
	}
	http.Redirect(w, r, Prefix+"/webhooks/"+url.PathEscape(hook.ID)+"?notice="+notice+"#"+anchor, http.StatusSeeOther)
}
