// Package forwarded decides what webhookd believes about where a request
// came from when it sits behind a TLS-terminating reverse proxy: whether the
// user's connection was https, the client's address, and which Origin is
// its own. It believes X-Forwarded-Proto and X-Forwarded-For only from
// the proxies it is told to trust (WEBHOOKD_TRUSTED_PROXIES), and knows the
// URL users reach webhookd at (WEBHOOKD_PUBLIC_URL).
//
// The zero Trust (or a nil one) believes no header and knows no public URL:
// a request is https only when it came over TLS, and an Origin is its own
// only when its host is the request's Host.
package forwarded

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Trust is what the operator told webhookd about its front door.
type Trust struct {
	// PublicURL is the URL users reach webhookd at (WEBHOOKD_PUBLIC_URL),
	// such as https://webhooks.example.com; nil when unset. Only its
	// scheme and host are used.
	PublicURL *url.URL
	// Proxies are the addresses whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (WEBHOOKD_TRUSTED_PROXIES).
	Proxies []netip.Prefix
}

// ParsePublicURL parses WEBHOOKD_PUBLIC_URL: an absolute http or https URL
// with a host and no user information, query or fragment. "" is no public
// URL (nil, nil).
func ParsePublicURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q is not an absolute http or https URL such as https://webhooks.example.com", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("%q must not contain a user name or password", raw)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%q must not have a query or fragment", raw)
	}
	return u, nil
}

// ParseProxies parses WEBHOOKD_TRUSTED_PROXIES: comma-separated CIDRs or
// single addresses. "" is none.
func ParseProxies(raw string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(raw, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(part)
		if err != nil {
			addr, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an address such as 10.0.0.7", part)
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		out = append(out, prefix.Masked())
	}
	return out, nil
}

// errNoAddr means a RemoteAddr without an IP address (an in-process
// request, a Unix socket).
var errNoAddr = errors.New("no IP address")

func remoteAddr(r *http.Request) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, errNoAddr
	}
	return addr.Unmap(), nil
}

func (t *Trust) trusted(addr netip.Addr) bool {
	if t == nil || !addr.IsValid() {
		return false
	}
	for _, p := range t.Proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// fromProxy reports whether r's peer is a trusted proxy.
func (t *Trust) fromProxy(r *http.Request) bool {
	addr, err := remoteAddr(r)
	return err == nil && t.trusted(addr)
}

// Secure reports whether the user's connection is https: the request came
// over TLS, the public URL is https, or a trusted proxy says so in
// X-Forwarded-Proto (its first value when several proxies appended).
func (t *Trust) Secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if t == nil {
		return false
	}
	if t.PublicURL != nil && t.PublicURL.Scheme == "https" {
		return true
	}
	if !t.fromProxy(r) {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// ClientIP is the address of the client: the peer, or, when the peer is a
// trusted proxy, the right-most address of X-Forwarded-For that is not a
// trusted proxy (the left-most ones are whatever the client wrote). It is
// invalid when the peer has no IP address.
func (t *Trust) ClientIP(r *http.Request) netip.Addr {
	addr, err := remoteAddr(r)
	if err != nil || !t.trusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a hop we can't read: stop at the last one we believe
		}
		addr = hop.Unmap()
		if !t.trusted(addr) {
			return addr
		}
	}
	return addr
}

// SameOrigin reports whether origin (an Origin header's value) is
// webhookd's own: its host is the request's Host, or it is the public
// URL's origin.
func (t *Trust) SameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Host == r.Host {
		return true
	}
	if t == nil || t.PublicURL == nil {
		return false
	}
	return strings.EqualFold(u.Scheme, t.PublicURL.Scheme) && strings.EqualFold(u.Host, t.PublicURL.Host)
}

// Origin is the public URL's origin (scheme://host), or "" without one.
func (t *Trust) Origin() string {
	if t == nil || t.PublicURL == nil {
		return ""
	}
	return t.PublicURL.Scheme + "://" + t.PublicURL.Host
}
