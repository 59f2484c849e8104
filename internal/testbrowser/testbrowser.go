// Package testbrowser starts a headless Chromium for browser tests.
package testbrowser

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds Debian's chromium (or WEBHOOKD_CHROMIUM). Missing, it fails the
// test in CI (CI=true) and skips it elsewhere, saying how to install it.
func Path(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("WEBHOOKD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			return p
		}
	}
	const how = "install it with `apt-get install -y chromium` (or run .ci/install-chromium.sh), or set WEBHOOKD_CHROMIUM to a Chromium binary"
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium is missing at /usr/bin/chromium and the browser test must run in CI: %s", how)
	}
	t.Skipf("chromium not found at /usr/bin/chromium; %s", how)
	return ""
}

// New starts a headless chromium with an empty profile and a 1280×900
// window, and returns the context of its first tab (for chromedp.Run); it
// is closed at cleanup, and its actions time out after four minutes:
// TestDocsBrowser, ~15 s alone, ran out of two minutes once with the
// 2-core machine loaded by three packages' tests run twice each under
// -race.
func New(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}
