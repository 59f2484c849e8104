package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// URLLengthMax is the longest URL, in bytes, that ValidateURL accepts, both
// as given and once normalised.
const URLLengthMax = 2048

// The codes of a *URLError. The API returns them as the error code of a 422
// response whose field is "url".
const (
	// URLErrorCodeForbiddenHost means the host is one no policy allows:
	// localhost, *.localhost, 127.0.0.1, 0.0.0.0/8 or :: in any spelling.
	URLErrorCodeForbiddenHost = "forbidden_host"

	// URLErrorCodeInvalidURL means the URL can't be parsed, or its host or
	// port is not valid.
	URLErrorCodeInvalidURL = "invalid_url"

	// URLErrorCodeMissingHost means the URL has no host (http:///path).
	URLErrorCodeMissingHost = "missing_host"

	// URLErrorCodePrivateAddress means the host is a non-public IP address
	// the policy doesn't allow.
	URLErrorCodePrivateAddress = "private_address"

	// URLErrorCodeURLTooLong means the URL is longer than URLLengthMax.
	URLErrorCodeURLTooLong = "url_too_long"

	// URLErrorCodeUnsupportedScheme means the scheme is missing or is not
	// http or https.
	URLErrorCodeUnsupportedScheme = "unsupported_scheme"

	// URLErrorCodeUserinfoNotAllowed means the URL has a user name or
	// password (user:pass@host).
	URLErrorCodeUserinfoNotAllowed = "userinfo_not_allowed"
)

// URLError says why ValidateURL refused a URL. It wraps ErrInvalidURL.
type URLError struct {
	// Code is one of the URLErrorCode constants.
	Code string

	// Message explains the problem to the customer who typed the URL. It
	// may name the host but never contains the userinfo, path or query.
	Message string

	// detail explains the problem without naming any part of the URL, for
	// attempt records and logs.
	detail string
}

// Error implements error. It returns Message.
func (e *URLError) Error() string { return e.Message }

// Unwrap returns ErrInvalidURL.
func (e *URLError) Unwrap() error { return ErrInvalidURL }

// publicInternet ends the message of every refused host.
const publicInternet = "webhooks must be reachable on the public internet"

// idnaProfile maps a host name to ASCII the way a browser's URL parser does
// (UTS #46 non-transitional processing, hyphens and underscores allowed as in
// WHATWG's "domain to ASCII"), and checks the DNS length limits.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.CheckHyphens(false),
	idna.CheckJoiners(true),
	idna.StrictDomainName(false),
	idna.VerifyDNSLength(true),
)

// localhostNames are host names that name the local machine on every system
// webhookd runs on. Any subdomain of "localhost" is refused as well.
var localhostNames = map[string]bool{
	"localhost":             true,
	"localhost.localdomain": true,
	"ip6-localhost":         true,
	"ip6-loopback":          true,
}

// ValidateURL checks a webhook URL and returns it normalised, or a *URLError
// saying why it is refused.
//
// The URL (surrounding white space trimmed) must be valid UTF-8 of at most
// URLLengthMax bytes without spaces or control characters, use http or
// https, have a host, and have no userinfo. The host is percent-decoded,
// lowercased, mapped to ASCII with IDNA (UTS #46, so full-width and other
// compatibility characters become ASCII), stripped of one trailing dot, and
// if it ends in a number parsed as an IPv4 address in any notation a browser
// or inet_aton accepts (2130706433, 0x7f.1, 0177.0.0.1, 127.1); a host that
// ends in a number but is no valid IPv4 address is refused. An IPv4-mapped
// IPv6 address becomes the IPv4 address; IPv6 zones are refused. localhost, *.localhost and the
// addresses CheckAddr refuses are refused; a host name that is not an IP
// address is accepted, its addresses being checked when they are dialled.
//
// The normalised URL has a lowercase scheme, the normalised host (IPv6 in
// brackets), no default port, the path as given (percent-encoded where
// needed; "/" if empty), the query as given, and no fragment. ValidateURL of
// a normalised URL returns it unchanged.
func (p *Policy) ValidateURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if len(raw) > URLLengthMax {
		return "", tooLongError(len(raw))
	}
	if raw == "" {
		return "", invalidURL("the URL is empty", "the URL is empty")
	}
	if !utf8.ValidString(raw) {
		return "", invalidURL("the URL is not valid UTF-8 text", "the URL is not valid UTF-8 text")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] == 0x7f {
			msg := "the URL must not contain spaces or control characters: percent-encode them (a space is %20)"
			return "", invalidURL(msg, msg)
		}
	}

	raw, urlErr := decodeHostEscapes(raw)
	if urlErr != nil {
		return "", urlErr
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The *url.Error repeats the whole URL: keep only its reason.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return "", invalidURL("the URL is not valid: "+err.Error(), "the URL could not be parsed")
	}

	switch u.Scheme {
	case "http", "https":
	case "":
		msg := "the URL must start with https:// or http://"
		return "", &URLError{Code: URLErrorCodeUnsupportedScheme, Message: msg, detail: msg}
	default:
		return "", &URLError{
			Code:    URLErrorCodeUnsupportedScheme,
			Message: fmt.Sprintf("the URL scheme %q is not supported: use https:// or http://", u.Scheme),
			detail:  "the URL scheme is not supported: only https and http are",
		}
	}
	if u.User != nil {
		msg := "the URL must not contain a user name or password (the user:password@ part): webhooks are authenticated by their Mono-Signature header"
		return "", &URLError{Code: URLErrorCodeUserinfoNotAllowed, Message: msg, detail: "the URL contains a user name or password"}
	}
	if u.Opaque != "" || u.Host == "" {
		return "", missingHostError()
	}

	host, addr, port, urlErr := p.normalizeHost(u)
	if urlErr != nil {
		return "", urlErr
	}

	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != "" {
		b.WriteString(":")
		b.WriteString(port)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		b.WriteString("?")
		b.WriteString(u.RawQuery)
	}
	normalized := b.String()
	if len(normalized) > URLLengthMax {
		return "", tooLongError(len(normalized))
	}

	if addr.IsValid() {
		if urlErr := p.checkHostAddr(u, addr); urlErr != nil {
			return "", urlErr
		}
	}
	return normalized, nil
}

