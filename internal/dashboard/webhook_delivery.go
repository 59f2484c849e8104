package dashboard

import (
	"net/http"

	"github.com/mono/webhookd/apitype"
)

// deliveryForm is the Signatures and 410 form: the webhook's
// signature_scheme and on_gone, as chosen, and the API's error about them.
type deliveryForm struct {
	Scheme, OnGone string
	// Error is the API's message, FieldID the form field it is about
	// ("delivery-scheme", "delivery-on-gone"; "" for the whole form).
	Error   string
	FieldID string
	// Open says the form is shown unfolded (after an error).
	Open bool
}

// deliveryFieldIDs maps the API's field names to the form's.
var deliveryFieldIDs = map[string]string{
	"signature_scheme": "delivery-scheme",
	"on_gone":          "delivery-on-gone",
}

// setDelivery sets the webhook's signature_scheme and on_gone through PATCH
// /v1/webhooks/{id}, so the API's validation and messages apply as they
// are (an unknown value; secret_rotation_required for a switch to standard
// with a secret from before its form). An error is shown beside the field
// it names, and nothing is changed.
func (d *Dashboard) setDelivery(w http.ResponseWriter, r *http.Request) {
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	form := &deliveryForm{Scheme: r.PostFormValue("signature_scheme"), OnGone: r.PostFormValue("on_gone")}
	patch := &apitype.WebhookPatch{SignatureScheme: &form.Scheme, OnGone: &form.OnGone}
	d.patchWebhook(w, r, hook, patch, "delivery", "delivery-h", func(e *apiError) *detail {
		form.Error, form.FieldID, form.Open = e.Message, deliveryFieldIDs[e.Field], true
		return &detail{Delivery: form, Error: "The signature and 410 settings were not changed: " + e.Message}
	})
}
