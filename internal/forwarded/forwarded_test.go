package forwarded

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustTrust(t *testing.T, publicURL, proxies string) *Trust {
	t.Helper()
	u, err := ParsePublicURL(publicURL)
	require.NoError(t, err)
	p, err := ParseProxies(proxies)
	require.NoError(t, err)
	return &Trust{PublicURL: u, Proxies: p}
}

func TestParsePublicURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "https://webhooks.example.com", "http://10.0.0.5:8080", "https://webhooks.example.com/"} {
		_, err := ParsePublicURL(raw)
		require.NoError(t, err, raw)
	}
	for raw, want := range map[string]string{
		"webhooks.example.com":             "not an absolute http or https URL",
		"/dashboard":                       "not an absolute http or https URL",
		"ftp://webhooks.example.com":       "not an absolute http or https URL",
		"https://":                         "has no host",
		"https://u:p@webhooks.example.com": "user name or password",
		"https://webhooks.example.com/?a":  "query or fragment",
		"https://webhooks.example.com/#a":  "query or fragment",
		"https://[::1":                     "not a URL",
	} {
		_, err := ParsePublicURL(raw)
		require.ErrorContains(t, err, want, raw)
	}
}

func TestParseProxies(t *testing.T) {
	t.Parallel()
	got, err := ParseProxies(" 10.0.0.0/8, 192.168.1.7 ,::1, 172.16.5.3/12")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("172.16.0.0/12"),
	}, got)
	got, err = ParseProxies("")
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = ParseProxies("10.0.0.0/8,10.0.0.0/33")
	require.ErrorContains(t, err, `"10.0.0.0/33" is not a CIDR`)
	_, err = ParseProxies("proxy.internal")
	require.ErrorContains(t, err, `"proxy.internal" is not a CIDR`)
}

func TestSecure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		publicURL, trust string
		remote, proto    string
		tls, wantSecure  bool
	}{
		{name: "NothingSet", remote: "10.0.0.1:1234", proto: "https"},
		{name: "TLS", remote: "10.0.0.1:1234", tls: true, wantSecure: true},
		{name: "PublicHTTPS", publicURL: "https://webhooks.example.com", remote: "10.0.0.1:1234", wantSecure: true},
		{name: "PublicHTTP", publicURL: "http://webhooks.example.com", remote: "10.0.0.1:1234", proto: "https"},
		{name: "TrustedProxySaysHTTPS", trust: "10.0.0.0/8", remote: "10.0.0.1:1234", proto: "https", wantSecure: true},
		{name: "TrustedProxySaysHTTPSFirst", trust: "10.0.0.0/8", remote: "10.0.0.1:1234", proto: "HTTPS, http", wantSecure: true},
		{name: "TrustedProxySaysHTTP", trust: "10.0.0.0/8", remote: "10.0.0.1:1234", proto: "http"},
		{name: "UntrustedPeerSaysHTTPS", trust: "10.0.0.0/8", remote: "192.0.2.1:1234", proto: "https"},
		{name: "InProcess", trust: "10.0.0.0/8", remote: "dashboard", proto: "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/dashboard/", nil)
			r.RemoteAddr = tt.remote
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			} else {
				r.TLS = nil
			}
			require.Equal(t, tt.wantSecure, mustTrust(t, tt.publicURL, tt.trust).Secure(r))
		})
	}
	var none *Trust
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.TLS = nil
	require.False(t, none.Secure(r))
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, trust, remote string
		xff                 []string
		want                string
	}{
		{name: "NoProxies", remote: "192.0.2.9:5000", xff: []string{"203.0.113.1"}, want: "192.0.2.9"},
		{name: "UntrustedPeer", trust: "10.0.0.0/8", remote: "192.0.2.9:5000", xff: []string{"203.0.113.1"}, want: "192.0.2.9"},
		{name: "TrustedPeer", trust: "10.0.0.0/8", remote: "10.1.1.1:5000", xff: []string{"203.0.113.1"}, want: "203.0.113.1"},
		{name: "SpoofedLeftMost", trust: "10.0.0.0/8", remote: "10.1.1.1:5000", xff: []string{"1.2.3.4, 203.0.113.1"}, want: "203.0.113.1"},
		{name: "TwoTrustedHops", trust: "10.0.0.0/8", remote: "10.1.1.1:5000", xff: []string{"203.0.113.1, 10.2.2.2"}, want: "203.0.113.1"},
		{name: "SeveralHeaders", trust: "10.0.0.0/8", remote: "10.1.1.1:5000", xff: []string{"203.0.113.1", "10.2.2.2"}, want: "203.0.113.1"},
		{name: "Garbage", trust: "10.0.0.0/8", remote: "10.1.1.1:5000", xff: []string{"nonsense, 10.2.2.2"}, want: "10.2.2.2"},
		{name: "NoHeader", trust: "10.0.0.0/8", remote: "10.1.1.1:5000", want: "10.1.1.1"},
		{name: "IPv6", trust: "::1/128", remote: "[::1]:5000", xff: []string{"2001:db8::7"}, want: "2001:db8::7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			require.Equal(t, tt.want, mustTrust(t, "", tt.trust).ClientIP(r).String())
		})
	}
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.2:8080/dashboard/signin", nil)
	none := mustTrust(t, "", "")
	require.True(t, none.SameOrigin("http://127.0.0.2:8080", r))
	require.False(t, none.SameOrigin("https://webhooks.example.com", r))
	require.False(t, none.SameOrigin("http://evil.example", r))
	require.False(t, none.SameOrigin("null", r))

	public := mustTrust(t, "https://webhooks.example.com", "")
	require.True(t, public.SameOrigin("https://webhooks.example.com", r))
	require.True(t, public.SameOrigin("https://WEBHOOKS.example.com", r))
	require.False(t, public.SameOrigin("http://webhooks.example.com", r), "the scheme is part of the origin")
	require.False(t, public.SameOrigin("https://webhooks.example.com.evil.example", r))
	require.Equal(t, "https://webhooks.example.com", public.Origin())
	require.Empty(t, none.Origin())
}
