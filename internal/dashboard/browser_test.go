package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testbrowser"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

// screenshots is where the test writes a PNG of each view:
// WEBHOOKD_SCREENSHOTS if set, else a temporary directory.
func screenshots(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("WEBHOOKD_SCREENSHOTS"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.TempDir()
}

// TestBrowser drives the dashboard in a real chromium: sign in, create a
// webhook through the form, read its secret through the eye, hit the
// duplicate error, watch a delivery die and replay it, set a custom header,
// send a test event, read the event catalogue, delete the webhook, sign
// out; then, as an admin, the dead deliveries of every account and a bulk
// replay.
func TestBrowser(t *testing.T) {
	t.Parallel()
	ctx := testbrowser.New(t)
	b := start(t)
	dir := screenshots(t)

	do := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	// follow runs steps that load a page (a click on a link, a form sent)
	// and waits until it has loaded.
	follow := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		resp, err := chromedp.RunResponse(ctx, steps...)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, int(resp.Status), resp.URL)
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "dashboard-"+name+".png"), buf, 0o644)
		})
	}
	textOf := func(t *testing.T, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}
	attr := func(t *testing.T, sel, name string) string {
		t.Helper()
		res, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		require.NoError(t, err, sel)
		require.True(t, res.Exists, "%s has no %s", sel, name)
		return res.Value
	}
	location := func(t *testing.T) string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		return u
	}
	count := func(t *testing.T, sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		require.NoError(t, err, sel)
		return n
	}
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
			return err
		})
	}

	// Another account's deliveries die meanwhile, for the admin's part.
	opsReceiver := testreceiver.New(t, testreceiver.Status(http.StatusBadGateway))
	opsHook := b.createWebhook(t, "acct_ops", opsReceiver.URL+"/ops")
	var opsDeliveries []string
	for range 2 {
		opsDeliveries = append(opsDeliveries, b.sendEvent(t, "acct_ops", "payout_failed")[0].ID)
	}

	key := b.createKey(t, "account", "acct_browser")
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	hookURL := receiver.URL + "/webhooks/mono"

	// Sign in: any dashboard page sends the browser to the form.
	do(t,
		chromedp.Navigate(b.base+"/dashboard/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		shot("signin"),
		chromedp.SendKeys(chromedp.CSS("#key"), key.Key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#webhooks-h")),
	)
	require.Contains(t, textOf(t, ".who-label"), "acct_browser")

	// The seed's path: Settings › Personal › API › New webhook, URL, Save.
	do(t,
		chromedp.Click(chromedp.CSS(`nav.mainnav a[href="/dashboard/settings"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.tile[href="/dashboard/settings/personal"]`)),
		chromedp.Click(chromedp.CSS(`a.tile[href="/dashboard/settings/personal"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.tile[href="/dashboard/settings/personal/api"]`)),
		chromedp.Click(chromedp.CSS(`a.tile[href="/dashboard/settings/personal/api"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button.primary[href^="/dashboard/settings/personal/api/new"]`)),
		chromedp.Click(chromedp.CSS(`a.button.primary[href^="/dashboard/settings/personal/api/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#url")),
		chromedp.SendKeys(chromedp.CSS("#url"), hookURL),
		chromedp.Click(chromedp.CSS(`form button.primary[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.success")),
	)
	require.Equal(t, "We successfully created your webhook.", textOf(t, ".alert.success"))
	require.Equal(t, "alert", attr(t, ".alert.success", "role"))
	require.Equal(t, hookURL, textOf(t, "table.webhooks td.url .wrap"))
	do(t, shot("webhooks"))

	// The arrow at the end of the row opens the detail view; the secret is
	// hidden until the eye is pressed (here with the keyboard).
	do(t,
		chromedp.Click(chromedp.CSS("a.row-open")),
		chromedp.WaitVisible(chromedp.CSS("#secret-value")),
	)
	hookID := strings.TrimPrefix(location(t), b.base+"/dashboard/webhooks/")
	require.True(t, strings.HasPrefix(hookID, "wh_"), hookID)
	require.Equal(t, hookURL, textOf(t, "#webhook-url"))
	require.NotContains(t, textOf(t, "#secret-value"), "whsec_")
	require.Equal(t, "false", attr(t, "button.eye", "aria-pressed"))
	do(t, shot("detail"))
	var apiSecret struct{ Secret string }
	b.api(t, http.MethodGet, "/v1/webhooks/"+hookID+"/secret", key.Key, "", http.StatusOK, &apiSecret)
	do(t,
		chromedp.Focus(chromedp.CSS("button.eye")),
		chromedp.KeyEvent(kb.Enter),
		poll(`document.getElementById("secret-value").textContent.startsWith("whsec_")`),
	)
	require.Equal(t, apiSecret.Secret, textOf(t, "#secret-value"))
	require.Equal(t, "true", attr(t, "button.eye", "aria-pressed"))
	do(t,
		chromedp.Click(chromedp.CSS("button.eye")),
		poll(`!document.getElementById("secret-value").textContent.includes("whsec_")`),
	)
	require.Equal(t, "false", attr(t, "button.eye", "aria-pressed"))

	// Two submits at once (a key press can make two) fetch the secret once:
	// one reveal recorded, and nothing shows it again after the next hide.
	secretReveals := func() int {
		return b.count(t, `SELECT count(*) FROM secret_reveals WHERE webhook_id = $1`, hookID)
	}
	revealsBefore := secretReveals()
	do(t,
		chromedp.Evaluate[chromedp.Void](`(function () { var f = document.querySelector("form[data-secret]"); f.requestSubmit(); f.requestSubmit(); })()`),
		poll(`document.getElementById("secret-value").textContent.startsWith("whsec_") && !document.querySelector("button.eye").disabled`),
	)
	// A second fetch, had one been sent, answers within this on a local server.
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, revealsBefore+1, secretReveals(), "one reveal for two submits at once")
	do(t,
		chromedp.Click(chromedp.CSS("button.eye")),
		poll(`!document.getElementById("secret-value").textContent.includes("whsec_")`),
	)
	require.Equal(t, "false", attr(t, "button.eye", "aria-pressed"))

	// The same URL again: the API's duplicate error beside the field.
	do(t,
		chromedp.Navigate(b.base+"/dashboard/settings/personal/api/new"),
		chromedp.WaitVisible(chromedp.CSS("#url")),
		chromedp.SendKeys(chromedp.CSS("#url"), hookURL),
		chromedp.Click(chromedp.CSS(`form button.primary[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#url-error")),
	)
	require.Contains(t, textOf(t, "#url-error"), "already has a webhook with this URL")
	require.Equal(t, "true", attr(t, "#url", "aria-invalid"))
	do(t, shot("new-webhook-error"))
	var list struct{ Data []webhook }
	b.api(t, http.MethodGet, "/v1/webhooks", key.Key, "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)

	// A delivery dies (ten attempts on the scaled schedule) ...
	var sent struct {
		ID         string     `json:"id"`
		Deliveries []delivery `json:"deliveries"`
	}
	b.api(t, http.MethodPost, "/v1/events", key.Key, `{"type":"bank_transfer_approved","data":{"amount":240000,"currency":"COP"}}`, http.StatusAccepted, &sent)
	require.Len(t, sent.Deliveries, 1)
	dlv := sent.Deliveries[0].ID
	b.waitDelivery(t, dlv, "dead", 45*time.Second)
	row := "li#" + dlv
	do(t,
		chromedp.Navigate(b.base+"/dashboard/webhooks/"+hookID),
		chromedp.WaitVisible(chromedp.CSS(row)),
		// Search by event id.
		chromedp.SendKeys(chromedp.CSS("#event_id"), sent.ID),
	)
	// The list is on the page already: wait for the search's page.
	follow(t, chromedp.Submit(chromedp.CSS("#event_id")))
	do(t, chromedp.WaitVisible(chromedp.CSS(row)))
	require.Contains(t, location(t), "event_id="+sent.ID)
	require.Equal(t, "dead", textOf(t, row+" .badge"))
	require.Equal(t, "bank_transfer_approved", textOf(t, row+" .etype"))
	require.Equal(t, "500", textOf(t, row+" .last-status"))
	do(t,
		chromedp.Click(chromedp.CSS(row+" summary")),
		chromedp.WaitVisible(chromedp.CSS(row+" table.attempts")),
		shot("deliveries"),
	)
	require.Equal(t, 10, count(t, row+" table.attempts tbody tr"))

	// ... and comes back with Replay once the receiver is healthy.
	receiver.SetRespond(testreceiver.Status(http.StatusOK))
	do(t,
		chromedp.Click(chromedp.CSS(row+" form.replay button")),
		chromedp.WaitVisible(chromedp.CSS(".alert.success")),
	)
	require.Contains(t, textOf(t, ".alert.success"), "Delivery replayed")
	b.waitDelivery(t, dlv, "succeeded", 30*time.Second)
	do(t,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(row)),
	)
	require.Equal(t, "succeeded", textOf(t, row+" .badge"))
	require.Equal(t, "200", textOf(t, row+" .last-status"))
	require.Zero(t, count(t, row+" form.replay"))

	// Custom headers: a reserved name is refused beside its row (the
	// values typed are not shown again), then the set is saved; only the
	// names are ever shown.
	saveHeaders := chromedp.Click(chromedp.CSS(`form[action$="/headers"] button[type="submit"]`))
	do(t,
		chromedp.Click(chromedp.CSS(".headers-edit summary")),
		chromedp.WaitVisible(chromedp.CSS("#header-name-0")),
		chromedp.SendKeys(chromedp.CSS("#header-name-0"), "X-Gateway-Key"),
		chromedp.SendKeys(chromedp.CSS("#header-value-0"), "gw-browser-value"),
		chromedp.SendKeys(chromedp.CSS("#header-name-1"), "Mono-Signature"),
		chromedp.SendKeys(chromedp.CSS("#header-value-1"), "forged"),
		saveHeaders,
		chromedp.WaitVisible(chromedp.CSS("#header-error-1")),
	)
	require.Contains(t, textOf(t, "#header-error-1"), "Mono-*")
	require.Equal(t, "true", attr(t, "#header-name-1", "aria-invalid"))
	doc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	require.NoError(t, err)
	require.NotContains(t, doc, "gw-browser-value")
	require.Contains(t, textOf(t, "#header-names"), "No custom headers")
	do(t,
		shot("headers-error"),
		chromedp.Clear(chromedp.CSS("#header-name-1")),
		chromedp.SendKeys(chromedp.CSS("#header-value-0"), "gw-browser-value"),
		saveHeaders,
		chromedp.WaitVisible(chromedp.CSS(".alert.success")),
	)
	require.Contains(t, textOf(t, ".alert.success"), "Custom headers saved")
	require.Equal(t, "X-Gateway-Key", textOf(t, "#header-names"))
	doc, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	require.NoError(t, err)
	require.NotContains(t, doc, "gw-browser-value")

	// Send test event against the now healthy receiver: the result is
	// announced, and its delivery is in the list, labelled Test.
	before := receiver.Count()
	do(t,
		chromedp.Navigate(b.base+"/dashboard/webhooks/"+hookID),
		chromedp.WaitVisible(chromedp.CSS("#send-test")),
		chromedp.Click(chromedp.CSS("#send-test")),
		chromedp.WaitVisible(chromedp.CSS("#test-result")),
	)
	require.Equal(t, "alert", attr(t, "#test-result", "role"))
	require.Contains(t, textOf(t, "#test-result-h"), "Test event delivered. The endpoint answered 200")
	require.Equal(t, "Succeeded", textOf(t, "#test-result-outcome"))
	reqs := receiver.Wait(t, before+1, 5*time.Second)
	require.Equal(t, "gw-browser-value", reqs[before].Header.Get("X-Gateway-Key"))
	testDlv := textOf(t, "#test-result-delivery")
	require.True(t, strings.HasPrefix(testDlv, "dlv_"), testDlv)
	require.Equal(t, "Test", textOf(t, "li#"+testDlv+" .badge.test"))
	do(t, shot("test-send"))
	follow(t, chromedp.Click(chromedp.CSS("#test-result-delivery")))
	do(t, chromedp.WaitVisible(chromedp.CSS("li#"+testDlv)))
	require.Contains(t, location(t), "event_id=")
	require.Equal(t, 1, count(t, "ol.deliveries > li"))

	// The event catalogue, from the main navigation.
	do(t,
		chromedp.Click(chromedp.CSS(`nav.mainnav a[href="/dashboard/event-types"]`)),
		chromedp.WaitVisible(chromedp.CSS("#type-bank_transfer_approved")),
		shot("event-types"),
	)
	require.Contains(t, textOf(t, "#type-bank_transfer_approved pre"), `"currency"`)

	// Readable at phone width.
	do(t,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)),
		chromedp.Navigate(b.base+"/dashboard/settings/personal/api"),
		chromedp.WaitVisible(chromedp.CSS("table.webhooks")),
		shot("phone"),
		chromedp.EmulateViewport(1280, 900),
	)
	do(t, chromedp.EmulateViewport(390, 844))
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	require.NoError(t, err)
	require.False(t, overflow, "the Webhooks page scrolls sideways at 390 px")
	do(t,
		chromedp.Navigate(b.base+"/dashboard/webhooks/"+hookID+"?test="+testDlv),
		chromedp.WaitVisible(chromedp.CSS("#test-result")),
	)
	overflow, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	require.NoError(t, err)
	require.False(t, overflow, "the detail view scrolls sideways at 390 px")
	do(t, chromedp.EmulateViewport(1280, 900))

	// Delete, with a confirmation.
	do(t,
		chromedp.Navigate(b.base+"/dashboard/webhooks/"+hookID),
		chromedp.WaitVisible(chromedp.CSS("a.button.danger")),
		chromedp.Click(chromedp.CSS("a.button.danger")),
		chromedp.WaitVisible(chromedp.CSS("form button.danger")),
		shot("delete"),
		chromedp.Click(chromedp.CSS("form button.danger")),
		chromedp.WaitVisible(chromedp.CSS(".alert.success")),
	)
	require.Contains(t, textOf(t, ".alert.success"), "Webhook deleted")
	require.Zero(t, count(t, "table.webhooks tbody tr"))
	b.api(t, http.MethodGet, "/v1/webhooks/"+hookID, key.Key, "", http.StatusNotFound, nil)

	// Sign out: the dashboard asks to sign in again.
	do(t,
		chromedp.Click(chromedp.CSS(".who button")),
		chromedp.WaitVisible(chromedp.CSS("#key")),
	)
	require.Contains(t, textOf(t, ".alert.success"), "signed out")
	do(t,
		chromedp.Navigate(b.base+"/dashboard/settings/personal/api"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
	)
	require.Contains(t, location(t), "/dashboard/signin")

	// An admin: dead deliveries of every account, and a bulk replay that
	// says how many it will replay before it does.
	for _, id := range opsDeliveries {
		b.waitDelivery(t, id, "dead", 45*time.Second)
	}
	do(t,
		chromedp.SendKeys(chromedp.CSS("#key"), testserver.AdminKey),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS(`nav.mainnav a[href="/dashboard/dead"]`)),
		chromedp.Click(chromedp.CSS(`nav.mainnav a[href="/dashboard/dead"]`)),
		chromedp.WaitVisible(chromedp.CSS("#account_id")),
		chromedp.SendKeys(chromedp.CSS("#account_id"), "acct_ops"),
	)
	// The unfiltered view lists them too: wait for the filtered one.
	follow(t, chromedp.Submit(chromedp.CSS("#account_id")))
	require.Contains(t, location(t), "account_id=acct_ops")
	do(t,
		chromedp.WaitVisible(chromedp.CSS("li#"+opsDeliveries[1])),
		shot("dead"),
	)
	require.Equal(t, 2, count(t, "ol.deliveries > li"))
	do(t,
		chromedp.Click(chromedp.CSS(`a.button.primary[href^="/dashboard/dead/replay"]`)),
		chromedp.WaitVisible(chromedp.CSS("#bulk-count")),
		shot("bulk-replay"),
	)
	require.Equal(t, "2", textOf(t, "#bulk-count"))
	opsReceiver.SetRespond(testreceiver.Status(http.StatusOK))
	do(t,
		chromedp.Click(chromedp.CSS(`form button.primary[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href^="/dashboard/replays/"]`)),
	)
	for _, id := range opsDeliveries {
		b.waitDelivery(t, id, "succeeded", 30*time.Second)
	}
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND state = 'succeeded' AND generation = 2", opsHook.ID))
	do(t,
		chromedp.Click(chromedp.CSS(".who button")),
		chromedp.WaitVisible(chromedp.CSS("#key")),
	)
	t.Logf("screenshots in %s", dir)
}

// TestBrowserLifecycle drives the detail view's lifecycle panels in
// chromium (rotate the secret, the event-type filter, pause and resume, the
// endpoint's health) and an admin's Settings › API keys (make a key, rotate
// it), with a screenshot of each: dashboard-lifecycle.png and
// dashboard-keys.png.
func TestBrowserLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testbrowser.New(t)
	b := start(t)
	dir := screenshots(t)
	do := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "dashboard-"+name+".png"), buf, 0o644)
		})
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
	noSideScroll := func(t *testing.T, path, sel string) {
		t.Helper()
		do(t,
			chromedp.EmulateViewport(390, 844),
			chromedp.Navigate(b.base+path),
			chromedp.WaitVisible(chromedp.CSS(sel)),
		)
		require.False(t, eval(t, `document.documentElement.scrollWidth > window.innerWidth`), "%s scrolls sideways at 390 px", path)
		do(t, chromedp.EmulateViewport(1280, 900))
	}

	// A webhook whose endpoint has been failing: one delivery died.
	key := b.createKey(t, "account", "acct_lifecycle")
	receiver := testreceiver.New(t, testreceiver.Status(http.StatusServiceUnavailable))
	hook := b.createWebhookWith(t, key.Key, map[string]any{"url": receiver.URL + "/webhooks/mono", "description": "payouts"})
	dead := b.sendEvent(t, "acct_lifecycle", "payout_failed")[0].ID
	b.waitDelivery(t, dead, "dead", 45*time.Second)
	receiver.SetRespond(testreceiver.Status(http.StatusOK))

	do(t,
		chromedp.Navigate(b.base+"/dashboard/webhooks/"+hook.ID),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key.Key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#rotate")),
	)

	// Rotate with the default overlap: the new secret, announced and
	// focused, once; a reload shows the overlap but not the secret.
	do(t,
		chromedp.Click(chromedp.CSS("#rotate")),
		chromedp.WaitVisible(chromedp.CSS("#rotate-result")),
	)
	var apiSecret struct{ Secret string }
	b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID+"/secret", key.Key, "", http.StatusOK, &apiSecret)
	require.Equal(t, apiSecret.Secret, textOf(t, "#new-secret"))
	require.True(t, eval(t, `document.activeElement.id === "rotate-result"`))
	require.True(t, eval(t, `location.pathname === "/dashboard/webhooks/`+hook.ID+`"`))
	do(t,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("#previous-secret")),
	)
	require.False(t, eval(t, `document.documentElement.outerHTML.includes(`+"`"+apiSecret.Secret+"`"+`)`))
	var after struct{ Secret string }
	b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID+"/secret", key.Key, "", http.StatusOK, &after)
	require.Equal(t, apiSecret.Secret, after.Secret, "the reload rotated again")
	require.Contains(t, textOf(t, "#previous-secret"), "Previous secret signs until")

	// The event-type filter: a bad entry refused beside the field, then
	// saved.
	do(t,
		chromedp.Click(chromedp.CSS(".filter-edit summary")),
		chromedp.WaitVisible(chromedp.CSS("#event_types")),
		chromedp.SendKeys(chromedp.CSS("#event_types"), "payout_*\nBad Type"),
		chromedp.Click(chromedp.CSS("#save-filter")),
		chromedp.WaitVisible(chromedp.CSS("#event_types-error")),
	)
	require.Contains(t, textOf(t, "#event_types-error"), `Entry 2 ("Bad Type")`)
	require.True(t, eval(t, `document.activeElement.id === "event_types"`))
	do(t,
		chromedp.Clear(chromedp.CSS("#event_types")),
		chromedp.SendKeys(chromedp.CSS("#event_types"), "payout_*, bank_transfer_approved"),
		chromedp.Click(chromedp.CSS("#save-filter")),
		chromedp.WaitVisible(chromedp.CSS(".alert.success")),
	)
	require.Equal(t, "Receives only: bank_transfer_approved, payout_*", textOf(t, "#filter-current"))

	// Pause, after confirming; a new delivery waits, paused.
	do(t,
		chromedp.Click(chromedp.CSS("#pause")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-pause")),
		chromedp.Click(chromedp.CSS("#confirm-pause")),
		chromedp.WaitVisible(chromedp.CSS("#resume")),
	)
	waiting := b.sendEvent(t, "acct_lifecycle", "payout_failed")[0].ID
	b.waitDelivery(t, waiting, "paused", 5*time.Second)
	// The health the workers wrote (every 5 s): ten failures in a row.
	testwait.For(t, 20*time.Second, func() (bool, string) {
		var h struct {
			ConsecutiveFailures int `json:"consecutive_failures"`
		}
		b.api(t, http.MethodGet, "/v1/webhooks/"+hook.ID+"/health", key.Key, "", http.StatusOK, &h)
		return h.ConsecutiveFailures == 10, fmt.Sprintf("%d consecutive failures, not 10", h.ConsecutiveFailures)
	})
	do(t,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("li#"+waiting)),
	)
	require.Contains(t, textOf(t, "#pause-state"), "Paused since")
	require.Equal(t, "paused", textOf(t, "li#"+waiting+" .badge"))
	require.Equal(t, "10 failed attempts in a row", textOf(t, "#health-summary"))
	require.Equal(t, "10 attempts, 0 succeeded, 10 failed", textOf(t, "#health-last-hour"))
	do(t, shot("lifecycle"))
	require.Equal(t, 10, receiver.Count(), "sent while paused")
	noSideScroll(t, "/dashboard/webhooks/"+hook.ID, "#health-h")

	// Resume: the paused delivery is sent.
	do(t,
		chromedp.Navigate(b.base+"/dashboard/webhooks/"+hook.ID),
		chromedp.WaitVisible(chromedp.CSS("#resume")),
		chromedp.Click(chromedp.CSS("#resume")),
		chromedp.WaitVisible(chromedp.CSS("#pause")),
	)
	b.waitDelivery(t, waiting, "succeeded", 15*time.Second)
	do(t,
		chromedp.Click(chromedp.CSS(".who button")),
		chromedp.WaitVisible(chromedp.CSS("#key")),
	)

	// An admin: Settings › API keys; make a key, then rotate it.
	do(t,
		chromedp.SendKeys(chromedp.CSS("#key"), testserver.AdminKey),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS(`nav.side a[href="/dashboard/settings/keys"]`)),
		chromedp.Click(chromedp.CSS(`nav.side a[href="/dashboard/settings/keys"]`)),
		chromedp.WaitVisible(chromedp.CSS(".key-new summary")),
		chromedp.Click(chromedp.CSS(".key-new summary")),
		chromedp.WaitVisible(chromedp.CSS("#key-account")),
		chromedp.SendKeys(chromedp.CSS("#key-account"), "acct_lifecycle"),
		chromedp.SendKeys(chromedp.CSS("#key-description"), "billing service"),
		chromedp.Click(chromedp.CSS("#create-key")),
		chromedp.WaitVisible(chromedp.CSS("#new-key")),
	)
	made := textOf(t, "#new-key-value")
	require.True(t, strings.HasPrefix(made, "whk_"), made)
	b.api(t, http.MethodGet, "/v1/webhooks", made, "", http.StatusOK, nil)
	var keys struct{ Data []struct{ ID string } }
	b.api(t, http.MethodGet, "/v1/keys?account_id=acct_lifecycle", "", "", http.StatusOK, &keys)
	madeID := keys.Data[0].ID
	do(t,
		chromedp.Navigate(b.base+"/dashboard/settings/keys"),
		chromedp.WaitVisible(chromedp.CSS("#key-"+madeID+" .key-rotate summary")),
		chromedp.Click(chromedp.CSS("#key-"+madeID+" .key-rotate summary")),
		chromedp.WaitVisible(chromedp.CSS("#grace-"+madeID)),
		chromedp.Click(chromedp.CSS("#key-"+madeID+` .key-rotate button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#old-key-expiry")),
	)
	require.Contains(t, textOf(t, "#old-key-expiry"), "keeps working until")
	require.True(t, eval(t, `document.activeElement.id === "new-key"`))
	rotated := textOf(t, "#new-key-value")
	require.NotEqual(t, made, rotated)
	b.api(t, http.MethodGet, "/v1/webhooks", rotated, "", http.StatusOK, nil)
	b.api(t, http.MethodGet, "/v1/webhooks", made, "", http.StatusOK, nil) // its grace hour
	do(t, shot("keys"))
	noSideScroll(t, "/dashboard/settings/keys", "table.keys")
	t.Logf("screenshots in %s", dir)
}
