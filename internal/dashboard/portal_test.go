package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/dashboard"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testserver"
)

// movedClock is a server clock that can be moved forward.
type movedClock struct{ offset atomic.Int64 }

func (c *movedClock) Now() time.Time            { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *movedClock) Move(d time.Duration)      { c.offset.Add(int64(d)) }
func (c *movedClock) config(cfg *server.Config) { cfg.Now = c.Now }

// startPortal is start with modify applied to the config last.
func startPortal(t *testing.T, modify func(*server.Config)) *testBundle {
	t.Helper()
	srv := testserver.Start(t, func(c *server.Config) {
		c.RetryScale = 0.0001
		c.DBMaxConns = 6
		c.MaxWorkers = 5
		if modify != nil {
			modify(c)
		}
	})
	return &testBundle{srv: srv, base: srv.BaseURL, pool: srv.Pool(), http: &http.Client{Timeout: 10 * time.Second}}
}

type portalLink struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	AccountID string    `json:"account_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// mintPortalLink mints a link for accountID with the admin key.
func (b *testBundle) mintPortalLink(t testing.TB, accountID string) *portalLink {
	t.Helper()
	var link portalLink
	b.api(t, http.MethodPost, "/v1/portal-links", "", `{"account_id":"`+accountID+`"}`, http.StatusCreated, &link)
	return &link
}

// path is the link's path, for a browser on b.base.
func (l *portalLink) path(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(l.URL)
	require.NoError(t, err)
	return u.Path
}

// cookie is the Set-Cookie of name in p, or nil.
func (p *page) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// A portal link, opened, signs the browser in for its account (the same
// session and cookie as a key sign-in) and moves on to the Webhooks page;
// the use is recorded. Used again, expired, revoked or garbage, it shows
// the sign-in page with the reason, and sets no session.
func TestPortalLinkSignIn(t *testing.T) {
	t.Parallel()
	clock := &movedClock{}
	b := startPortal(t, clock.config)
	ctx := context.Background()

	link := b.mintPortalLink(t, "acct_portal")
	br := b.browser(t)
	// Neither a HEAD request nor a prefetch uses the link.
	head, err := http.NewRequest(http.MethodHead, b.base+link.path(t), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, br.do(t, head).status)
	prefetch, err := http.NewRequest(http.MethodGet, b.base+link.path(t), nil)
	require.NoError(t, err)
	prefetch.Header.Set("Sec-Purpose", "prefetch;prerender")
	p := br.do(t, prefetch)
	require.Equal(t, http.StatusServiceUnavailable, p.status)
	require.Nil(t, p.cookie("webhookd_session"))
	req, err := http.NewRequest(http.MethodGet, b.base+link.path(t), nil)
	require.NoError(t, err)
	req.Header.Set("User-Agent", "portal-test/1.0")
	p = br.do(t, req)
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, `<meta http-equiv="refresh" content="0;url=/dashboard/settings/personal/api">`)
	c := p.cookie("webhookd_session")
	require.NotNil(t, c, "no session cookie")
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.False(t, c.Secure, "plain http without a public URL")
	require.Equal(t, "/dashboard", c.Path)
	require.Equal(t, "no-store", p.header.Get("Cache-Control"))
	require.Contains(t, p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'")

	p = br.get(t, "/dashboard/settings/personal/api")
	require.Equal(t, http.StatusOK, p.status)
	require.Contains(t, text(p.body), "Account acct_portal · portal link")

	var usedAt *time.Time
	var usedFrom, userAgent, sessionAccount string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT used_at, used_from, used_user_agent FROM portal_links WHERE id = $1`, link.ID).Scan(&usedAt, &usedFrom, &userAgent))
	require.NotNil(t, usedAt)
	require.Equal(t, "127.0.0.1", usedFrom)
	require.Equal(t, "portal-test/1.0", userAgent)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT l.account_id FROM dashboard_sessions s JOIN portal_links l ON l.id = s.portal_link_id`).Scan(&sessionAccount))
	require.Equal(t, "acct_portal", sessionAccount)

	// The session acts as the account: a form needs the CSRF token and the
	// same origin, and creates the webhook for acct_portal.
	p = br.get(t, "/dashboard/settings/personal/api/new")
	require.Equal(t, http.StatusOK, p.status)
	p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"url": {"https://example.com/portal"}})
	require.Equal(t, http.StatusForbidden, p.status, "no CSRF token")
	p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {br.csrf(t)}, "url": {"https://example.com/portal"}}, "Origin", "http://127.0.0.3:1")
	require.Equal(t, http.StatusForbidden, p.status, "another origin")
	p = br.post(t, "/dashboard/settings/personal/api/new", url.Values{"csrf": {br.csrf(t)}, "url": {"https://example.com/portal"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	var list struct{ Data []webhook }
	b.api(t, http.MethodGet, "/v1/webhooks?account_id=acct_portal", "", "", http.StatusOK, &list)
	require.Len(t, list.Data, 1)

	refused := func(t *testing.T, path, want string) {
		t.Helper()
		fresh := b.browser(t)
		p := fresh.get(t, path)
		require.Equal(t, http.StatusUnauthorized, p.status)
		require.Contains(t, text(p.body), want)
		require.Nil(t, p.cookie("webhookd_session"), "a refused link set a session")
		require.NotNil(t, p.cookie("webhookd_signin"), "the sign-in form works")
	}
	t.Run("UsedAgain", func(t *testing.T) {
		refused(t, link.path(t), "This sign-in link was already used")
	})
	t.Run("Garbage", func(t *testing.T) {
		refused(t, "/dashboard/portal/nonsense", "This sign-in link is not valid")
		refused(t, "/dashboard/portal/whpl_"+strings.Repeat("A", 43), "This sign-in link is not valid")
	})
	t.Run("Expired", func(t *testing.T) {
		expiring := b.mintPortalLink(t, "acct_portal")
		clock.Move(dashboardPortalTTL + time.Second)
		refused(t, expiring.path(t), "This sign-in link has expired")
	})
	t.Run("RevokedEndsSession", func(t *testing.T) {
		unused := b.mintPortalLink(t, "acct_portal")
		var out struct {
			RevokedLinks  int `json:"revoked_links"`
			EndedSessions int `json:"ended_sessions"`
		}
		b.api(t, http.MethodDelete, "/v1/portal-links?account_id=acct_portal", "", "", http.StatusOK, &out)
		require.Equal(t, 1, out.EndedSessions)
		require.GreaterOrEqual(t, out.RevokedLinks, 2)
		p := br.get(t, "/dashboard/settings/personal/api")
		require.Equal(t, http.StatusSeeOther, p.status)
		require.True(t, strings.HasPrefix(p.location, "/dashboard/signin?ended=1&next="), p.location)
		refused(t, unused.path(t), "This sign-in link was revoked")

		// A link minted afterwards works.
		fresh := b.browser(t)
		require.Equal(t, http.StatusOK, fresh.get(t, b.mintPortalLink(t, "acct_portal").path(t)).status)
		require.Equal(t, http.StatusOK, fresh.get(t, "/dashboard/settings/personal/api").status)
	})
}

// dashboardPortalTTL is the default link lifetime the tests move past.
const dashboardPortalTTL = 10 * time.Minute

// A portal session is one account's: another account's webhook is 404,
// the admin pages are 403.
func TestPortalSessionIsTheAccounts(t *testing.T) {
	t.Parallel()
	b := startPortal(t, nil)
	other := b.createWebhook(t, "acct_other", "https://example.com/other")
	br := b.browser(t)
	require.Equal(t, http.StatusOK, br.get(t, b.mintPortalLink(t, "acct_mine").path(t)).status)
	require.Equal(t, http.StatusNotFound, br.get(t, "/dashboard/webhooks/"+other.ID).status)
	require.Equal(t, http.StatusForbidden, br.get(t, "/dashboard/settings/keys").status)
	require.Equal(t, http.StatusForbidden, br.get(t, "/dashboard/dead").status)
}

// Framing: refused by default; with WEBHOOKD_PORTAL_FRAME_ANCESTORS (and
// an https public URL) the CSP's frame-ancestors names those origins, no
// X-Frame-Options is sent, and the cookies are SameSite=None; Secure;
// Partitioned. Everything else in the CSP stays as strict.
func TestPortalFrameHeaders(t *testing.T) {
	t.Parallel()
	strictCSP := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

	t.Run("Default", func(t *testing.T) {
		t.Parallel()
		b := startPortal(t, nil)
		p := b.browser(t).get(t, "/dashboard/signin")
		require.Equal(t, strictCSP, p.header.Get("Content-Security-Policy"))
		require.Equal(t, "DENY", p.header.Get("X-Frame-Options"))
		require.Equal(t, http.SameSiteStrictMode, p.cookie("webhookd_signin").SameSite)
	})

	t.Run("Allowed", func(t *testing.T) {
		t.Parallel()
		b := startPortal(t, func(c *server.Config) {
			c.PublicURL = "https://webhooks.example.com"
			c.PortalFrameAncestors = []string{"https://app.example.com", "http://127.0.0.3:8000"}
		})
		br := b.browser(t)
		for _, path := range []string{"/dashboard/signin", "/dashboard/settings/personal/api", "/dashboard/static/dashboard.css"} {
			p := br.get(t, path)
			require.Equal(t, strings.Replace(strictCSP, "frame-ancestors 'none'", "frame-ancestors https://app.example.com http://127.0.0.3:8000", 1),
				p.header.Get("Content-Security-Policy"), path)
			require.Empty(t, p.header.Get("X-Frame-Options"), path)
			require.Equal(t, "nosniff", p.header.Get("X-Content-Type-Options"), path)
		}
		signin := br.get(t, "/dashboard/signin").cookie("webhookd_signin")
		require.Equal(t, http.SameSiteNoneMode, signin.SameSite)
		require.True(t, signin.Secure)
		require.True(t, signin.HttpOnly)

		// The link's cookie, over the public URL's https.
		link := b.mintPortalLink(t, "acct_framed")
		require.True(t, strings.HasPrefix(link.URL, "https://webhooks.example.com/dashboard/portal/whpl_"), link.URL)
		p := br.get(t, link.path(t))
		require.Equal(t, http.StatusOK, p.status)
		raw := p.header.Values("Set-Cookie")
		require.Len(t, raw, 1)
		require.Contains(t, raw[0], "webhookd_session=")
		for _, attr := range []string{"HttpOnly", "Secure", "SameSite=None", "Partitioned", "Path=/dashboard"} {
			require.Contains(t, raw[0], attr)
		}

		// River UI and the API reference stay unframeable.
		resp, err := b.http.Get(b.base + "/docs")
		require.NoError(t, err)
		resp.Body.Close()
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	})
}

func TestParseFrameAncestors(t *testing.T) {
	t.Parallel()
	got, err := dashboard.ParseFrameAncestors(" https://App.Example.com, https://admin.example.com:8443/\thttp://localhost:3000 http://127.0.0.3:9000 http://[::1]:80 ")
	require.NoError(t, err)
	require.Equal(t, []string{"https://app.example.com", "https://admin.example.com:8443", "http://localhost:3000", "http://127.0.0.3:9000", "http://[::1]:80"}, got)
	got, err = dashboard.ParseFrameAncestors("")
	require.NoError(t, err)
	require.Empty(t, got)

	for _, tt := range []struct{ raw, why string }{
		{"app.example.com", "the scheme must be https"},
		{"ftp://app.example.com", "the scheme must be https"},
		{"http://app.example.com", "http only for localhost and loopback addresses"},
		{"https://*.example.com", "wildcards are not allowed"},
		{"https://app.example.com/embed", "no path, query or fragment"},
		{"https://app.example.com?x=1", "no path, query or fragment"},
		{"https://user@app.example.com", "user name or password"},
		{"https://", "it has no host"},
		{"'self'", "the scheme must be https"},
		{"https://app.example.com:99999", "the port is not a port number"},
	} {
		_, err := dashboard.ParseFrameAncestors("https://ok.example.com," + tt.raw)
		require.ErrorContains(t, err, tt.why, tt.raw)
		require.ErrorContains(t, err, "is not an origin such as https://app.example.com", tt.raw)
	}
}
