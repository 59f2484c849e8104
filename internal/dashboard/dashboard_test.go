package dashboard_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/dashboard"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
)

// TestDashboard covers the server side of the dashboard against one real
// webhookd; each subtest uses accounts of its own.
func TestDashboard(t *testing.T) {
	t.Parallel()
	bundle := start(t)
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		t.Parallel()
		return bundle
	}

	t.Run("NoSessionRedirectsToSignIn", func(t *testing.T) {
		b := setup(t)
		br := b.browser(t)

		for _, path := range []string{"/dashboard/", "/dashboard/settings/personal/api", "/dashboard/webhooks/" + ident.New(ident.Webhook), "/dashboard/dead", "/dashboard/nope"} {
			p := br.get(t, path)
			require.Equal(t, http.StatusSeeOther, p.status, path)
			require.Equal(t, "/dashboard/signin?next="+url.QueryEscape(path), p.location, path)
		}
		// The site root sends a browser to the dashboard.
		p := br.get(t, "/")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/dashboard/", p.location)

		// A form posted without a session creates nothing.
		p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"url": {"https://example.com/nosession"}, "account_id": {"acct_nosession"}})
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/dashboard/signin", p.location)
		require.Zero(t, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = 'acct_nosession'"))

		// After signing in, the next parameter brings the user back; one
		// that leaves the dashboard is ignored.
		k := b.createKey(t, "account", "acct_nosession")
		p = br.get(t, "/dashboard/signin?next=%2Fdashboard%2Fsettings")
		require.Equal(t, http.StatusOK, p.status)
		p = br.post(t, "/dashboard/signin", url.Values{"csrf": {br.csrf(t)}, "key": {k.Key}, "next": {"/dashboard/settings"}})
		require.Equal(t, "/dashboard/settings", p.location)
		for _, next := range []string{"https://evil.example/", "//evil.example/", "/dashboard/../v1/keys", "/\\evil.example"} {
			other := b.browser(t)
			other.get(t, "/dashboard/signin")
			p = other.post(t, "/dashboard/signin", url.Values{"csrf": {other.csrf(t)}, "key": {k.Key}, "next": {next}})
			require.Equal(t, "/dashboard/settings/personal/api", p.location, next)
		}
	})

	t.Run("SignInAndOut", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_signin")
		br := b.browser(t)

		// A wrong key, and a key that can't sign in.
		br.get(t, "/dashboard/signin")
		p := br.post(t, "/dashboard/signin", url.Values{"csrf": {br.csrf(t)}, "key": {"whk_not-a-real-key-0000000000000000000000000000"}})
		require.Equal(t, http.StatusUnauthorized, p.status)
		require.Contains(t, elementText(p.body, "key-error"), "not valid")
		events := b.createKey(t, "events:write", "")
		p = br.post(t, "/dashboard/signin", url.Values{"csrf": {br.csrf(t)}, "key": {events.Key}})
		require.Equal(t, http.StatusForbidden, p.status)
		require.Contains(t, elementText(p.body, "key-error"), "events:write")
		require.Zero(t, b.count(t, "SELECT count(*) FROM dashboard_sessions WHERE key_id = ANY($1)", []string{k.ID, events.ID}))

		// The sign-in form has its own CSRF token (no session yet).
		p = br.post(t, "/dashboard/signin", url.Values{"key": {k.Key}})
		require.Equal(t, http.StatusForbidden, p.status)
		p = br.post(t, "/dashboard/signin", url.Values{"csrf": {"forged"}, "key": {k.Key}})
		require.Equal(t, http.StatusForbidden, p.status)

		// Signing in sets an HttpOnly, SameSite=Strict cookie (not Secure:
		// this is plain HTTP); only the token's SHA-256 is stored.
		br.get(t, "/dashboard/signin")
		p = br.post(t, "/dashboard/signin", url.Values{"csrf": {br.csrf(t)}, "key": {k.Key}})
		require.Equal(t, http.StatusSeeOther, p.status)
		var cookie *http.Cookie
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name == "webhookd_session" {
				cookie = c
			}
		}
		require.NotNil(t, cookie)
		require.True(t, cookie.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
		require.False(t, cookie.Secure)
		require.Equal(t, "/dashboard", cookie.Path)
		sum := sha256.Sum256([]byte(cookie.Value))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM dashboard_sessions WHERE token_hash = $1 AND key_id = $2", sum[:], k.ID))
		require.Zero(t, b.count(t, "SELECT count(*) FROM dashboard_sessions WHERE csrf_token = $1 OR key_hash::text LIKE '%'||$1||'%'", cookie.Value))

		p = br.get(t, "/dashboard/settings/personal/api")
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, text(p.body), "Account acct_signin")
		require.NotContains(t, p.body, k.Key, "the key is never shown")
		require.Equal(t, "no-store", p.header.Get("Cache-Control"))
		require.Contains(t, p.header.Get("Content-Security-Policy"), "default-src 'none'")

		// Signing out needs the CSRF token, then ends the session for good.
		p = br.post(t, "/dashboard/signout", url.Values{})
		require.Equal(t, http.StatusForbidden, p.status)
		p = br.post(t, "/dashboard/signout", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Equal(t, "/dashboard/signin?signedout=1", p.location)
		require.Zero(t, b.count(t, "SELECT count(*) FROM dashboard_sessions WHERE token_hash = $1", sum[:]))
		replayed := b.browser(t)
		u, _ := url.Parse(b.base + "/dashboard/")
		replayed.c.Jar.SetCookies(u, []*http.Cookie{{Name: "webhookd_session", Value: cookie.Value}})
		p = replayed.get(t, "/dashboard/settings/personal/api")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.True(t, strings.HasPrefix(p.location, "/dashboard/signin?ended=1"), p.location)
	})

	t.Run("CSRF", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_csrf")
		br := b.browser(t)
		br.signIn(t, k.Key)
		token := br.csrf(t)
		form := func(csrf string) url.Values {
			v := url.Values{"url": {"https://example.com/csrf"}}
			if csrf != "" {
				v.Set("csrf", csrf)
			}
			return v
		}

		// No token, a wrong token, another site's page: refused, nothing made.
		for name, p := range map[string]*page{
			"none":        br.post(t, "/dashboard/settings/personal/api/new", form("")),
			"wrong":       br.post(t, "/dashboard/settings/personal/api/new", form(token+"x")),
			"otherOrigin": br.post(t, "/dashboard/settings/personal/api/new", form(token), "Origin", "https://evil.example"),
			"crossSite":   br.post(t, "/dashboard/settings/personal/api/new", form(token), "Sec-Fetch-Site", "cross-site"),
		} {
			require.Equal(t, http.StatusForbidden, p.status, name)
			require.Contains(t, text(p.body), "Request refused", name)
		}
		require.Zero(t, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = 'acct_csrf'"))

		// Another session's token does not work either.
		other := b.browser(t)
		other.signIn(t, k.Key)
		p := br.post(t, "/dashboard/settings/personal/api/new", form(other.csrf(t)))
		require.Equal(t, http.StatusForbidden, p.status)

		// Every other state-changing form checks it too.
		hook := b.createWebhook(t, "acct_csrf", "https://example.com/csrf-other")
		for _, path := range []string{"/dashboard/webhooks/" + hook.ID + "/secret", "/dashboard/webhooks/" + hook.ID + "/delete", "/dashboard/webhooks/" + hook.ID + "/test", "/dashboard/webhooks/" + hook.ID + "/headers", "/dashboard/deliveries/" + ident.New(ident.Delivery) + "/replay", "/dashboard/signout"} {
			p := br.post(t, path, url.Values{"csrf": {"nope"}})
			require.Equal(t, http.StatusForbidden, p.status, path)
		}
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM webhooks WHERE id = $1 AND deleted_at IS NULL", hook.ID))
		require.Zero(t, b.count(t, "SELECT count(*) FROM secret_reveals WHERE webhook_id = $1", hook.ID))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM webhooks WHERE id = $1 AND headers_ciphertext IS NULL", hook.ID))
		require.Zero(t, b.count(t, "SELECT count(*) FROM deliveries WHERE webhook_id = $1", hook.ID))

		// With the token it works.
		p = br.post(t, "/dashboard/settings/personal/api/new", form(token))
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = 'acct_csrf' AND url_normalized = 'https://example.com/csrf'"))
	})

	t.Run("CreateAndValidate", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_create")
		br := b.browser(t)
		br.signIn(t, k.Key)
		token := br.csrf(t)

		p := br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {token}, "url": {"https://example.com/create"}, "description": {"billing"}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.True(t, strings.HasPrefix(p.location, "/dashboard/settings/personal/api?"), p.location)
		p = br.get(t, p.location)
		require.Contains(t, text(p.body), "We successfully created your webhook.")
		require.Contains(t, p.body, `role="alert"`)
		require.Contains(t, text(p.body), "https://example.com/create")
		require.Contains(t, text(p.body), "No deliveries yet")

		// The API's validation and messages, beside the field; nothing made.
		cases := []struct {
			url     string
			status  int
			message string
		}{
			{"not a url", http.StatusUnprocessableEntity, ""},
			{"ftp://example.com/x", http.StatusUnprocessableEntity, ""},
			{"http://localhost:8080/hook", http.StatusUnprocessableEntity, "localhost"},
			{"http://127.0.0.1:9/hook", http.StatusUnprocessableEntity, "127.0.0.1"},
			{"", http.StatusUnprocessableEntity, "url is required"},
			{"https://example.com/create", http.StatusConflict, "already has a webhook with this URL"},
		}
		for _, c := range cases {
			p := br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {token}, "url": {c.url}})
			require.Equal(t, c.status, p.status, c.url)
			msg := elementText(p.body, "url-error")
			require.NotEmpty(t, msg, c.url)
			require.Contains(t, msg, c.message, c.url)
			require.Contains(t, p.body, `aria-invalid="true"`)
			require.Contains(t, p.body, `aria-describedby="url-hint url-error"`)
			require.Contains(t, text(p.body), "The webhook was not created", c.url)
			// The form keeps what was typed.
			require.Contains(t, p.body, `value="`+htmlEscape(c.url)+`"`)
		}
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = 'acct_create'"))

		// The same message as the JSON API gives.
		var apiErr struct {
			Error struct{ Message string } `json:"error"`
		}
		b.api(t, http.MethodPost, "/v1/webhooks", k.Key, `{"url":"http://localhost:8080/hook"}`, http.StatusUnprocessableEntity, &apiErr)
		p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {token}, "url": {"http://localhost:8080/hook"}})
		require.Equal(t, apiErr.Error.Message, elementText(p.body, "url-error"))

		// A description over the API's limit is named beside its field.
		p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {token}, "url": {"https://example.com/long"}, "description": {strings.Repeat("x", 501)}})
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "description-error"), "at most 500")
	})

	t.Run("OtherAccountIsNotFound", func(t *testing.T) {
		b := setup(t)
		mine := b.createKey(t, "account", "acct_mine")
		theirs := b.createWebhook(t, "acct_theirs", "https://example.com/theirs")
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
		theirsLive := b.createWebhook(t, "acct_theirs", receiver.URL+"/theirs")
		dl := b.sendEvent(t, "acct_theirs", "bank_transfer_approved")
		require.Len(t, dl, 2)
		var dead string
		for _, d := range dl {
			if d.WebhookID == theirsLive.ID {
				dead = d.ID
			}
		}
		b.waitDelivery(t, dead, "dead", 30*time.Second)

		br := b.browser(t)
		br.signIn(t, mine.Key)
		require.NotContains(t, br.last, "example.com/theirs")
		token := br.csrf(t)

		for _, path := range []string{"/dashboard/webhooks/" + theirs.ID, "/dashboard/webhooks/" + theirs.ID + "/delete", "/dashboard/webhooks/not-an-id"} {
			p := br.get(t, path)
			require.Equal(t, http.StatusNotFound, p.status, path)
			require.NotContains(t, p.body, "example.com/theirs", path)
		}
		p := br.post(t, "/dashboard/webhooks/"+theirs.ID+"/delete", url.Values{"csrf": {token}})
		require.Equal(t, http.StatusNotFound, p.status)
		p = br.post(t, "/dashboard/webhooks/"+theirs.ID+"/secret", url.Values{"csrf": {token}})
		require.Equal(t, http.StatusNotFound, p.status)
		require.NotContains(t, p.body, "whsec_")
		p = br.post(t, "/dashboard/webhooks/"+theirs.ID+"/secret", url.Values{"csrf": {token}}, "Accept", "application/json")
		require.Equal(t, http.StatusNotFound, p.status)
		require.NotContains(t, p.body, "whsec_")
		p = br.post(t, "/dashboard/deliveries/"+dead+"/replay", url.Values{"csrf": {token}})
		require.Equal(t, http.StatusNotFound, p.status)
		// Nor can a test event be sent to it, or its headers replaced.
		sentBefore := receiver.Count()
		p = br.post(t, "/dashboard/webhooks/"+theirsLive.ID+"/test", url.Values{"csrf": {token}})
		require.Equal(t, http.StatusNotFound, p.status)
		p = br.post(t, "/dashboard/webhooks/"+theirsLive.ID+"/headers", url.Values{"csrf": {token}, "header_name": {"X-Sneaky"}, "header_value": {"1"}})
		require.Equal(t, http.StatusNotFound, p.status)
		require.Equal(t, sentBefore, receiver.Count())
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM webhooks WHERE id = $1 AND headers_ciphertext IS NULL", theirsLive.ID))
		// Naming another account on the Webhooks page or the form is no way round.
		p = br.get(t, "/dashboard/settings/personal/api?account_id=acct_theirs")
		require.NotContains(t, p.body, "example.com/theirs")
		p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {token}, "url": {"https://example.com/sneaky"}, "account_id": {"acct_theirs"}})
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Zero(t, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = 'acct_theirs' AND url_normalized = 'https://example.com/sneaky'"))
		// The dead view is for admin keys.
		p = br.get(t, "/dashboard/dead")
		require.Equal(t, http.StatusForbidden, p.status)
		p = br.get(t, "/dashboard/dead/replay?account_id=acct_theirs")
		require.Equal(t, http.StatusForbidden, p.status)

		// Nothing of theirs changed.
		require.Equal(t, 2, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = 'acct_theirs' AND deleted_at IS NULL"))
		require.Zero(t, b.count(t, "SELECT count(*) FROM secret_reveals WHERE webhook_id = $1", theirs.ID))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM deliveries WHERE id = $1 AND state = 'dead' AND generation = 1", dead))
	})

	t.Run("RevokedKeyEndsSession", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_revoke")
		br := b.browser(t)
		br.signIn(t, k.Key)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM dashboard_sessions WHERE key_id = $1", k.ID))

		b.api(t, http.MethodDelete, "/v1/keys/"+k.ID, "", "", http.StatusNoContent, nil)
		p := br.get(t, "/dashboard/settings/personal/api")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.True(t, strings.HasPrefix(p.location, "/dashboard/signin?ended=1&next="), p.location)
		require.Zero(t, b.count(t, "SELECT count(*) FROM dashboard_sessions WHERE key_id = $1", k.ID))
		// Forms stop working too, and the key can't sign in again.
		p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {br.csrf(t)}, "url": {"https://example.com/revoked"}})
		require.Equal(t, http.StatusSeeOther, p.status)
		require.Zero(t, b.count(t, "SELECT count(*) FROM webhooks WHERE account_id = 'acct_revoke'"))
		br.get(t, "/dashboard/signin")
		p = br.post(t, "/dashboard/signin", url.Values{"csrf": {br.csrf(t)}, "key": {k.Key}})
		require.Equal(t, http.StatusUnauthorized, p.status)
	})

	t.Run("SecretOnlyWhenShown", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_secret")
		hook := b.createWebhook(t, "acct_secret", "https://example.com/secret")
		br := b.browser(t)
		br.signIn(t, k.Key)

		p := br.get(t, "/dashboard/webhooks/"+hook.ID)
		require.Equal(t, http.StatusOK, p.status)
		require.NotContains(t, p.body, htmlEscape(hook.Secret))
		require.NotContains(t, p.body, "whsec_")
		require.Contains(t, p.body, `aria-pressed="false"`)
		require.Contains(t, elementText(p.body, "secret-value"), "hidden")
		require.Zero(t, b.count(t, "SELECT count(*) FROM secret_reveals WHERE webhook_id = $1", hook.ID))

		// The eye (script): JSON, never cached, recorded against the key.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/secret", url.Values{"csrf": {br.csrf(t)}}, "Accept", "application/json")
		require.Equal(t, http.StatusOK, p.status)
		require.Equal(t, "no-store", p.header.Get("Cache-Control"))
		var out struct{ Secret string }
		require.NoError(t, json.Unmarshal([]byte(p.body), &out))
		require.Equal(t, hook.Secret, out.Secret)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM secret_reveals WHERE webhook_id = $1 AND key_id = $2", hook.ID, k.ID))

		// Without script the form shows the page with the secret.
		p = br.post(t, "/dashboard/webhooks/"+hook.ID+"/secret", url.Values{"csrf": {br.csrf(t)}})
		require.Equal(t, http.StatusOK, p.status)
		require.Equal(t, hook.Secret, elementText(p.body, "secret-value"))
		require.Equal(t, 2, b.count(t, "SELECT count(*) FROM secret_reveals WHERE webhook_id = $1", hook.ID))
	})

	t.Run("HostileTextIsEscaped", func(t *testing.T) {
		b := setup(t)
		k := b.createKey(t, "account", "acct_hostile")
		const script = `"><script>alert(1)</script>`
		// The API accepts this URL (the query is the customer's business).
		hook := b.createWebhook(t, "acct_hostile", "https://example.com/h?x="+url.QueryEscape(`"'`)+`&y=<b>`)
		// And stores what producers send; types, excerpts and messages
		// are written straight to the tables here, as nothing through
		// the API can be this hostile.
		ctx := context.Background()
		_, err := b.pool.Exec(ctx, `UPDATE webhooks SET url_normalized = url_normalized || $2, description = $3 WHERE id = $1`,
			hook.ID, script, `<img src=x onerror=alert(2)>`)
		require.NoError(t, err)
		evt, dlv := ident.New(ident.Event), ident.New(ident.Delivery)
		_, err = b.pool.Exec(ctx, `INSERT INTO events (id, account_id, type, body, occurred_at) VALUES ($1, 'acct_hostile', $2, '{}', now())`, evt, `<img src=x onerror=alert(3)>`)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `INSERT INTO deliveries (id, event_id, webhook_id, account_id, event_type, state, attempts, gen_attempts, finished_at)
			VALUES ($1, $2, $3, 'acct_hostile', $4, 'dead', 1, 1, now())`, dlv, evt, hook.ID, `<img src=x onerror=alert(3)>`)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `INSERT INTO attempts (delivery_id, number, generation, scheduled_at, started_at, duration_us, status_code, error_kind, error_message, response_excerpt, signature_t)
			VALUES ($1, 1, 1, now(), now(), 1500, 500, 'http_status', $2, $3, 0)`, dlv, `</td><script>alert(4)</script>`, []byte("<script>alert(5)</script>\x00\xff"))
		require.NoError(t, err)

		br := b.browser(t)
		br.signIn(t, k.Key)
		list := br.get(t, "/dashboard/settings/personal/api")
		detail := br.get(t, "/dashboard/webhooks/"+hook.ID)
		del := br.get(t, "/dashboard/webhooks/"+hook.ID+"/delete")
		for name, p := range map[string]*page{"list": list, "detail": detail, "delete": del} {
			require.Equal(t, http.StatusOK, p.status, name)
			require.NotContains(t, p.body, "<script>alert", name)
			require.NotContains(t, p.body, "<img src=x", name)
			require.Contains(t, p.body, "&lt;script&gt;alert(1)&lt;/script&gt;", name)
			require.Contains(t, p.body, "y=&lt;b&gt;", name)
		}
		require.Contains(t, list.body, "&lt;img src=x onerror=alert(2)&gt;")
		require.Contains(t, detail.body, "&lt;img src=x onerror=alert(3)&gt;")
		require.Contains(t, detail.body, "&lt;/td&gt;&lt;script&gt;alert(4)&lt;/script&gt;")
		require.Contains(t, detail.body, "&lt;script&gt;alert(5)&lt;/script&gt;\uFFFD\uFFFD")
		// The arrow's accessible name carries the URL, escaped as an attribute.
		require.Contains(t, list.body, `aria-label="Details of https://example.com/h?x=%22%27&amp;y=&lt;b&gt;&#34;&gt;&lt;script&gt;`)
	})

	t.Run("DeadViewAndBulkReplay", func(t *testing.T) {
		b := setup(t)
		receiver := testreceiver.New(t, testreceiver.Status(http.StatusServiceUnavailable))
		hook := b.createWebhook(t, "acct_bulk", receiver.URL+"/bulk")
		var ids []string
		for range 3 {
			ids = append(ids, b.sendEvent(t, "acct_bulk", "card_frozen")[0].ID)
		}
		for _, id := range ids {
			b.waitDelivery(t, id, "dead", 30*time.Second)
		}
		admin := b.createKey(t, "admin", "")
		br := b.browser(t)
		br.signIn(t, admin.Key)

		// The API's filters, and its messages beside the field at fault.
		p := br.get(t, "/dashboard/dead?account_id=acct_bulk")
		require.Equal(t, http.StatusOK, p.status)
		for _, id := range ids {
			require.Contains(t, p.body, `id="`+id+`"`)
		}
		require.Equal(t, 3, strings.Count(p.body, `action="/dashboard/deliveries/`))
		p = br.get(t, "/dashboard/dead?account_id=acct_bulk&event_type=Bad+Type")
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "event_type-error"), "event_type must be")
		p = br.get(t, "/dashboard/dead?created_after=yesterday")
		require.Equal(t, http.StatusUnprocessableEntity, p.status)
		require.Contains(t, elementText(p.body, "created_after-error"), "RFC 3339")
		p = br.get(t, "/dashboard/dead?account_id=acct_bulk&created_after=2020-01-02T03:04")
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, p.body, `value="2020-01-02T03:04:00Z"`)

		// Bulk replay: the confirmation counts first, and changes nothing.
		p = br.get(t, "/dashboard/dead/replay?webhook_id="+hook.ID)
		require.Equal(t, http.StatusOK, p.status)
		require.Equal(t, "3", elementText(p.body, "bulk-count"))
		require.Contains(t, text(p.body), "This will replay 3 dead deliveries")
		require.Equal(t, 3, b.count(t, "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND state = 'dead'", hook.ID))
		// The view's own link carries its filter.
		p = br.get(t, "/dashboard/dead?account_id=acct_bulk")
		m := regexp.MustCompile(`href="(/dashboard/dead/replay\?[^"]*)"`).FindStringSubmatch(p.body)
		require.NotNil(t, m)
		p = br.get(t, html.UnescapeString(m[1]))
		require.Equal(t, "3", elementText(p.body, "bulk-count"), p.body)
		p = br.get(t, "/dashboard/dead/replay")
		require.Contains(t, text(p.body), "never crosses accounts")
		p = br.get(t, "/dashboard/dead/replay?account_id=acct_bulk&event_type=card_frozen")
		require.Contains(t, text(p.body), "remove the event type")

		receiver.SetRespond(testreceiver.Status(http.StatusOK))
		p = br.post(t, "/dashboard/dead/replay", url.Values{"csrf": {br.csrf(t)}, "webhook_id": {hook.ID}})
		require.Equal(t, http.StatusSeeOther, p.status, p.body)
		require.True(t, strings.HasPrefix(p.location, "/dashboard/replays/"), p.location)
		for _, id := range ids {
			b.waitDelivery(t, id, "succeeded", 30*time.Second)
		}
		p = br.get(t, p.location)
		require.Equal(t, http.StatusOK, p.status)
		require.Contains(t, text(p.body), "Done: 3 of 3 replayed")
	})

	t.Run("SessionExpires", func(t *testing.T) {
		b := setup(t)
		// A dashboard and API of their own on the same database, with a
		// clock the test moves (the API's operations time the sessions).
		var (
			mu  sync.Mutex
			now = time.Now()
		)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		enqueuer, err := engine.NewEnqueuer(b.srv.River(), nil)
		require.NoError(t, err)
		api, err := admin.New(b.pool, enqueuer, b.srv.Keys, &admin.Config{BootstrapAdminKey: testserver.AdminKey, Policy: &outbound.Policy{AllowPrivate: true}, Now: clock})
		require.NoError(t, err)
		dash, err := dashboard.New(api, &dashboard.Config{Now: clock, SessionTTL: time.Hour})
		require.NoError(t, err)
		ts := httptest.NewServer(dash.Handler())
		t.Cleanup(ts.Close)
		own := &testBundle{srv: b.srv, base: ts.URL, pool: b.pool, http: b.http}

		br := own.browser(t)
		br.signIn(t, testserver.AdminKey) // the bootstrap key signs in too
		require.Contains(t, text(br.last), "Admin (bootstrap key)")
		mu.Lock()
		now = now.Add(59 * time.Minute)
		mu.Unlock()
		require.Equal(t, http.StatusOK, br.get(t, "/dashboard/settings").status)
		mu.Lock()
		now = now.Add(2 * time.Minute)
		mu.Unlock()
		p := br.get(t, "/dashboard/settings")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.True(t, strings.HasPrefix(p.location, "/dashboard/signin?ended=1"), p.location)
	})

	integrationSubtests(t, setup)
	lifecycleSubtests(t, setup)
}

func htmlEscape(s string) string {
	// As html/template writes text: a secret's + (standard base64) too.
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;")
	return r.Replace(s)
}
