package dashboard_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testreceiver"
)

// The detail view edits signature_scheme and on_gone through the API, with
// its validation and messages: a switch to standard with a secret from
// before the standard form is refused beside the Signatures field (the
// API's secret_rotation_required), an unknown on_gone beside its own, and
// nothing is changed; after a rotation the switch saves, and the details
// show both settings.
func TestWebhookDeliverySettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := start(t)
	k := b.createKey(t, "account", "acct_settings")
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/settings"})
	br := b.browser(t)
	br.signIn(t, k.Key)

	p := br.get(t, "/dashboard/webhooks/"+hook.ID)
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, p.body, `<option value="mono" selected>`)
	require.Contains(t, p.body, `<option value="retry" selected>`)
	require.Equal(t, "Mono-Signature", elementText(p.body, "signature-scheme"))

	// A secret in the form from before the standard one (base64url, no
	// padding), as older webhooks have.
	old := "whsec_" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	ct, keyID, err := b.srv.Keys.Encrypt([]byte(old), []byte(hook.ID))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE webhooks SET secret_ciphertext = $2, secret_key_id = $3 WHERE id = $1`, hook.ID, ct, keyID)
	require.NoError(t, err)
	form := func(scheme, onGone string) url.Values {
		return url.Values{"csrf": {br.csrf(t)}, "signature_scheme": {scheme}, "on_gone": {onGone}}
	}
	unchanged := func() {
		t.Helper()
		var got struct {
			SignatureScheme string `json:"signature_scheme"`
			OnGone          string `json:"on_gone"`
		}
		b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID, k.Key, "", http.StatusOK, &got)
		require.Equal(t, "mono", got.SignatureScheme)
		require.Equal(t, "retry", got.OnGone)
	}

	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/delivery", form("standard", "pause"))
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Contains(t, elementText(p.body, "delivery-error"), "rotate the secret")
	require.Contains(t, p.body, `id="delivery-scheme" name="signature_scheme" aria-describedby="delivery-scheme-hint delivery-error" aria-invalid="true"`)
	require.Contains(t, p.body, `<option value="standard" selected>`, "the choice is kept")
	require.Contains(t, p.body, `<option value="pause" selected>`)
	unchanged()

	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/delivery", form("mono", "drop"))
	require.Equal(t, http.StatusUnprocessableEntity, p.status)
	require.Equal(t, `on_gone must be "retry" or "pause"`, elementText(p.body, "delivery-error"))
	require.Contains(t, p.body, `id="delivery-on-gone" name="on_gone" aria-invalid="true"`)
	unchanged()

	// Rotated, the secret is in the standard form: the switch saves.
	b.api(t, http.MethodPost, "/v1/webhooks/"+hook.ID+"/rotate-secret", k.Key, `{}`, http.StatusOK, nil)
	br.get(t, "/dashboard/webhooks/"+hook.ID)
	p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/delivery", form("standard", "pause"))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?notice=delivery#delivery-h", p.location)
	p = br.get(t, p.location)
	require.Contains(t, text(p.body), "Signature and 410 settings saved.")
	require.Contains(t, elementText(p.body, "signature-scheme"), "Standard Webhooks")
	require.Equal(t, "Pause the webhook (nothing is lost)", elementText(p.body, "on-gone"))
	require.Contains(t, p.body, `<option value="standard" selected>`)

	// The test send carries the Standard Webhooks headers now.
	br.post(t, "/dashboard/webhooks/"+hook.ID+"/test", url.Values{"csrf": {br.csrf(t)}})
	got := receiver.Wait(t, 1, 10*time.Second)[0]
	require.NotEmpty(t, got.Header.Get("webhook-signature"))
}
