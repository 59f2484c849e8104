package dashboard_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/signer"
)

// integrationSubtests are TestDashboard's subtests of the detail view's
// Send test event and Custom headers, and the Event types page.
func integrationSubtests(t *testing.T, setup func(*testing.T) *testBundle) {
	t.Run("SendTestEvent", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_testsend")
		receiver := testreceiver.New(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"received":true}`))
		})
		hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/hooks", "headers": map[string]string{"X-Gateway-Key": "gw-value-never-shown"}})
		br := b.browser(t)
		br.signIn(t, k.Key)

		// The detail view has the button, and the catalogue's types to
		// choose from (webhook.test first and chosen).
		p := br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.body, `action="/dashboard/webhooks/`+hook.ID+`/test"`)
		require.Equal(t, "Send test event", elementText(p.body, "send-test"))
		require.Regexp(t, `<option value="webhook.test" selected>`, p.body)
		require.Contains(t, p.body, `<option value="bank_transfer_approved">`)
		require.Contains(t, p.body, `<label for="test-type">`)
		require.Empty(t, elementText(p.body, "test-result"), "no result before a test")

		// Send: the receiver gets one signed request at once, with the
		// custom header; the page shows the attempt after a redirect.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/test", url.Values{"csrf": {br.csrf(t)}, "type": {"webhook.test"}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Regexp(t, `^/dashboard/webhooks/`+hook.ID+`\?test=dlv_[^&#]+#test-result$`, p.location)
		reqs := receiver.Wait(t, 1, 5*time.Second)
		require.Len(t, reqs, 1)
		require.Equal(t, "/hooks", reqs[0].Path)
		require.NoError(t, signer.Verify(reqs[0].Header.Get(signer.Header), reqs[0].Body, hook.Secret, time.Now(), 0))
		require.Equal(t, "gw-value-never-shown", reqs[0].Header.Get("X-Gateway-Key"))
		var envelope struct {
			Event struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			} `json:"event"`
		}
		require.NoError(t, json.Unmarshal(reqs[0].Body, &envelope))
		require.Equal(t, "webhook.test", envelope.Event.Type)
		require.Contains(t, string(envelope.Event.Data), hook.ID)
		dlvID := strings.TrimSuffix(strings.TrimPrefix(p.location, "/dashboard/webhooks/"+hook.ID+"?test="), "#test-result")
		require.Equal(t, reqs[0].Header.Get("Mono-Event-Id"), b.eventOf(t, dlvID))

		p = br.get(t, p.location)
		require.Equal(t, http.StatusOK, p.status)
		require.Regexp(t, `<div id="test-result" class="test-result ok" role="alert"`, p.body)
		require.Contains(t, elementText(p.body, "test-result"), "Test event delivered. The endpoint answered 200 in")
		require.Equal(t, "Succeeded", elementText(p.body, "test-result-outcome"))
		require.Equal(t, "200", elementText(p.body, "test-result-status"))
		require.Equal(t, "—", elementText(p.body, "test-result-error"))
		require.Equal(t, `{"received":true}`, elementText(p.body, "test-result-excerpt"))
		require.Equal(t, dlvID, elementText(p.body, "test-result-delivery"))
		require.NotContains(t, p.body, "gw-value-never-shown")
		require.NotContains(t, p.body, htmlEscape(hook.Secret))
		// The same answer as the API has recorded: a test delivery, done.
		var got struct {
			State string `json:"state"`
			Test  bool   `json:"test"`
		}
		b.api(t, http.MethodGet, "/v1/deliveries/"+dlvID, k.Key, "", http.StatusOK, &got)
		require.Equal(t, "succeeded", got.State)
		require.True(t, got.Test)

		// The delivery id links to the deliveries searched by its event,
		// where it is labelled Test.
		m := regexp.MustCompile(`<a href="([^"]+)" id="test-result-delivery"`).FindStringSubmatch(p.body)
		require.NotNil(t, m)
		link := html.UnescapeString(m[1])
		require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?event_id="+b.eventOf(t, dlvID)+"#"+dlvID, link)
		p = br.get(t, link)
		require.Equal(t, http.StatusOK, p.status)
		require.Equal(t, 1, strings.Count(p.body, `<li class="delivery"`))
		require.Contains(t, p.body, `<li class="delivery" id="`+dlvID+`">`)
		require.Contains(t, elementText(p.body, dlvID), "succeeded Test webhook.test")

		// A catalogue type sends its example, and is chosen again after.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/test", url.Values{"csrf": {br.csrf(t)}, "type": {"bank_transfer_approved"}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		reqs = receiver.Wait(t, 2, 5*time.Second)
		require.NoError(t, json.Unmarshal(reqs[1].Body, &envelope))
		require.Equal(t, "bank_transfer_approved", envelope.Event.Type)
		require.Contains(t, string(envelope.Event.Data), `"amount":240000`)
		p = br.get(t, p.location)
		require.Contains(t, elementText(p.body, "test-result"), "bank_transfer_approved")
		require.Contains(t, p.body, `<option value="bank_transfer_approved" selected>`)

		// A failing endpoint: failed, its status, error and (escaped)
		// response; never retried.
		receiver.SetRespond(func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`<script>alert("excerpt")</script>`))
		})
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/test", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		failedID := strings.TrimSuffix(strings.TrimPrefix(p.location, "/dashboard/webhooks/"+hook.ID+"?test="), "#test-result")
		p = br.get(t, p.location)
		require.Regexp(t, `<div id="test-result" class="test-result failed" role="alert"`, p.body)
		require.Contains(t, elementText(p.body, "test-result"), "Test event failed.")
		require.Equal(t, "Failed", elementText(p.body, "test-result-outcome"))
		require.Equal(t, "500", elementText(p.body, "test-result-status"))
		require.Contains(t, elementText(p.body, "test-result-error"), "http_status")
		require.NotContains(t, p.body, `<script>alert("excerpt")`)
		require.Contains(t, p.body, `&lt;script&gt;alert(&#34;excerpt&#34;)&lt;/script&gt;`)
		// Never retried: recorded dead at once, with no job that could
		// send it again.
		require.Equal(t, 3, receiver.Count())
		b.api(t, http.MethodGet, "/v1/deliveries/"+failedID, k.Key, "", http.StatusOK, &got)
		require.Equal(t, "dead", got.State)
		require.Zero(t, b.jobs(t, failedID))

		// An unknown type: the API's message beside the select; nothing sent.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/test", url.Values{"csrf": {br.csrf(t)}, "type": {"no_such_type"}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "test-type-error"), "type must be webhook.test or an event type of the catalogue")
		require.Contains(t, p.body, `aria-describedby="test-hint test-type-error" aria-invalid="true"`)
		require.Contains(t, text(p.body), "No test event was sent")
		require.Equal(t, 3, receiver.Count())
		require.Equal(t, 3, b.count(t, "SELECT count(*) FROM deliveries WHERE webhook_id = $1", hook.ID))

		// A result link is shown only for a test delivery of this webhook.
		other := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/other"})
		p = br.get(t, "/dashboard/webhooks/"+other.ID+"?test="+dlvID)
		require.Equal(t, http.StatusOK, p.status)
		require.Empty(t, elementText(p.body, "test-result"))
		p = br.get(t, "/dashboard/webhooks/"+hook.ID+"?test=not-an-id")
		require.Equal(t, http.StatusOK, p.status)
		require.Empty(t, elementText(p.body, "test-result"))
	})

	t.Run("CustomHeaders", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_headers")
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusOK))
		hook := b.createWebhookWith(t, k.Key, map[string]any{"url": receiver.URL + "/h", "headers": map[string]string{"X-Old": "old-value-never-shown"}})
		br := b.browser(t)
		br.signIn(t, k.Key)

		// Names only; ten empty rows, labelled.
		p := br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Equal(t, "X-Old", elementText(p.body, "header-names"))
		require.NotContains(t, p.body, "old-value-never-shown")
		require.Equal(t, 10, strings.Count(p.body, `name="header_name"`))
		require.Equal(t, 10, strings.Count(p.body, `name="header_value"`))
		require.Contains(t, p.body, `<label for="header-name-9">Header 10 name</label>`)
		require.Contains(t, p.body, `<label for="header-value-0">Header 1 value</label>`)

		headersForm := func(pairs ...string) url.Values {
			v := url.Values{"csrf": {br.csrf(t)}}
			for i := 0; i < len(pairs); i += 2 {
				v.Add("header_name", pairs[i])
				v.Add("header_value", pairs[i+1])
			}
			return v
		}
		names := func() []string {
			var w struct {
				HeaderNames []string `json:"header_names"`
			}
			b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID, k.Key, "", http.StatusOK, &w)
			return w.HeaderNames
		}
		cipher := func() []byte {
			var c []byte
			require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT headers_ciphertext FROM webhooks WHERE id = $1", hook.ID).Scan(&c))
			return c
		}

		// Replace: blank rows are ignored; the set is replaced whole.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm("X-One", "one-value", "", "", " X-Two ", "two-value", "", ""))
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Equal(t, "/dashboard/webhooks/"+hook.ID+"?notice=headers#headers-h", p.location)
		require.Equal(t, []string{"X-One", "X-Two"}, names())
		p = br.get(t, p.location)
		require.Contains(t, text(p.body), "Custom headers saved.")
		require.Equal(t, "X-One X-Two", elementText(p.body, "header-names"))
		require.NotContains(t, p.body, "one-value")
		require.NotContains(t, p.body, "two-value")
		// The receiver gets them (and not the old one) on the next attempt.
		br.post(t, "/dashboard/webhooks/"+hook.ID+"/test", url.Values{"csrf": {br.csrf(t)}})
		reqs := receiver.Wait(t, 1, 5*time.Second)
		require.Equal(t, "one-value", reqs[0].Header.Get("X-One"))
		require.Equal(t, "two-value", reqs[0].Header.Get("X-Two"))
		require.Empty(t, reqs[0].Header.Get("X-Old"))

		// A reserved name: the API's error beside that row, the names typed
		// kept and the values not, and nothing changed.
		before := cipher()
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm("X-Fine", "fine-value-typed", "Mono-X", "mono-value-typed"))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "header-error-1"), "Mono-* and Content-* are set by webhookd")
		require.Regexp(t, `id="header-name-1" name="header_name" value="Mono-X"[^>]*aria-invalid="true" aria-describedby="header-error-1"`, p.body)
		require.Regexp(t, `id="header-name-0" name="header_name" value="X-Fine"`, p.body)
		require.NotContains(t, p.body, "fine-value-typed")
		require.NotContains(t, p.body, "mono-value-typed")
		require.Contains(t, text(p.body), "The custom headers were not changed")
		require.Contains(t, p.body, `<details class="headers-edit" open>`)
		require.Equal(t, []string{"X-One", "X-Two"}, names())
		require.Equal(t, before, cipher())

		// A bad value is marked on the value's field.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm("X-Fine", "line\r\nX-Injected: 1"))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "header-error-0"), "without control characters")
		require.Regexp(t, `id="header-value-0" name="header_value"[^>]*aria-invalid="true" aria-describedby="header-error-0"`, p.body)
		// A value without a name, the same name twice, more than ten.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm("", "orphan-value"))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "header-error-0"), "Give this header a name")
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm("X-A", "1", "X-A", "2"))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "header-error-1"), "given twice")
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm("X-A", "1", "x-a", "2"))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, text(p.body), "given twice")
		var eleven []string
		for i := range 11 {
			eleven = append(eleven, "X-H"+string(rune('a'+i)), "v")
		}
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm(eleven...))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "headers-error"), "at most 10")
		require.Contains(t, p.body, `aria-describedby="headers-hint headers-error"`)
		require.Equal(t, []string{"X-One", "X-Two"}, names())
		require.Equal(t, before, cipher())

		// A hostile name comes back escaped.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm(`"><script>alert(8)</script>`, "v"))
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.NotContains(t, p.body, "<script>alert(8)")
		require.Contains(t, p.body, `value="&#34;&gt;&lt;script&gt;alert(8)&lt;/script&gt;"`)
		require.Contains(t, elementText(p.body, "header-error-0"), "HTTP token")

		// Every row empty removes them all.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/headers", headersForm("", "", "", ""))
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Empty(t, names())
		require.Nil(t, cipher())
		p = br.get(t, p.location)
		require.Contains(t, text(p.body), "Custom headers removed.")
		require.Equal(t, "No custom headers.", elementText(p.body, "header-names"))
	})

	t.Run("EventTypesPage", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_catalogue")
		// A hostile entry (an admin's, through the API).
		b.api(t, http.MethodPost, "/v1/event-types", "", `{"type":"hostile.thing","description":"<img src=x onerror=alert(10)>","validate":true,
			"schema":{"type":"object","properties":{"note":{"type":"string","description":"</pre><script>alert(11)</script>"}}},
			"example":{"note":"</pre><script>alert(12)</script>"}}`, http.StatusCreated, nil)
		b.api(t, http.MethodPatch, "/v1/event-types/hostile.thing", "", `{"deprecated":true}`, http.StatusOK, nil)
		br := b.browser(t)
		br.signIn(t, k.Key)

		require.Contains(t, br.last, `<a href="/dashboard/event-types">Event types</a>`)
		p := br.get(t, "/dashboard/event-types")
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.body, `<a href="/dashboard/event-types" aria-current="page">Event types</a>`)
		section := elementText(p.body, "type-bank_transfer_approved")
		require.Contains(t, section, "bank_transfer_approved")
		require.Contains(t, section, "A bank transfer was approved")
		require.Contains(t, section, "Not validated")
		require.NotContains(t, section, "Deprecated")
		require.Contains(t, section, `"$schema": "https://json-schema.org/draft/2020-12/schema"`)
		require.Contains(t, section, `"amount": 240000`)
		require.Contains(t, section, `"fx_rates": "4002.24"`)
		require.Regexp(t, `<pre class="json" tabindex="0" role="region" aria-labelledby="type-bank_transfer_approved-h type-bank_transfer_approved-example">`, p.body)

		hostile := elementText(p.body, "type-hostile.thing")
		require.Contains(t, hostile, "Validated on enqueue")
		require.Contains(t, hostile, "Deprecated since")
		for _, s := range []string{"<img src=x", "<script>alert(11)", "<script>alert(12)", "</pre><script>"} {
			require.NotContains(t, p.body, s)
		}
		require.Contains(t, p.body, "&lt;img src=x onerror=alert(10)&gt;")
		require.Contains(t, p.body, "&lt;/pre&gt;&lt;script&gt;alert(12)&lt;/script&gt;")
	})
}

// createWebhookWith creates a webhook through the API with key and body.
func (b *testBundle) createWebhookWith(t testing.TB, key string, body map[string]any) *webhook {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	var w webhook
	b.api(t, http.MethodPost, "/v1/webhooks", key, string(raw), http.StatusCreated, &w)
	return &w
}

// eventOf is the event id of delivery id.
func (b *testBundle) eventOf(t *testing.T, id string) string {
	t.Helper()
	var d delivery
	b.api(t, http.MethodGet, "/v1/deliveries/"+id, "", "", http.StatusOK, &d)
	return d.EventID
}
