package dashboard

import (
	"net/http"
	"strings"

	"github.com/mono/webhookd/apitype"
)

// oauthForm is the OAuth2 client credentials form. The client secret is
// never put back into the page; the other fields are, after an error.
type oauthForm struct {
	TokenURL, ClientID, Scopes, Audience, AuthStyle string
	// Error is the API's message, FieldID the form field it is about
	// ("" for the whole form).
	Error   string
	FieldID string
	// Open says the form is shown unfolded (after an error).
	Open bool
}

// oauthFieldIDs maps the API's field names to the form's.
var oauthFieldIDs = map[string]string{
	"oauth.token_url":     "oauth-token-url",
	"oauth.client_id":     "oauth-client-id",
	"oauth.client_secret": "oauth-client-secret",
	"oauth.audience":      "oauth-audience",
	"oauth.auth_style":    "oauth-auth-style",
}

// setOAuth replaces the webhook's OAuth2 setting through PATCH
// /v1/webhooks/{id} {"oauth":{…}}; "remove" sends {}. An error is shown
// beside the field it names, and nothing is changed.
func (d *Dashboard) setOAuth(w http.ResponseWriter, r *http.Request) {
	hook, ok := d.loadWebhook(w, r)
	if !ok {
		return
	}
	form := &oauthForm{TokenURL: strings.TrimSpace(r.PostFormValue("token_url")), ClientID: strings.TrimSpace(r.PostFormValue("client_id")),
		Scopes: strings.TrimSpace(r.PostFormValue("scopes")), Audience: strings.TrimSpace(r.PostFormValue("audience")),
		AuthStyle: r.PostFormValue("auth_style")}
	setting := &apitype.WebhookOAuthSetting{}
	notice := "nooauth"
	if r.PostFormValue("remove") == "" {
		secret := r.PostFormValue("client_secret")
		setting = &apitype.WebhookOAuthSetting{TokenURL: &form.TokenURL, ClientID: &form.ClientID, ClientSecret: &secret,
			Scopes: strings.Fields(form.Scopes), Audience: &form.Audience}
		if form.AuthStyle != "" {
			setting.AuthStyle = &form.AuthStyle
		}
		notice = "oauth"
	}
	d.patchCredentials(w, r, hook, &apitype.WebhookPatch{OAuth: setting}, notice, func(e *apiError) *detail {
		form.Error, form.FieldID, form.Open = e.Message, oauthFieldIDs[e.Field], true
		if strings.HasPrefix(e.Field, "oauth.scopes") {
			form.FieldID = "oauth-scopes"
		}
		return &detail{OAuth: form, Error: "The OAuth2 setting was not changed: " + e.Message + ". Type the client secret again before saving."}
	})
}
