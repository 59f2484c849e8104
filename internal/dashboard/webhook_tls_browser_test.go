package dashboard_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testbrowser"
	"github.com/mono/webhookd/internal/testcert"
)

// In a real browser: the TLS form refuses a key that is not the
// certificate's beside the key field (aria-invalid, described by the
// error), keeps nothing pasted, then saves the setting, which the detail
// view describes without side scroll on a phone; the OAuth2 form refuses
// a token URL beside its field, never shows the secret back, and saves.
func TestBrowserWebhookTLS(t *testing.T) {
	t.Parallel()
	ctx := testbrowser.New(t)
	b := start(t)
	do := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	textOf := func(t *testing.T, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return strings.Join(strings.Fields(s), " ")
	}
	eval := func(t *testing.T, expr string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		require.NoError(t, err, expr)
		return v
	}
	// requireFieldError checks that field is marked invalid and described
	// by the error errorID, that the form (in details) stays open, and
	// that nothing in the page holds secret.
	requireFieldError := func(t *testing.T, field, errorID, details, secret string) {
		t.Helper()
		require.True(t, eval(t, `document.querySelector("`+field+`").getAttribute("aria-invalid") === "true"`))
		require.True(t, eval(t, `document.querySelector("`+field+`").getAttribute("aria-describedby") === "`+errorID+`"`))
		require.True(t, eval(t, `document.querySelector("`+details+`").open`), "the form stays open after an error")
		require.False(t, eval(t, `document.documentElement.outerHTML.includes("`+secret+`")`))
	}

	key := b.createKey(t, "account", "acct_tls_browser")
	serverCA, clientCA := testcert.NewCA(t, "receiver private CA"), testcert.NewCA(t, "client CA")
	receiver := testcert.StartReceiver(t, serverCA, clientCA)
	certPEM, keyPEM := clientCA.Client(t, "browser-hook", time.Now().Add(90*24*time.Hour))
	_, otherKey := clientCA.Client(t, "other", time.Now().Add(time.Hour))
	hook := b.createWebhookWith(t, key.Key, map[string]any{"url": receiver.Server.URL + "/h"})

	do(t,
		chromedp.Navigate(b.base+"/dashboard/webhooks/"+hook.ID),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key.Key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#tls-setting")),
	)
	require.Contains(t, textOf(t, "#tls-setting"), "No client certificate")

	fill := func(t *testing.T, cert, key, ca string) {
		t.Helper()
		do(t,
			chromedp.Click(chromedp.CSS(".tls-edit summary")),
			chromedp.WaitVisible(chromedp.CSS("#tls-client-certificate")),
			chromedp.SendKeys(chromedp.CSS("#tls-client-certificate"), cert),
			chromedp.SendKeys(chromedp.CSS("#tls-client-key"), key),
			chromedp.SendKeys(chromedp.CSS("#tls-ca-bundle"), ca),
			chromedp.Submit(chromedp.CSS("#tls-client-certificate")),
		)
	}
	fill(t, string(certPEM), string(otherKey), string(serverCA.PEM))
	do(t, chromedp.WaitVisible(chromedp.CSS("#tls-error")))
	require.Contains(t, textOf(t, "#tls-error"), "client_key is not the private key of client_certificate")
	requireFieldError(t, "#tls-client-key", "tls-error", ".tls-edit", "PRIVATE KEY-----")

	// The form is open already after the error: fill it again.
	do(t,
		chromedp.SendKeys(chromedp.CSS("#tls-client-certificate"), string(certPEM)),
		chromedp.SendKeys(chromedp.CSS("#tls-client-key"), string(keyPEM)),
		chromedp.SendKeys(chromedp.CSS("#tls-ca-bundle"), string(serverCA.PEM)),
		chromedp.Submit(chromedp.CSS("#tls-client-certificate")),
		chromedp.WaitVisible(chromedp.CSS("#tls-subject")),
	)
	require.Equal(t, "CN=browser-hook,O=Mono test", textOf(t, "#tls-subject"))
	require.Contains(t, textOf(t, "body"), "TLS setting saved.")
	require.False(t, eval(t, `document.documentElement.outerHTML.includes("PRIVATE KEY-----")`))

	do(t, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#tls-subject")))
	require.False(t, eval(t, `document.documentElement.scrollWidth > window.innerWidth`), "the webhook page scrolls sideways at 390 px")
	do(t, chromedp.EmulateViewport(1280, 900))

	var got struct {
		TLS struct {
			ClientCertificate struct{ Subject string } `json:"client_certificate"`
		} `json:"tls"`
	}
	b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID, key.Key, "", http.StatusOK, &got)
	require.Equal(t, "CN=browser-hook,O=Mono test", got.TLS.ClientCertificate.Subject)

	// The OAuth2 form: a token URL the rules refuse, its error beside the
	// field, the secret typed not shown again; then saved and described.
	const secret = "oauth-secret-never-shown"
	do(t,
		chromedp.Click(chromedp.CSS(".oauth-edit summary")),
		chromedp.WaitVisible(chromedp.CSS("#oauth-token-url")),
		chromedp.SendKeys(chromedp.CSS("#oauth-token-url"), "http://localhost:9000/token"),
		chromedp.SendKeys(chromedp.CSS("#oauth-client-id"), "mono"),
		chromedp.SendKeys(chromedp.CSS("#oauth-client-secret"), secret),
		chromedp.SendKeys(chromedp.CSS("#oauth-scopes"), "webhooks:write"),
		chromedp.SetValue(chromedp.CSS("#oauth-auth-style"), "body"),
		chromedp.Submit(chromedp.CSS("#oauth-token-url")),
		chromedp.WaitVisible(chromedp.CSS("#oauth-error")),
	)
	require.Contains(t, textOf(t, "#oauth-error"), "localhost")
	requireFieldError(t, "#oauth-token-url", "oauth-error", ".oauth-edit", secret)
	do(t,
		chromedp.Clear(chromedp.CSS("#oauth-token-url")),
		chromedp.SendKeys(chromedp.CSS("#oauth-token-url"), "https://auth.example.com/token"),
		chromedp.SendKeys(chromedp.CSS("#oauth-client-secret"), secret),
		chromedp.Submit(chromedp.CSS("#oauth-token-url")),
		chromedp.WaitVisible(chromedp.CSS("#oauth-setting")),
	)
	require.Contains(t, textOf(t, "body"), "OAuth2 setting saved.")
	require.Contains(t, textOf(t, "#oauth-setting"), "https://auth.example.com/token")
	require.Contains(t, textOf(t, "#oauth-setting"), "webhooks:write")
	require.Contains(t, textOf(t, "#oauth-setting"), "form fields")
	require.False(t, eval(t, `document.documentElement.outerHTML.includes("`+secret+`")`))
	var saved struct {
		OAuth struct {
			TokenURL  string `json:"token_url"`
			AuthStyle string `json:"auth_style"`
		} `json:"oauth"`
	}
	b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID, key.Key, "", http.StatusOK, &saved)
	require.Equal(t, "https://auth.example.com/token", saved.OAuth.TokenURL)
	require.Equal(t, "body", saved.OAuth.AuthStyle)
}
