package admin

import (
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Failed-authentication defaults.
const (
	// AuthFailureLimitDefault is how many failed keys one client address
	// may present within AuthFailureWindow before its further failing
	// requests are answered 429 for AuthFailureBlock.
	AuthFailureLimitDefault = 20
	// AuthFailureWindow is the window failures are counted in, from the
	// first one.
	AuthFailureWindow = time.Minute
	// AuthFailureBlock is how long an address past the limit gets 429 for
	// a failing key.
	AuthFailureBlock = time.Minute
	// AuthFailureLogInterval is the least time between two log lines
	// about one client address; AuthFailureLogBurst lines at most are
	// written per interval over every address, and a summary line counts
	// what was left out.
	AuthFailureLogInterval = 10 * time.Second
	AuthFailureLogBurst    = 20
	// authFailureAddrs bounds the addresses tracked; past it, new
	// addresses share one entry.
	authFailureAddrs = 100_000
)

// Reasons a key is refused: the reason label of
// webhookd_auth_failures_total and of the log line.
const (
	authMissing   = "missing"
	authMalformed = "malformed"
	authUnknown   = "unknown"
	authRevoked   = "revoked"
	authExpired   = "expired"
	authThrottled = "throttled"
)

// invalidKeyError is a refused key with its reason. It is an errInvalidKey
// (errors.Is).
type invalidKeyError struct{ reason string }

func (e *invalidKeyError) Error() string        { return "invalid API key (" + e.reason + ")" }
func (e *invalidKeyError) Is(target error) bool { return target == errInvalidKey }

// authFailures throttles and logs failed authentication per client
// address (an IPv6 address by its /64).
type authFailures struct {
	limit  int // 0: no throttling
	now    func() time.Time
	logger *zap.Logger

	mu     sync.Mutex
	addrs  map[netip.Prefix]*addrFailures
	sweep  time.Time
	logged struct {
		since   time.Time
		lines   int
		dropped int
	}
}

type addrFailures struct {
	windowStart  time.Time
	count        int
	blockedUntil time.Time
	lastLog      time.Time
	unlogged     int
}

// overflowAddr is the entry every new address shares once authFailureAddrs
// are tracked.
var overflowAddr = netip.PrefixFrom(netip.IPv6Unspecified(), 0)

func newAuthFailures(limit int, now func() time.Time, logger *zap.Logger) *authFailures {
	return &authFailures{limit: limit, now: now, logger: logger, addrs: map[netip.Prefix]*addrFailures{}}
}

// clientPrefix groups addr: an IPv4 address alone, IPv6 by its /64.
func clientPrefix(addr netip.Addr) netip.Prefix {
	if !addr.IsValid() {
		return overflowAddr
	}
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// fail records a failed key (reason) from addr. It reports how long the
// address is blocked for (0: not blocked), and logs at warn within the
// log's own limits.
func (f *authFailures) fail(addr netip.Addr, reason string) time.Duration {
	now := f.now()
	key := clientPrefix(addr)
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.sweep) >= AuthFailureWindow {
		f.sweepLocked(now)
	}
	e, ok := f.addrs[key]
	if !ok {
		if len(f.addrs) >= authFailureAddrs {
			key = overflowAddr
			e = f.addrs[key]
		}
		if e == nil {
			e = &addrFailures{windowStart: now}
			f.addrs[key] = e
		}
	}
	if now.Sub(e.windowStart) >= AuthFailureWindow {
		e.windowStart, e.count = now, 0
	}
	e.count++
	var blocked time.Duration
	switch {
	case now.Before(e.blockedUntil):
		blocked = e.blockedUntil.Sub(now)
	case f.limit > 0 && e.count > f.limit:
		e.blockedUntil = now.Add(AuthFailureBlock)
		blocked = AuthFailureBlock
	}
	f.logLocked(now, key, e, reason, blocked)
	return blocked
}

// logLocked writes the warn line for a failure from key unless the address
// or the whole log is over its limit; the next line written says how many
// were left out. Called with mu held.
func (f *authFailures) logLocked(now time.Time, key netip.Prefix, e *addrFailures, reason string, blocked time.Duration) {
	e.unlogged++
	if now.Sub(e.lastLog) < AuthFailureLogInterval {
		return
	}
	if now.Sub(f.logged.since) >= AuthFailureLogInterval {
		if f.logged.dropped > 0 {
			f.logger.Warn("failed authentications not logged: too many client addresses failing",
				zap.Int("failures", f.logged.dropped), zap.Duration("interval", AuthFailureLogInterval))
		}
		f.logged.since, f.logged.lines, f.logged.dropped = now, 0, 0
	}
	if f.logged.lines >= AuthFailureLogBurst {
		f.logged.dropped += e.unlogged
		e.unlogged = 0
		return
	}
	f.logged.lines++
	fields := []zap.Field{zap.Stringer("client", key), zap.String("reason", reason),
		zap.Int("failures", e.unlogged), zap.Int("failures_in_window", e.count)}
	if blocked > 0 {
		fields = append(fields, zap.Duration("blocked_for", blocked))
	}
	f.logger.Warn("API key refused", fields...)
	e.lastLog, e.unlogged = now, 0
}

// sweepLocked drops the addresses with nothing left to remember. Called
// with mu held.
func (f *authFailures) sweepLocked(now time.Time) {
	f.sweep = now
	for key, e := range f.addrs {
		if now.Sub(e.windowStart) >= AuthFailureWindow && !now.Before(e.blockedUntil) && now.Sub(e.lastLog) >= AuthFailureLogInterval && e.unlogged == 0 {
			delete(f.addrs, key)
		}
	}
}

// refuseKey answers a request whose key was refused for reason: 401, or
// 429 auth_throttled with Retry-After once its client address has failed
// too often. It counts and logs the failure.
func (a *API) refuseKey(w http.ResponseWriter, r *http.Request, reason string, unauthorized func()) {
	if reason == authMissing {
		a.metrics.AuthFailure(reason)
		unauthorized()
		return
	}
	blocked := a.keyFailed(a.trust.ClientIP(r), reason)
	if blocked <= 0 {
		unauthorized()
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(wholeSeconds(blocked)))
	writeError(w, &Error{Status: http.StatusTooManyRequests, Code: "auth_throttled", Field: "Authorization",
		Message: "too many requests with an invalid API key from this address; a valid key is still accepted"})
}

// keyFailed counts and logs a key refused for reason from client address
// addr, and reports how long the address is throttled for (0: not).
func (a *API) keyFailed(addr netip.Addr, reason string) time.Duration {
	blocked := a.authFailures.fail(addr, reason)
	if blocked > 0 {
		a.metrics.AuthFailure(authThrottled)
	} else {
		a.metrics.AuthFailure(reason)
	}
	return blocked
}

// reasonOf is the reason of err, an errInvalidKey.
func reasonOf(err error) string {
	var invalid *invalidKeyError
	var expired *expiredKeyError
	switch {
	case errors.As(err, &invalid):
		return invalid.reason
	case errors.As(err, &expired):
		return authExpired
	}
	return authUnknown
}
