package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/signer"
)

// hookState is what the API says of a webhook's lifecycle.
type hookState struct {
	EventTypes              []string   `json:"event_types"`
	Paused                  bool       `json:"paused"`
	PausedAt                *time.Time `json:"paused_at"`
	PauseReason             *string    `json:"pause_reason"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

func (b *testBundle) hookState(t *testing.T, id string) *hookState {
	t.Helper()
	var h hookState
	b.api(t, http.MethodGet, "/v1/webhooks/"+id, "", "", http.StatusOK, &h)
	return &h
}

func (b *testBundle) secretOf(t *testing.T, id string) string {
	t.Helper()
	var out struct{ Secret string }
	b.api(t, http.MethodGet, "/v1/webhooks/"+id+"/secret", "", "", http.StatusOK, &out)
	return out.Secret
}

// lifecycleSubtests are TestDashboard's subtests of the detail view's
// Rotate secret, event-type filter, Pause/Resume and health panel, and the
// admin's API keys page.
func lifecycleSubtests(t *testing.T, setup func(*testing.T) *testBundle) {
	t.Run("SchemeAndGone", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_gone")
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
		plain := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/plain"})
		hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/gone", "signature_scheme": "standard", "on_gone": "pause"})
		br := b.browser(t)
		br.signIn(t, k.Key)

		p := br.get(t, "/dashboard/webhooks/"+plain.ID)
		require.Equal(t, "Mono-Signature", elementText(p.body, "signature-scheme"))
		require.Contains(t, elementText(p.body, "on-gone"), "Retry")
		p = br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Contains(t, elementText(p.body, "signature-scheme"), "Standard Webhooks")
		require.Contains(t, elementText(p.body, "on-gone"), "Pause the webhook")

		// A 410 pauses it; the detail view says why.
		receiver.SetRespond(testreceiver.Status(http.StatusGone))
		b.sendEvent(t, "acct_gone", "order.created")
		require.Eventually(t, func() bool { return b.hookState(t, hook.ID).Paused }, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, "gone", *b.hookState(t, hook.ID).PauseReason)
		p = br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Contains(t, elementText(p.body, "pause-state"), "answered 410 Gone")
	})
	t.Run("PauseAndResume", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_pause")
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
		hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/pause"})
		br := b.browser(t)
		br.signIn(t, k.Key)

		p := br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, elementText(p.body, "pause-state"), "Active")
		require.Contains(t, p.body, `href="/dashboard/webhooks/`+hook.ID+`/pause"`)
		// Pausing asks first, and asking changes nothing.
		p = br.get(t, "/dashboard/webhooks/"+hook.ID+"/pause")
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, text(p.body), "Pause webhook?")
		require.Equal(t, "Pause webhook", elementText(p.body, "confirm-pause"))
		require.False(t, b.hookState(t, hook.ID).Paused)
		// Without the CSRF token nothing happens.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/pause", url.Values{})
		require.Equal(t, http.StatusForbidden, p.status)
		require.False(t, b.hookState(t, hook.ID).Paused)

		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/pause", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?notice=paused#pause-h", p.location)
		st := b.hookState(t, hook.ID)
		require.True(t, st.Paused)
		require.Equal(t, "manual", *st.PauseReason)
		p = br.get(t, p.location)
		require.Contains(t, text(p.body), "Webhook paused.")
		require.Contains(t, p.body, `<span class="badge paused">Paused</span>`)
		state := tidy(elementText(p.body, "pause-state"))
		require.Contains(t, state, "Paused since "+st.PausedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
		require.Contains(t, state, "by hand")
		require.Equal(t, "Resume", elementText(p.body, "resume"))
		// Asking again goes back to the page.
		p = br.get(t, "/dashboard/webhooks/"+hook.ID+"/pause")
		require.Equal(t, http.StatusSeeOther, p.status)

		// New deliveries wait, paused, and are listed so; nothing is sent.
		dl := b.sendEvent(t, "acct_pause", "card_frozen")
		require.Len(t, dl, 1)
		b.waitDelivery(t, dl[0].ID, "paused", 5*time.Second)
		p = br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Contains(t, elementText(p.body, dl[0].ID), "paused card_frozen")
		require.Contains(t, p.body, `<span class="badge paused">paused</span>`)
		list := br.get(t, "/dashboard/settings/personal/api")
		require.Contains(t, list.body, `<span class="badge paused">Paused</span>`)
		// Created paused, it has no job until the webhook resumes: nothing
		// can send it.
		require.Zero(t, b.jobs(t, dl[0].ID))
		require.Zero(t, receiver.Count())

		// Resume: the paused delivery is sent.
		br.get(t, "/dashboard/webhooks/"+hook.ID)
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/resume", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?notice=resumed#pause-h", p.location)
		b.waitDelivery(t, dl[0].ID, "succeeded", 15*time.Second)
		reqs := receiver.Wait(t, 1, 5*time.Second)
		require.Equal(t, b.eventOf(t, dl[0].ID), reqs[0].Header.Get("Mono-Event-Id"))
		require.False(t, b.hookState(t, hook.ID).Paused)
		p = br.get(t, p.location)
		require.Contains(t, text(p.body), "Webhook resumed.")
		require.Contains(t, elementText(p.body, "pause-state"), "Active")
		require.NotContains(t, p.body, `class="badge paused"`)
	})

	t.Run("RotateSecret", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_rotate")
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
		hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/rotate"})
		br := b.browser(t)
		br.signIn(t, k.Key)

		p := br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Contains(t, p.body, `<label for="expires_in">`)
		require.Contains(t, p.body, `<option value="24h" selected>`)
		require.Empty(t, elementText(p.body, "previous-secret"))
		require.NotContains(t, p.body, htmlEscape(hook.Secret))

		// A bad overlap: the API's message beside the field, nothing rotated.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/rotate-secret", url.Values{"csrf": {br.csrf(t)}, "expires_in": {"8d"}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "expires_in-error"), "expires_in must be a duration from 0 to 7 days")
		require.Contains(t, p.body, `aria-invalid="true" autofocus`)
		require.Empty(t, elementText(p.body, "rotate-result"))
		require.Equal(t, hook.Secret, b.secretOf(t, hook.ID))

		// Rotate with the default overlap: the new secret is in the answer,
		// once, and the old one signs until the time shown.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/rotate-secret", url.Values{"csrf": {br.csrf(t)}, "expires_in": {"24h"}})
		require.Equal(t, http.StatusOK, p.status, p.body)
		newSecret := b.secretOf(t, hook.ID)
		require.NotEqual(t, hook.Secret, newSecret)
		require.Equal(t, newSecret, elementText(p.body, "new-secret"))
		require.Equal(t, 1, strings.Count(p.body, htmlEscape(newSecret)))
		require.NotContains(t, p.body, htmlEscape(hook.Secret))
		require.Contains(t, p.body, `<div id="rotate-result" class="once" role="alert" tabindex="-1" data-shown-once="/dashboard/webhooks/`+hook.ID+`">`)
		st := b.hookState(t, hook.ID)
		require.NotNil(t, st.PreviousSecretExpiresAt)
		require.WithinDuration(t, time.Now().Add(24*time.Hour), *st.PreviousSecretExpiresAt, time.Minute)
		until := st.PreviousSecretExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC")
		require.Contains(t, tidy(elementText(p.body, "rotate-overlap")), "The previous secret signs too until "+until+".")
		require.Equal(t, "Previous secret signs until "+until+": every request carries both signatures until then.", tidy(elementText(p.body, "previous-secret")))
		// Shown once: the page again has the overlap, not the secret.
		p = br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.NotContains(t, p.body, htmlEscape(newSecret))
		require.Empty(t, elementText(p.body, "rotate-result"))
		require.Contains(t, elementText(p.body, "previous-secret"), until)

		// The receiver gets both signatures, newest first; either verifies.
		dl := b.sendEvent(t, "acct_rotate", "card_frozen")
		b.waitDelivery(t, dl[0].ID, "succeeded", 15*time.Second)
		reqs := receiver.Wait(t, 1, 5*time.Second)
		header := reqs[0].Header.Get(signer.Header)
		require.Equal(t, 2, strings.Count(header, "v1="), header)
		require.NoError(t, signer.Verify(header, reqs[0].Body, newSecret, time.Now(), 0))
		require.NoError(t, signer.Verify(header, reqs[0].Body, hook.Secret, time.Now(), 0))
		require.Contains(t, header, ",v1="+signer.Compute(newSecret, mustParse(t, header).Timestamp.Unix(), reqs[0].Body)+",v1=")

		// No overlap: the old secret stops at once.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/rotate-secret", url.Values{"csrf": {br.csrf(t)}, "expires_in": {"0"}})
		require.Equal(t, http.StatusOK, p.status, p.body)
		third := b.secretOf(t, hook.ID)
		require.Equal(t, third, elementText(p.body, "new-secret"))
		require.Equal(t, "The previous secret stopped signing at once.", tidy(elementText(p.body, "rotate-overlap")))
		require.Empty(t, elementText(p.body, "previous-secret"))
		require.Nil(t, b.hookState(t, hook.ID).PreviousSecretExpiresAt)
	})

	t.Run("EventTypeFilter", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_filter")
		hook := b.createWebhookWith(t, k.Key, map[string]any{"url": "https://example.com/filter"})
		br := b.browser(t)
		br.signIn(t, k.Key)

		p := br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Equal(t, "All event types", elementText(p.body, "filter-current"))
		require.Equal(t, "All event types", elementText(p.body, "filter-summary"))
		require.Contains(t, p.body, `<label for="event_types">`)

		// Lines and commas both separate entries.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/event-types", url.Values{"csrf": {br.csrf(t)}, "event_types": {"payout_failed\r\nbank_transfer_*, card_frozen\n\n"}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?notice=filter#filter-h", p.location)
		want := []string{"bank_transfer_*", "card_frozen", "payout_failed"}
		require.Equal(t, want, b.hookState(t, hook.ID).EventTypes)
		p = br.get(t, p.location)
		require.Contains(t, text(p.body), "Event-type filter saved.")
		require.Equal(t, "Receives only: bank_transfer_*, card_frozen, payout_failed", tidy(elementText(p.body, "filter-current")))
		require.Contains(t, p.body, ">bank_transfer_*\ncard_frozen\npayout_failed</textarea>")
		// The filter is applied: another type makes no delivery for it.
		require.Empty(t, b.sendEvent(t, "acct_filter", "payment_received"))
		require.Len(t, b.sendEvent(t, "acct_filter", "bank_transfer_approved"), 1)

		// A bad entry: named beside the field (escaped), the text kept,
		// nothing changed.
		bad := "card_frozen\n<b>Bad Type</b>"
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/event-types", url.Values{"csrf": {br.csrf(t)}, "event_types": {bad}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		msg := elementText(p.body, "event_types-error")
		require.Contains(t, msg, `Entry 2 ("<b>Bad Type</b>"): each entry must be an event type`)
		require.NotContains(t, p.body, "<b>Bad")
		require.Contains(t, p.body, "&lt;b&gt;Bad Type&lt;/b&gt;</textarea>")
		require.Regexp(t, `<details class="filter-edit" open>`, p.body)
		require.Contains(t, p.body, `aria-invalid="true" autofocus`)
		require.Contains(t, text(p.body), "The event-type filter was not changed:")
		require.Equal(t, want, b.hookState(t, hook.ID).EventTypes)

		// Blank: every type again.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/event-types", url.Values{"csrf": {br.csrf(t)}, "event_types": {" \n "}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Contains(t, p.location, "notice=nofilter")
		require.Empty(t, b.hookState(t, hook.ID).EventTypes)
		p = br.get(t, p.location)
		require.Equal(t, "All event types", elementText(p.body, "filter-current"))
	})

	t.Run("HealthPanel", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_health")
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
		hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/health"})
		quiet := b.createWebhookWith(t, k.Key, map[string]any{"url": "https://example.com/quiet", "event_types": []string{"never.sent"}})
		br := b.browser(t)
		br.signIn(t, k.Key)

		p := br.get(t, "/dashboard/webhooks/"+quiet.ID)
		require.Equal(t, "Not attempted yet", elementText(p.body, "health-summary"))
		require.Equal(t, "0", elementText(p.body, "health-consecutive"))
		require.Equal(t, "—", elementText(p.body, "health-last-success"))
		require.Equal(t, "—", elementText(p.body, "health-rate"))

		dl := b.sendEvent(t, "acct_health", "card_frozen")
		require.Len(t, dl, 1)
		b.waitDelivery(t, dl[0].ID, "dead", 45*time.Second)
		// The workers write health every 5 s.
		p = waitHealth(t, br, hook.ID, "10")
		var h struct {
			LastFailureAt *time.Time `json:"last_failure_at"`
		}
		b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID+"/health", k.Key, "", http.StatusOK, &h)
		require.Equal(t, "10 failed attempts in a row", elementText(p.body, "health-summary"))
		require.Contains(t, p.body, `<p id="health-summary" class="health failing">`)
		require.Equal(t, h.LastFailureAt.UTC().Format("2006-01-02 15:04:05 UTC")+" http_status", elementText(p.body, "health-last-failure"))
		require.Equal(t, "—", elementText(p.body, "health-last-success"))
		require.Equal(t, "10 attempts, 0 succeeded, 10 failed", elementText(p.body, "health-last-hour"))
		require.Equal(t, "0 %", elementText(p.body, "health-rate"))
		list := br.get(t, "/dashboard/settings/personal/api")
		require.Contains(t, text(list.body), "Endpoint: 10 failed attempts in a row")

		// A replayed success resets the failures.
		receiver.SetRespond(testreceiver.Status(http.StatusOK))
		p = br.post(t, "/dashboard/deliveries/"+dl[0].ID+"/replay", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		b.waitDelivery(t, dl[0].ID, "succeeded", 15*time.Second)
		p = waitHealth(t, br, hook.ID, "0")
		require.Equal(t, "The last attempt succeeded", elementText(p.body, "health-summary"))
		require.Equal(t, "11 attempts, 1 succeeded, 10 failed", elementText(p.body, "health-last-hour"))
		require.Equal(t, "9.1 %", elementText(p.body, "health-rate"))
		require.NotEqual(t, "—", elementText(p.body, "health-last-success"))
	})

	t.Run("APIKeys", func(t *testing.T) {
		b := setup(t)
		adminKey := b.createKey(t, "admin", "")
		br := b.browser(t)
		br.signIn(t, adminKey.Key)
		p := br.get(t, "/dashboard/settings")
		require.Contains(t, p.body, `href="/dashboard/settings/keys"`)
		p = br.get(t, "/dashboard/settings/keys")
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, elementText(p.body, "key-"+adminKey.ID), "This session")
		require.NotContains(t, p.body, adminKey.Key)

		// A refused key: the API's message beside its field, nothing made.
		before := b.count(t, "SELECT count(*) FROM api_keys")
		p = br.post(t, "/dashboard/settings/keys", url.Values{"csrf": {br.csrf(t)}, "scope": {"account"}, "description": {"no account"}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.NotEmpty(t, elementText(p.body, "key-account-error"))
		require.Contains(t, p.body, `<details class="key-new" open>`)
		require.Contains(t, p.body, `value="no account"`)
		require.Equal(t, before, b.count(t, "SELECT count(*) FROM api_keys"))

		// Make a key: shown once, and it works.
		p = br.post(t, "/dashboard/settings/keys", url.Values{"csrf": {br.csrf(t)}, "scope": {"account"}, "account_id": {"acct_keys"}, "description": {"<i>ci</i>"}})
		require.Equal(t, http.StatusOK, p.status, p.body)
		made := elementText(p.body, "new-key-value")
		require.True(t, strings.HasPrefix(made, "whk_"), made)
		require.Equal(t, 1, strings.Count(p.body, made))
		require.Contains(t, p.body, "&lt;i&gt;ci&lt;/i&gt;")
		require.NotContains(t, p.body, "<i>ci")
		var mine struct{ Data []struct{ ID, Prefix string } }
		b.api(t, http.MethodGet, "/v1/keys?account_id=acct_keys", "", "", http.StatusOK, &mine)
		require.Len(t, mine.Data, 1)
		madeID := mine.Data[0].ID
		b.api(t, http.MethodGet, "/v1/webhooks", made, "", http.StatusOK, nil)
		row := elementText(p.body, "key-"+madeID)
		require.Contains(t, row, mine.Data[0].Prefix+"…")
		require.Contains(t, row, "account acct_keys")
		require.Contains(t, row, "UTC never Live")
		require.Contains(t, row, "Live")
		p = br.get(t, "/dashboard/settings/keys")
		require.NotContains(t, p.body, made)
		require.Empty(t, elementText(p.body, "new-key"))

		// Rotate with the default grace (1 h): the new key once, the old
		// one's expiry; both work for now.
		p = br.get(t, "/dashboard/settings/keys?account_id=acct_keys")
		require.Contains(t, p.body, `<label for="grace-`+madeID+`">`)
		require.Contains(t, p.body, `<option value="1h" selected>`)
		p = br.post(t, "/dashboard/settings/keys/"+madeID+"/rotate", url.Values{"csrf": {br.csrf(t)}, "grace": {"1h"}})
		require.Equal(t, http.StatusOK, p.status, p.body)
		rotated := elementText(p.body, "new-key-value")
		require.True(t, strings.HasPrefix(rotated, "whk_"), rotated)
		require.NotEqual(t, made, rotated)
		require.NotContains(t, p.body, made)
		var all struct {
			Data []struct {
				ID         string     `json:"id"`
				ExpiresAt  *time.Time `json:"expires_at"`
				ReplacedBy *string    `json:"replaced_by"`
			}
		}
		b.api(t, http.MethodGet, "/v1/keys?account_id=acct_keys", "", "", http.StatusOK, &all)
		require.Len(t, all.Data, 2)
		newID, old := all.Data[0].ID, all.Data[1]
		require.Equal(t, madeID, old.ID)
		require.Equal(t, newID, *old.ReplacedBy)
		require.WithinDuration(t, time.Now().Add(time.Hour), *old.ExpiresAt, time.Minute)
		expiry := old.ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC")
		require.Contains(t, tidy(elementText(p.body, "old-key-expiry")), "keeps working until "+expiry+", then gets 401")
		oldRow := elementText(p.body, "key-"+madeID)
		require.Contains(t, oldRow, "Until "+expiry)
		require.Contains(t, oldRow, newID)
		b.api(t, http.MethodGet, "/v1/webhooks", made, "", http.StatusOK, nil)
		b.api(t, http.MethodGet, "/v1/webhooks", rotated, "", http.StatusOK, nil)
		// Rotating the old one again is refused in its row.
		br.get(t, "/dashboard/settings/keys")
		p = br.post(t, "/dashboard/settings/keys/"+madeID+"/rotate", url.Values{"csrf": {br.csrf(t)}, "grace": {"1h"}})
		require.Equal(t, http.StatusConflict, p.status)
		require.Contains(t, elementText(p.body, "key-error-"+madeID), "already rotated")
		require.Empty(t, elementText(p.body, "new-key"))
		// A bad grace changes nothing.
		p = br.post(t, "/dashboard/settings/keys/"+newID+"/rotate", url.Values{"csrf": {br.csrf(t)}, "grace": {"30d"}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "key-error-"+newID), "grace must be")
		require.Equal(t, 2, b.count(t, "SELECT count(*) FROM api_keys WHERE account_id = 'acct_keys'"))

		// Revoke (behind its confirmation): the key gets 401.
		require.Contains(t, elementText(p.body, "key-"+newID), "Revoke… Revoke whk_")
		p = br.post(t, "/dashboard/settings/keys/"+newID+"/revoke", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		b.api(t, http.MethodGet, "/v1/webhooks", rotated, "", http.StatusUnauthorized, nil)
		p = br.get(t, p.location)
		require.Contains(t, text(p.body), "API key revoked.")
		require.Contains(t, elementText(p.body, "key-"+newID), "Revoked")
		require.NotContains(t, p.body, `action="/dashboard/settings/keys/`+newID+`/revoke"`)
		// Revoked twice: the API's 404, shown.
		p = br.post(t, "/dashboard/settings/keys/"+newID+"/revoke", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusNotFound, p.status)
		require.Contains(t, text(p.body), "The key was not revoked")
		// Without the CSRF token, nothing.
		p = br.post(t, "/dashboard/settings/keys/"+madeID+"/revoke", url.Values{})
		require.Equal(t, http.StatusForbidden, p.status)
		b.api(t, http.MethodGet, "/v1/webhooks", made, "", http.StatusOK, nil)
	})

	t.Run("AccountSessionsCantReachKeysOrOthersWebhooks", func(t *testing.T) {
		b := setup(t)
		mine := b.createKey(t, "account", "acct_lc_mine")
		other := b.createKey(t, "account", "acct_lc_theirs")
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
		theirs := b.createWebhook(t, "acct_lc_theirs", receiver.URL+"/theirs")
		br := b.browser(t)
		br.signIn(t, mine.Key)
		require.NotContains(t, br.last, `href="/dashboard/settings/keys"`)
		p := br.get(t, "/dashboard/settings")
		require.NotContains(t, p.body, `href="/dashboard/settings/keys"`)
		token := br.csrf(t)

		// The keys page and its forms are for admin keys.
		p = br.get(t, "/dashboard/settings/keys")
		require.Equal(t, http.StatusForbidden, p.status)
		require.NotContains(t, p.body, other.ID)
		keys := b.count(t, "SELECT count(*) FROM api_keys")
		p = br.post(t, "/dashboard/settings/keys", url.Values{"csrf": {token}, "scope": {"admin"}})
		require.Equal(t, http.StatusForbidden, p.status)
		p = br.post(t, "/dashboard/settings/keys/"+other.ID+"/rotate", url.Values{"csrf": {token}})
		require.Equal(t, http.StatusForbidden, p.status)
		p = br.post(t, "/dashboard/settings/keys/"+other.ID+"/revoke", url.Values{"csrf": {token}})
		require.Equal(t, http.StatusForbidden, p.status)
		require.Equal(t, keys, b.count(t, "SELECT count(*) FROM api_keys"))
		b.api(t, http.MethodGet, "/v1/webhooks", other.Key, "", http.StatusOK, nil)

		// Another account's webhook is not found, and nothing of it changes.
		p = br.get(t, "/dashboard/webhooks/"+theirs.ID+"/pause")
		require.Equal(t, http.StatusNotFound, p.status)
		for path, form := range map[string]url.Values{
			"/pause":         {"csrf": {token}},
			"/resume":        {"csrf": {token}},
			"/rotate-secret": {"csrf": {token}, "expires_in": {"0"}},
			"/event-types":   {"csrf": {token}, "event_types": {"never.sent"}},
		} {
			p = br.post(t, "/dashboard/webhooks/"+theirs.ID+path, form)
			require.Equal(t, http.StatusNotFound, p.status, path)
			require.NotContains(t, p.body, "whsec_", path)
		}
		st := b.hookState(t, theirs.ID)
		require.False(t, st.Paused)
		require.Empty(t, st.EventTypes)
		require.Nil(t, st.PreviousSecretExpiresAt)
		require.Equal(t, theirs.Secret, b.secretOf(t, theirs.ID))
	})
}

// tidy is text as read: no space before punctuation that text() puts
// between elements.
// waitHealth waits until the webhook's page shows consecutive failures
// in a row, and returns that page.
func waitHealth(t *testing.T, br *browser, hookID, consecutive string) *page {
	t.Helper()
	var p *page
	testwait.For(t, 20*time.Second, func() (bool, string) {
		p = br.get(t, "/dashboard/webhooks/"+hookID)
		got := elementText(p.body, "health-consecutive")
		return got == consecutive, "health-consecutive is " + got + ", not " + consecutive
	})
	return p
}

func tidy(s string) string {
	return strings.NewReplacer(" ,", ",", " :", ":", " )", ")", "( ", "(", " .", ".").Replace(s)
}

func mustParse(t *testing.T, header string) *signer.Signature {
	t.Helper()
	sig, err := signer.Parse(header)
	require.NoError(t, err)
	return sig
}
