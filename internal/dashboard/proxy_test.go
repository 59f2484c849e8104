package dashboard_test

import (
	"html"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testserver"
)

// signInOverProxy signs in to the dashboard at base with the bootstrap key
// as a browser behind a TLS-terminating proxy would: the proxy's headers
// on every request, cookies carried by hand (Go's cookie jar keeps Secure
// cookies off plain http). It returns the sign-in page's cookie and, when
// the sign-in succeeded (303), the session cookie, with the sign-in's
// status.
func signInOverProxy(t *testing.T, base, origin string, header ...string) (signInCookie, session *http.Cookie, status int) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(req *http.Request) (*http.Response, string) {
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}
	cookie := func(resp *http.Response, name string) *http.Cookie {
		for _, c := range resp.Cookies() {
			if c.Name == name {
				return c
			}
		}
		return nil
	}

	req, err := http.NewRequest(http.MethodGet, base+"/dashboard/signin", nil)
	require.NoError(t, err)
	resp, body := do(req)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	signInCookie = cookie(resp, "webhookd_signin")
	require.NotNil(t, signInCookie)
	m := csrfRe.FindStringSubmatch(body)
	require.NotNil(t, m)

	form := url.Values{"csrf": {html.UnescapeString(m[1])}, "key": {testserver.AdminKey}}
	req, err = http.NewRequest(http.MethodPost, base+"/dashboard/signin", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	req.AddCookie(&http.Cookie{Name: signInCookie.Name, Value: signInCookie.Value})
	resp, _ = do(req)
	return signInCookie, cookie(resp, "webhookd_session"), resp.StatusCode
}

// Behind a TLS-terminating proxy: with WEBHOOKD_PUBLIC_URL https the
// cookies are Secure and the public origin may sign in; with
// WEBHOOKD_TRUSTED_PROXIES they are Secure when the trusted proxy says
// https, and not otherwise.
func TestDashboardBehindProxy(t *testing.T) {
	t.Parallel()
	small := func(c *server.Config) { c.DBMaxConns, c.MaxWorkers = 6, 4 }

	t.Run("PublicURL", func(t *testing.T) {
		t.Parallel()
		srv := testserver.Start(t, func(c *server.Config) { small(c); c.PublicURL = "https://webhooks.example.com" })
		signIn, session, status := signInOverProxy(t, srv.BaseURL, "https://webhooks.example.com")
		require.Equal(t, http.StatusSeeOther, status)
		require.True(t, signIn.Secure, "the sign-in cookie must be Secure")
		require.NotNil(t, session)
		require.True(t, session.Secure, "the session cookie must be Secure")
		require.True(t, session.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, session.SameSite)

		// Its own Host stays same-origin; another origin does not.
		_, _, status = signInOverProxy(t, srv.BaseURL, srv.BaseURL)
		require.Equal(t, http.StatusSeeOther, status)
		_, session, status = signInOverProxy(t, srv.BaseURL, "https://evil.example")
		require.Equal(t, http.StatusForbidden, status)
		require.Nil(t, session)
		_, _, status = signInOverProxy(t, srv.BaseURL, "http://webhooks.example.com")
		require.Equal(t, http.StatusForbidden, status, "the public URL is https: an http origin is another origin")
	})

	t.Run("TrustedProxy", func(t *testing.T) {
		t.Parallel()
		srv := testserver.Start(t, func(c *server.Config) {
			small(c)
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		})
		signIn, session, status := signInOverProxy(t, srv.BaseURL, srv.BaseURL, "X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.7")
		require.Equal(t, http.StatusSeeOther, status)
		require.True(t, signIn.Secure)
		require.True(t, session.Secure)

		signIn, session, status = signInOverProxy(t, srv.BaseURL, srv.BaseURL, "X-Forwarded-Proto", "http")
		require.Equal(t, http.StatusSeeOther, status)
		require.False(t, signIn.Secure)
		require.False(t, session.Secure)
	})

	t.Run("UntrustedProxy", func(t *testing.T) {
		t.Parallel()
		srv := testserver.Start(t, func(c *server.Config) {
			small(c)
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		})
		signIn, session, status := signInOverProxy(t, srv.BaseURL, srv.BaseURL, "X-Forwarded-Proto", "https")
		require.Equal(t, http.StatusSeeOther, status)
		require.False(t, signIn.Secure, "X-Forwarded-Proto from a peer that is not a trusted proxy is not believed")
		require.False(t, session.Secure)
	})
}