// decodeHostEscapes percent-decodes the host and port of raw, which
// url.Parse refuses to do for ASCII ("ex%41mple.com"), so that every
// spelling of a host is judged by what it decodes to. An IPv6 literal is left
// alone (its zone is escaped as %25). It returns raw unchanged if it has no
// authority or its host has no escapes.
func decodeHostEscapes(raw string) (string, *URLError) {
	sep := strings.Index(raw, "://")
	if sep <= 0 || !validScheme(raw[:sep]) {
		return raw, nil
	}
	start := sep + len("://")
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	authority := raw[start:end]
	hostStart := start + strings.LastIndexByte(authority, '@') + 1
	hostPort := raw[hostStart:end]
	if !strings.Contains(hostPort, "%") || strings.HasPrefix(hostPort, "[") {
		return raw, nil
	}
	decoded, err := url.PathUnescape(hostPort)
	if err != nil || strings.ContainsAny(decoded, "/?#@[]\\%") || strings.ContainsFunc(decoded, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", invalidHostError(hostPort)
	}
	return raw[:hostStart] + decoded + raw[end:], nil
}

// validScheme reports whether s is a URL scheme: a letter followed by
// letters, digits, "+", "-" and ".".
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// normalizeHost returns the normalised host of u as it goes in a URL (IPv6
// in brackets), its address if it is an IP address, and its port if it is
// not the scheme's default. It refuses localhost names.
func (p *Policy) normalizeHost(u *url.URL) (string, netip.Addr, string, *URLError) {
	var hostname, port string
	if strings.HasPrefix(u.Host, "[") {
		end := strings.LastIndexByte(u.Host, ']')
		if end < 0 {
			return "", netip.Addr{}, "", invalidHostError(u.Host)
		}
		hostname = u.Host[1:end]
		if rest := u.Host[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", netip.Addr{}, "", invalidHostError(u.Host)
			}
			port = rest[1:]
		}
	} else {
		hostname = u.Host
		if i := strings.LastIndexByte(hostname, ':'); i >= 0 {
			hostname, port = hostname[:i], hostname[i+1:]
		}
		if strings.Contains(hostname, ":") {
			msg := "the host is not valid: write an IPv6 address in brackets, as in https://[2001:db8::1]/"
			return "", netip.Addr{}, "", invalidURL(msg, "the host is not valid")
		}
	}

	port, urlErr := normalizePort(u.Scheme, port)
	if urlErr != nil {
		return "", netip.Addr{}, "", urlErr
	}

	if strings.HasPrefix(u.Host, "[") {
		addr, err := netip.ParseAddr(hostname)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			msg := fmt.Sprintf("the host [%s] is not a valid IPv6 address (zones are not allowed)", hostname)
			return "", netip.Addr{}, "", invalidURL(msg, "the host is not a valid IPv6 address")
		}
		if addr.Is4In6() {
			addr = addr.Unmap()
			return addr.String(), addr, port, nil
		}
		return "[" + addr.String() + "]", addr, port, nil
	}

	if hostname == "" {
		return "", netip.Addr{}, "", missingHostError()
	}
	host, err := idnaProfile.ToASCII(strings.ToLower(hostname))
	if err != nil {
		return "", netip.Addr{}, "", invalidHostError(hostname)
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return "", netip.Addr{}, "", invalidHostError(hostname)
	}

	if endsInNumber(host) {
		addr, ok := parseIPv4(host)
		if !ok {
			msg := fmt.Sprintf("the host %q looks like an IPv4 address but is not a valid one", hostname)
			return "", netip.Addr{}, "", invalidURL(msg, "the host looks like an IPv4 address but is not a valid one")
		}
		return addr.String(), addr, port, nil
	}

	if !validHostName(host) {
		return "", netip.Addr{}, "", invalidHostError(hostname)
	}
	if localhostNames[host] || strings.HasSuffix(host, ".localhost") {
		return "", netip.Addr{}, "", &URLError{
			Code:    URLErrorCodeForbiddenHost,
			Message: fmt.Sprintf("the host %s is not allowed: %s", host, publicInternet),
			detail:  "the host names the local machine, which is never allowed",
		}
	}
	return host, netip.Addr{}, port, nil
}

