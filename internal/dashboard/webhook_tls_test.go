package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testcert"
)

// The detail view shows a webhook's client certificate (subject, issuer,
// serial, expiry, "expires soon") and CA bundle, never the key or PEM; the
// form replaces the setting, shows the API's error beside the field it
// names, and removes it.
func TestWebhookTLS(t *testing.T) {
	t.Parallel()
	b := start(t)
	k := b.createKey(t, "account", "acct_tls")
	serverCA, clientCA := testcert.NewCA(t, "receiver private CA"), testcert.NewCA(t, "client CA")
	receiver := testcert.StartReceiver(t, serverCA, clientCA)
	certPEM, keyPEM := clientCA.Client(t, "dashboard-hook", time.Now().Add(5*24*time.Hour))
	hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.Server.URL + "/h"})
	br := b.browser(t)
	br.signIn(t, k.Key)

	p := br.get(t, "/dashboard/webhooks/"+hook.ID)
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, elementText(p.body, "tls-setting"), "No client certificate")

	form := func(cert, key, ca string) url.Values {
		return url.Values{"csrf": {br.csrf(t)}, "client_certificate": {cert}, "client_key": {key}, "ca_bundle": {ca}}
	}

	// A key that is not the certificate's: the error beside the key field,
	// nothing pasted shown again, nothing changed.
	_, otherKey := clientCA.Client(t, "other", time.Now().Add(time.Hour))
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/tls", form(string(certPEM), string(otherKey), string(serverCA.PEM)))
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, elementText(p.body, "tls-error"), "client_key is not the private key of client_certificate")
	require.Contains(t, p.body, `id="tls-client-key" name="client_key" rows="4" spellcheck="false" autocomplete="off" aria-invalid="true"`)
	require.NotContains(t, p.body, "PRIVATE KEY-----")
	require.NotContains(t, p.body, strings.Split(string(certPEM), "\n")[1])

	// Saved: described, never shown.
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/tls", form(string(certPEM), string(keyPEM), string(serverCA.PEM)))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?notice=tls#tls-h", p.location)
	p = br.get(t, p.location)
	require.Contains(t, text(p.body), "TLS setting saved.")
	require.Equal(t, "CN=dashboard-hook,O=Mono test", elementText(p.body, "tls-subject"))
	require.Contains(t, elementText(p.body, "tls-expires-soon"), "expires soon")
	require.Equal(t, "CN=receiver private CA", elementText(p.body, "tls-ca"))
	require.NotContains(t, p.body, "PRIVATE KEY-----")

	// The test send presents it.
	br.post(t, "/dashboard/webhooks/"+hook.ID+"/test", url.Values{"csrf": {br.csrf(t)}})
	require.Equal(t, []testcert.Request{{Path: "/h", CommonName: "dashboard-hook"}}, receiver.Requests())

	// The OAuth2 form: a token URL the rules refuse, beside its field,
	// the secret not shown again; then saved and shown, never its secret.
	oauthForm := func(tokenURL string) url.Values {
		return url.Values{"csrf": {br.csrf(t)}, "token_url": {tokenURL}, "client_id": {"mono"}, "client_secret": {"oauth-secret-never-shown"},
			"scopes": {"a b"}, "audience": {""}, "auth_style": {"body"}}
	}
	br.get(t, "/dashboard/webhooks/"+hook.ID)
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/oauth", oauthForm("http://localhost:9000/token"))
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, elementText(p.body, "oauth-error"), "localhost")
	require.Contains(t, p.body, `id="oauth-token-url" name="token_url" type="url" value="http://localhost:9000/token" autocomplete="off" spellcheck="false" aria-invalid="true"`)
	require.NotContains(t, p.body, "oauth-secret-never-shown")
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/oauth", oauthForm("https://auth.example.com/token"))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	p = br.get(t, p.location)
	require.Contains(t, text(p.body), "OAuth2 setting saved.")
	require.Contains(t, elementText(p.body, "oauth-setting"), "https://auth.example.com/token")
	require.Contains(t, elementText(p.body, "oauth-setting"), "form fields")
	require.NotContains(t, p.body, "oauth-secret-never-shown")

	// Removed.
	br.get(t, "/dashboard/webhooks/"+hook.ID)
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/tls", url.Values{"csrf": {br.csrf(t)}, "remove": {"1"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	p = br.get(t, p.location)
	require.Contains(t, text(p.body), "TLS setting removed")
	require.Contains(t, elementText(p.body, "tls-setting"), "No client certificate")
}
