package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testbrowser"
	"github.com/mono/webhookd/internal/testserver"
)

// recordViolations makes every document the tab opens from now on keep
// its Content-Security-Policy violations in window.__cspViolations, as
// "directive blocked-uri".
var recordViolations = chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
	_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.effectiveDirective + ' ' + e.blockedURI));`,
	})
	return err
})

// TestDocsBrowser reads the API reference at /docs of a real webhookd in
// chromium: it renders every tag and operation with their examples, the
// menu and deep links work, search finds an operation, and the page's CSP
// refuses nothing it needs, so it shows as it should with nothing loaded
// from anywhere else.
func TestDocsBrowser(t *testing.T) {
	t.Parallel()
	ctx := testbrowser.New(t)
	srv := testserver.Start(t, func(c *server.Config) {
		c.DBMaxConns = 4
		c.MaxWorkers = 2
	})

	var (
		mu       sync.Mutex
		messages []chromedp.ConsoleMessage
	)
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			messages = append(messages, m)
			mu.Unlock()
		}
	}()

	eval := func(t *testing.T, expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		require.NoError(t, err, expr)
		return s
	}
	poll := func(t *testing.T, expr string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second)))
		require.NoError(t, err, "waiting for %s", expr)
	}
	// text is the page's visible text, as one line.
	text := func(t *testing.T) string {
		t.Helper()
		return strings.Join(strings.Fields(eval(t, `document.body.innerText`)), " ")
	}

	require.NoError(t, chromedp.Do(ctx, recordViolations))
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(srv.BaseURL+"/docs"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, int(resp.Status))
	require.Contains(t, resp.Headers["Content-Security-Policy"], "frame-ancestors 'none'")

	// Hydrated, the menu opens a tag on its operations.
	poll(t, `document.querySelectorAll('[data-component-name="Menu/MenuItem"]').length >= 8`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-component-name="Menu/MenuItem"] a[href="/webhooks"]`))))
	poll(t, `location.hash === '#/webhooks'`)
	poll(t, `document.body.innerText.includes('Rotate a webhook\'s secret with overlap')`)

	// A deep link opens its operation: its request body, a curl command,
	// its answers and the example of the first.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.BaseURL+"/docs#/webhooks/createwebhook")))
	poll(t, `document.body.innerText.includes('"secret": "whsec_')`)
	for _, want := range []string{"Body application/json", "curl -sS -X POST", "201 400 401 403 408 409 413 415 422 429 500 503"} {
		require.Contains(t, text(t), want)
	}
	shot(t, ctx, "docs-create-webhook")

	// Every operation has its section, with its summary, its curl
	// example and its answers.
	raw, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Summary     string   `json:"summary"`
			Tags        []string `json:"tags"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			section := fmt.Sprintf("/%s/%s", op.Tags[0], strings.ToLower(op.OperationID))
			eval(t, fmt.Sprintf(`location.hash = %q; ''`, "#"+section))
			// One look at the section for all of it: the page renders
			// sections as they scroll into view, so a second look may
			// find it re-rendering (empty).
			wants, err := json.Marshal([]string{op.Summary, strings.ToUpper(method) + " " + path, "Response", "curl -sS"})
			require.NoError(t, err)
			sectionText := fmt.Sprintf(`(document.querySelector('[data-section-id=%q]')?.innerText ?? '').split(/\s+/).join(' ')`, section)
			_, err = chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`%s.every(w => %s.includes(w))`, wants, sectionText), chromedp.WithPollingTimeout(15*time.Second)))
			if err != nil {
				require.Failf(t, "an operation's section is incomplete", "%s %s: %v; it shows: %s", method, path, err, eval(t, sectionText))
			}
			n++
		}
	}
	require.Equal(t, len(admin.RoutesForTest()), n)

	// Search runs without eval (see below). Typed again if no result came:
	// on a loaded machine the keys can come before the search listens
	// (CI's failure on 0322709: nothing found in 15 s).
	input := chromedp.CSS(`input[placeholder^="Search"]`)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`[data-testid="search-trigger"]`)),
		chromedp.WaitVisible(input),
	))
	const found = `document.body.innerText.includes('/v1/keys/{id}/rotate') && document.body.innerText.includes('Rotate an API key')`
	for try := 1; ; try++ {
		require.NoError(t, chromedp.Do(ctx, chromedp.Clear(input), chromedp.SendKeys(input, "rotate")))
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](found, chromedp.WithPollingTimeout(15*time.Second)))
		if err == nil {
			break
		}
		if try == 3 {
			require.Failf(t, "search found nothing", "typed %q three times: %v; the page shows: %s",
				eval(t, `document.querySelector('input[placeholder^="Search"]')?.value ?? '(no input)'`), err, text(t))
		}
	}
	shot(t, ctx, "docs-search")

	mu.Lock()
	defer mu.Unlock()
	for _, m := range messages {
		require.False(t, m.Type == chromedp.ConsoleError || m.IsException(), "console: %s", m)
	}
	// The only refusal is FlexSearch's probe for eval (Redoc's search
	// asks for it to run in a worker, and runs in the page when refused).
	var violations []string
	for _, v := range strings.Split(eval(t, `window.__cspViolations.join('\n')`), "\n") {
		if v != "" && v != "script-src eval" {
			violations = append(violations, v)
		}
	}
	require.Empty(t, violations)
}

// shot writes a PNG of the page to WEBHOOKD_SCREENSHOTS/name.png when that
// is set.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("WEBHOOKD_SCREENSHOTS")
	if dir == "" {
		return
	}
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644))
}
