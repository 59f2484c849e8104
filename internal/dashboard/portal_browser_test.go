package dashboard_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/security"
	cdptarget "github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testbrowser"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

// product is a product's site on its own loopback origin: its backend
// sends a signed-in user to a fresh portal link, as docs/producers.md
// shows; page serves its HTML.
type product struct {
	origin string
	mu     sync.Mutex
	links  []string
}

// startProduct serves the product on ln: GET /settings/webhooks is the
// documented handler (a fresh link for account, then a redirect), GET /
// is page's HTML.
func startProduct(t *testing.T, ln net.Listener, webhookd *client.Client, account string, pageHTML func(p *product) string) *product {
	t.Helper()
	p := &product{origin: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /settings/webhooks", func(w http.ResponseWriter, r *http.Request) {
		link, err := webhookd.CreatePortalLink(r.Context(), &client.CreatePortalLinkParams{AccountID: account})
		if err != nil {
			http.Error(w, "webhooks are not available right now", http.StatusBadGateway)
			return
		}
		p.mu.Lock()
		p.links = append(p.links, link.URL)
		p.mu.Unlock()
		http.Redirect(w, r, link.URL, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, pageHTML(p))
	})
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: mux}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *product) lastLink(t *testing.T) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NotEmpty(t, p.links, "the product minted no link")
	return p.links[len(p.links)-1]
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestBrowserPortalLink: a user signed in to the product (another site)
// clicks Webhooks; the product's backend mints a link and redirects to it;
// Chromium lands on the account's Webhooks page signed in (the
// SameSite=Strict session cookie is sent although the navigation started
// on another site) and creates a webhook there. Then the same link again is
// refused, another account's webhook is 404, an expired link is refused
// (the server's clock moved), and revoking the account's links ends the
// session on its next request.
func TestBrowserPortalLink(t *testing.T) {
	t.Parallel()
	ctx := testbrowser.New(t)
	clock := &movedClock{}
	b := startPortal(t, clock.config)
	const account = "acct_portal_browser"

	webhookd, err := client.New(b.base, testserver.AdminKey, nil)
	require.NoError(t, err)
	shop := startProduct(t, listen(t, "127.0.0.3:0"), webhookd, account, func(*product) string {
		return `<!doctype html><title>Product</title><a id="webhooks" href="/settings/webhooks">Webhooks</a>`
	})

	do := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	// poll waits until expr is true, across navigations (which end the
	// page's execution context mid-evaluation).
	poll := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			var err error
			if testwait.Until(20*time.Second, func() bool {
				var ok bool
				ok, err = chromedp.Evaluate[bool](expr)(ctx, tg)
				return err == nil && ok
			}) {
				return nil
			}
			return fmt.Errorf("%s still not true after 20s (last error: %w)", expr, err)
		})
	}
	textOf := func(t *testing.T, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}
	location := func(t *testing.T) string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		return u
	}
	// open navigates to u and returns the document's status.
	open := func(t *testing.T, u string) int {
		t.Helper()
		resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(u))
		require.NoError(t, err, u)
		return int(resp.Status)
	}

	// From the product's page to the account's Webhooks page, signed in.
	do(t,
		chromedp.Navigate(shop.origin+"/"),
		chromedp.WaitVisible(chromedp.CSS("#webhooks")),
		chromedp.Click(chromedp.CSS("#webhooks")),
		poll(`location.pathname === "/dashboard/settings/personal/api" && document.readyState === "complete" && !!document.getElementById("webhooks-h")`),
	)
	require.Equal(t, b.base+"/dashboard/settings/personal/api", location(t))
	require.Equal(t, "Account "+account+" · portal link", textOf(t, ".who-label"))
	link := shop.lastLink(t)
	require.True(t, strings.HasPrefix(link, b.base+"/dashboard/portal/whpl_"), link)

	// Create a webhook there, as the seed says.
	hookURL := "https://example.com/portal/" + account
	do(t,
		chromedp.Click(chromedp.CSS(`a.button.primary[href^="/dashboard/settings/personal/api/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#url")),
		chromedp.SendKeys(chromedp.CSS("#url"), hookURL),
		chromedp.Click(chromedp.CSS(`form button.primary[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.success")),
	)
	require.Equal(t, "We successfully created your webhook.", textOf(t, ".alert.success"))
	require.Equal(t, hookURL, textOf(t, "table.webhooks td.url .wrap"))
	var list struct{ Data []webhook }
	b.api(t, http.MethodGet, "/v1/webhooks?account_id="+account, "", "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	require.Equal(t, hookURL, list.Data[0].URL)

	// The same link again: the sign-in page says why; the session that
	// was open stays as it was.
	require.Equal(t, http.StatusUnauthorized, open(t, link))
	require.Contains(t, textOf(t, ".alert.error"), "This sign-in link was already used")
	do(t, chromedp.WaitVisible(chromedp.CSS("#key")))
	require.Equal(t, http.StatusOK, open(t, b.base+"/dashboard/settings/personal/api"))

	// Another account's webhook does not exist for this session.
	other := b.createWebhook(t, "acct_portal_other", "https://example.com/other")
	require.Equal(t, http.StatusNotFound, open(t, b.base+"/dashboard/webhooks/"+other.ID))
	require.Equal(t, http.StatusOK, open(t, b.base+"/dashboard/webhooks/"+list.Data[0].ID))

	// An expired link: minted now, opened once the server's clock has
	// moved past its ten minutes.
	expiring := b.mintPortalLink(t, account)
	clock.Move(dashboardPortalTTL + time.Second)
	require.Equal(t, http.StatusUnauthorized, open(t, expiring.URL))
	require.Contains(t, textOf(t, ".alert.error"), "This sign-in link has expired")

	// Revoking the account's links ends the session on its next request.
	b.api(t, http.MethodDelete, "/v1/portal-links?account_id="+account, "", "", http.StatusOK, nil)
	require.Equal(t, http.StatusOK, open(t, b.base+"/dashboard/settings/personal/api"))
	require.True(t, strings.HasPrefix(location(t), b.base+"/dashboard/signin?ended=1"), location(t))
	require.Contains(t, textOf(t, ".alert.success"), "Your session has ended")
	require.Zero(t, b.count(t, `SELECT count(*) FROM dashboard_sessions WHERE portal_link_id IS NOT NULL`))
}

// framePage is a product page that shows the dashboard in a frame: its
// src a fresh portal link.
const framePage = `<!doctype html><title>Product settings</title>
<h1>Webhooks</h1>
<iframe id="portal" title="Webhooks" src="%s" width="1100" height="700"></iframe>`

// TestBrowserPortalFrame: with WEBHOOKD_PORTAL_FRAME_ANCESTORS naming the
// product's origin, the product's page frames a portal link and the frame
// shows the account's Webhooks page signed in (its SameSite=None; Secure;
// Partitioned session cookie sent inside the frame); a page on another
// origin framing a link gets nothing (Chromium refuses the frame).
// webhookd is reached over https, as the setting requires, through a TLS
// front with a self-signed certificate that the browser is told to accept.
func TestBrowserPortalFrame(t *testing.T) {
	t.Parallel()
	ctx := testbrowser.New(t)
	const account = "acct_portal_frame"

	front := listen(t, "127.0.0.1:0")
	allowedLn, otherLn := listen(t, "127.0.0.3:0"), listen(t, "127.0.0.4:0")
	publicURL := "https://" + front.Addr().String()
	allowed := "http://" + allowedLn.Addr().String()
	b := startPortal(t, func(c *server.Config) {
		c.PublicURL = publicURL
		c.PortalFrameAncestors = []string{allowed}
	})

	// The TLS front: a reverse proxy to webhookd's plain listener.
	target, err := url.Parse(b.base)
	require.NoError(t, err)
	tlsFront := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	tlsFront.Listener.Close()
	tlsFront.Listener = front
	// Chromium drops a connection or two before it accepts the certificate.
	tlsFront.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsFront.StartTLS()
	t.Cleanup(tlsFront.Close)

	webhookd, err := client.New(b.base, testserver.AdminKey, nil)
	require.NoError(t, err)
	framing := func(p *product) string {
		link, err := webhookd.CreatePortalLink(context.Background(), &client.CreatePortalLinkParams{AccountID: account})
		if err != nil {
			return "no link: " + html.EscapeString(err.Error())
		}
		p.mu.Lock()
		p.links = append(p.links, link.URL)
		p.mu.Unlock()
		return fmt.Sprintf(framePage, html.EscapeString(link.URL))
	}
	shop := startProduct(t, allowedLn, webhookd, account, framing)
	elsewhere := startProduct(t, otherLn, webhookd, account, framing)

	// For the whole browser: the frame is a process (and a DevTools
	// target) of its own.
	require.NoError(t, chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := cdp.Call(ctx, chromedp.FromContext(ctx).Browser, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true})
		return err
	})))
	// frames are the browser's iframe targets (a cross-site frame runs in
	// a process of its own) and its page's child frames.
	frames := func(t *testing.T) ([]*cdptarget.Info, []*cdp.Frame) {
		t.Helper()
		targets, err := chromedp.Run(ctx, func(ctx context.Context, _ *chromedp.Target) (cdptarget.GetTargetsResult, error) {
			return cdp.Call(ctx, chromedp.FromContext(ctx).Browser, cdptarget.GetTargets, cdptarget.GetTargetsParams{})
		})
		require.NoError(t, err)
		var iframes []*cdptarget.Info
		for _, ti := range targets.TargetInfos {
			if ti.Type == "iframe" {
				iframes = append(iframes, ti)
			}
		}
		tree, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (cdppage.GetFrameTreeResult, error) {
			return cdp.Call(ctx, tg, cdppage.GetFrameTree, cdp.Empty{})
		})
		require.NoError(t, err)
		var children []*cdp.Frame
		for _, c := range tree.FrameTree.ChildFrames {
			children = append(children, c.Frame)
		}
		return iframes, children
	}
	waitFor := func(t *testing.T, what string, ok func() bool) {
		t.Helper()
		require.True(t, testwait.Until(20*time.Second, ok), "%s: not after 20s", what)
	}

	// The allowed origin: the frame follows the link to the Webhooks page,
	// signed in (without the session cookie in the frame it would be at
	// the sign-in page), and works: a webhook is created in it.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(shop.origin+"/"), chromedp.WaitVisible(chromedp.CSS("#portal"))))
	var framed *cdptarget.Info
	waitFor(t, "the frame shows the Webhooks page", func() bool {
		iframes, _ := frames(t)
		for _, ti := range iframes {
			if ti.URL == publicURL+"/dashboard/settings/personal/api" {
				framed = ti
			}
		}
		return framed != nil
	})
	frameCtx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(framed.TargetID))
	defer cancel()
	who, err := chromedp.Run(frameCtx, chromedp.TextContent(chromedp.CSS(".who-label")))
	require.NoError(t, err)
	require.Equal(t, "Account "+account+" · portal link", strings.TrimSpace(who))
	hookURL := "https://example.com/framed/" + account
	require.NoError(t, chromedp.Do(frameCtx,
		chromedp.Click(chromedp.CSS(`a.button.primary[href^="/dashboard/settings/personal/api/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#url")),
		chromedp.SendKeys(chromedp.CSS("#url"), hookURL),
		chromedp.Click(chromedp.CSS(`form button.primary[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".alert.success")),
	))
	var list struct{ Data []webhook }
	b.api(t, http.MethodGet, "/v1/webhooks?account_id="+account, "", "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)
	require.Equal(t, hookURL, list.Data[0].URL)
	// The product page can't reach into the frame (another origin).
	blocked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("portal").contentDocument === null`))
	require.NoError(t, err)
	require.True(t, blocked)

	// Another origin: Chromium refuses to show the frame (frame-ancestors)
	// and commits its error page in it instead: the frame never gets past
	// the link to a dashboard page.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(elsewhere.origin+"/"), chromedp.WaitVisible(chromedp.CSS("#portal"))))
	var refused *cdptarget.Info
	waitFor(t, "the other origin's frame", func() bool {
		iframes, _ := frames(t)
		for _, ti := range iframes {
			if ti.ParentFrameID == "" || ti.TargetID == framed.TargetID {
				continue
			}
			refused = ti
		}
		return refused != nil
	})
	refusedCtx, cancelRefused := chromedp.NewContext(ctx, chromedp.WithTargetID(refused.TargetID))
	defer cancelRefused()
	var href string
	waitFor(t, "the refused frame's document", func() bool {
		href, err = chromedp.Run(refusedCtx, chromedp.Evaluate[string](`location.href`))
		return err == nil && href != "about:blank"
	})
	require.True(t, strings.HasPrefix(href, "chrome-error:"), "the frame shows %s", href)
	require.True(t, strings.HasPrefix(refused.URL, publicURL+"/dashboard/portal/"), refused.URL)
	// The frame committed Chromium's error page instead of the link's
	// answer, so the bounce page's refresh never ran: no frame is at a
	// dashboard page, now or later.
	iframes, _ := frames(t)
	for _, ti := range iframes {
		require.NotEqual(t, publicURL+"/dashboard/settings/personal/api", ti.URL, "a dashboard page is framed by %s", elsewhere.origin)
	}
	elsewhere.mu.Lock()
	require.Len(t, elsewhere.links, 1, "the other origin's page minted its link")
	elsewhere.mu.Unlock()
}
