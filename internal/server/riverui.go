package server

import (
	"net/http"

	"github.com/mono/webhookd/internal/forwarded"
)

// riverUIDenied is the answer to a cross-origin write to River UI.
const riverUIDenied = `{"error":{"code":"cross_origin_request","message":"River UI accepts changes (delete, cancel, retry) only from its own pages: this request came from another origin"}}` + "\n"

// guardRiverUI wraps River UI (already behind the admin key) so that a page
// on another origin can't drive it with the admin's cached Basic
// credentials: every request but GET, HEAD and OPTIONS must be same-origin
// (Sec-Fetch-Site, else Origin against Host or WEBHOOKD_PUBLIC_URL), and no
// answer may be framed or sniffed. The check runs before authentication,
// so a refused request costs no key lookup.
func guardRiverUI(next http.Handler, trust *forwarded.Trust) (http.Handler, error) {
	cop := http.NewCrossOriginProtection()
	if origin := trust.Origin(); origin != "" {
		if err := cop.AddTrustedOrigin(origin); err != nil {
			return nil, err
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(riverUIDenied))
	}))
	guarded := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		guarded.ServeHTTP(w, r)
	}), nil
}
