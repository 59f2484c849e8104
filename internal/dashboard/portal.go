package dashboard

import (
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/mono/webhookd/internal/admin"
)

// Portal links (admin.API.OpenPortalSession): GET
// /dashboard/portal/{token} opens a session for the link's account, like
// signing in with an account key, and sends the browser to Settings ›
// Personal › API. A link works once; a used, expired, revoked or unknown
// one shows the sign-in page with the operation's reason, and nothing else
// happens.

// portalBounce is the page a used link answers with. It sets the session
// cookie and moves on to the Webhooks page from this origin (a meta
// refresh, no script): after a redirect the browser would still count the
// next request as started by the product's site and withhold the
// SameSite=Strict cookie.
var portalBounce = template.Must(template.New("portal").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0;url={{.Next}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Signing in · Mono Dashboard</title>
<link rel="stylesheet" href="{{.CSS}}">
</head>
<body>
<main id="main"><p class="lead">Signed in. <a href="{{.Next}}">Continue to Webhooks</a>.</p></main>
</body>
</html>
`))

// openPortalLink is GET /dashboard/portal/{token}. A HEAD request or a
// browser's prefetch (Sec-Purpose: prefetch) does not use the link: only
// the navigation that shows its page does.
func (d *Dashboard) openPortalLink(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead || strings.Contains(r.Header.Get("Sec-Purpose"), "prefetch") {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	req := &admin.PortalSessionRequest{LinkToken: r.PathValue("token"), Use: admin.PortalLinkUse{UserAgent: r.UserAgent()}, TTL: d.ttl}
	if addr := d.trust.ClientIP(r); addr.IsValid() {
		req.Use.ClientAddr = addr.String()
	}
	// The browser's previous session, if any, is replaced.
	if c, err := r.Cookie(sessionCookie); err == nil {
		req.Replaces = c.Value
	}
	// The operation logs the use (or the refusal) and counts it.
	started, err := d.api.OpenPortalSession(r.Context(), req)
	if err != nil {
		e := opError(err)
		if e.Status >= 500 {
			d.serverError(w, r)
			return
		}
		d.renderSignIn(w, r, e.Status, &view{Title: "Sign in", Error: e.Message}, safeNext(""), "")
		return
	}
	d.setCookie(w, r, sessionCookie, started.Token, int(d.ttl/time.Second))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = portalBounce.Execute(w, struct{ Next, CSS string }{safeNext(""), Prefix + "/static/dashboard.css?v=" + staticVersion})
}

// ParseFrameAncestors reads WEBHOOKD_PORTAL_FRAME_ANCESTORS: origins
// separated by commas or spaces, each https://host[:port] (or http:// for
// a loopback host, for development), returned as origins. Empty: none.
func ParseFrameAncestors(raw string) ([]string, error) {
	var out []string
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		origin, err := frameAncestor(part)
		if err != nil {
			return nil, err
		}
		out = append(out, origin)
	}
	return out, nil
}

// frameAncestor checks one origin and returns it as CSP writes it:
// lower-case scheme and host, the port only when given.
func frameAncestor(raw string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("%q is not an origin such as https://app.example.com: %s", raw, why)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", bad("it does not parse")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", bad("the scheme must be https")
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return "", bad("it has no host")
	case strings.ContainsAny(u.Host, "*"):
		return "", bad("wildcards are not allowed: list each origin")
	case u.User != nil:
		return "", bad("it must not contain a user name or password")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", bad("an origin has no path, query or fragment")
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		return "", bad("the scheme must be https (http only for localhost and loopback addresses)")
	}
	if p := u.Port(); p != "" {
		if n, err := netip.ParseAddrPort("127.0.0.1:" + p); err != nil || n.Port() == 0 {
			return "", bad("the port is not a port number")
		}
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}