// checkHostAddr applies the policy to a host given as an IP address.
func (p *Policy) checkHostAddr(u *url.URL, addr netip.Addr) *URLError {
	var blocked *BlockedAddressError
	if err := p.CheckAddr(addr); !errors.As(err, &blocked) {
		return nil
	}

	shown := addr.String()
	if given := u.Hostname(); !strings.EqualFold(given, shown) {
		shown = fmt.Sprintf("%s (%s)", given, shown)
	}
	if blocked.Always {
		return &URLError{
			Code:    URLErrorCodeForbiddenHost,
			Message: fmt.Sprintf("the host %s is not allowed: %s", shown, publicInternet),
			detail:  `the host is a loopback, unspecified or "this network" address, which is never allowed`,
		}
	}
	return &URLError{
		Code:    URLErrorCodePrivateAddress,
		Message: fmt.Sprintf("the host %s is %s: %s", shown, blocked.Reason, publicInternet),
		detail:  fmt.Sprintf("the host is %s", blocked.Reason),
	}
}

// normalizePort checks a port (digits only, as url.Parse guarantees) and
// returns it in decimal without leading zeros, or "" if it is empty or the
// scheme's default.
func normalizePort(scheme, port string) (string, *URLError) {
	if port == "" {
		return "", nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		msg := fmt.Sprintf("the port %s is not valid: it must be a number from 1 to 65535", port)
		return "", invalidURL(msg, "the port is not valid")
	}
	if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
		return "", nil
	}
	return strconv.FormatUint(n, 10), nil
}

// validHostName reports whether host (lowercase ASCII, no trailing dot) is a
// syntactically valid DNS name: labels of letters, digits, hyphens and
// underscores, not starting or ending with a hyphen. IDNA has checked the
// lengths already.
func validHostName(host string) bool {
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// endsInNumber reports whether the last label of host (lowercase, no
// trailing dot) is a number, which makes host an IPv4 address or invalid, as
// in WHATWG's URL standard: resolvers that accept inet_aton's notations
// would otherwise read 0x7f.1 as 127.0.0.1.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if strings.Trim(last, "0123456789") == "" {
		return true
	}
	hex, ok := strings.CutPrefix(last, "0x")
	return ok && strings.Trim(hex, "0123456789abcdef") == ""
}

// parseIPv4 parses host as an IPv4 address in any notation inet_aton and
// browsers accept: one to four dot-separated parts, each decimal, octal
// (leading 0) or hexadecimal (leading 0x), the last part filling the
// remaining bytes.
func parseIPv4(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var (
		ip   uint64
		last = len(parts) - 1
	)
	for i, part := range parts {
		n, ok := parseIPv4Number(part)
		if !ok {
			return netip.Addr{}, false
		}
		if i < last {
			if n > 255 {
				return netip.Addr{}, false
			}
			ip |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-last)) {
			return netip.Addr{}, false
		}
		ip |= n
	}
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// parseIPv4Number parses one part of an IPv4 address: decimal, octal with a
// leading 0, or hexadecimal with a leading 0x ("0x" alone is 0).
func parseIPv4Number(s string) (uint64, bool) {
	base := 10
	switch {
	case strings.HasPrefix(s, "0x"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 32)
	return n, err == nil
}

func invalidURL(message, detail string) *URLError {
	return &URLError{Code: URLErrorCodeInvalidURL, Message: message, detail: detail}
}

func invalidHostError(host string) *URLError {
	return invalidURL(fmt.Sprintf("the host %q is not a valid host name", host), "the host is not a valid host name")
}

func missingHostError() *URLError {
	msg := "the URL has no host: it must look like https://example.com/webhooks"
	return &URLError{Code: URLErrorCodeMissingHost, Message: msg, detail: "the URL has no host"}
}

func tooLongError(n int) *URLError {
	msg := fmt.Sprintf("the URL is %d characters long: at most %d are allowed", n, URLLengthMax)
	return &URLError{Code: URLErrorCodeURLTooLong, Message: msg, detail: msg}
}
