package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mono/webhookd/internal/store"
)

// Rate is a token bucket: PerSecond tokens come back each second, up to
// Burst. A request (or, for event intake, an event) takes one token. The
// zero Rate stands for a setting's default; RateOff is no limit.
type Rate struct {
	// PerSecond is the refill rate; 0 or less is no limit.
	PerSecond float64
	// Burst is the bucket's size: how many may go at once after a pause.
	Burst int
}

// RateOff is no limit.
var RateOff = Rate{PerSecond: -1}

// Rate limit defaults, per process.
var (
	// ManagementRateDefault is the budget of an account key (or an
	// events:write key) on the management routes: 50 requests a second,
	// 100 at once.
	ManagementRateDefault = Rate{PerSecond: 50, Burst: 100}
	// ManagementRateAdminDefault is the budget of an admin key on the
	// management routes: none (RateOff). Admin keys are operators' and
	// support's; give them one when they are handed to scripts.
	ManagementRateAdminDefault = RateOff
	// IntakeRateDefault is the event-intake budget of every scope, counted
	// in events: none (RateOff).
	IntakeRateDefault = RateOff
)

// On reports whether r limits anything.
func (r Rate) On() bool { return r.PerSecond > 0 && r.Burst > 0 }

// String is r as ParseRate reads it: "50/s,burst=100" or "off".
func (r Rate) String() string {
	if !r.On() {
		return "off"
	}
	return strconv.FormatFloat(r.PerSecond, 'f', -1, 64) + "/s,burst=" + strconv.Itoa(r.Burst)
}

// or is r, or def when r is the zero Rate.
func (r Rate) or(def Rate) Rate {
	if r == (Rate{}) {
		return def
	}
	return r
}

// ParseRate reads a rate setting: "off" (or "0"), or a rate per second,
// minute or hour with an optional burst: "50/s", "50/s,burst=100",
// "3000/m". Without a burst the bucket holds one second's worth (at
// least 1).
func ParseRate(raw string) (Rate, error) {
	raw = strings.TrimSpace(raw)
	if raw == "off" || raw == "0" {
		return RateOff, nil
	}
	bad := fmt.Errorf("%q is not off or a rate such as 50/s or 50/s,burst=100", raw)
	spec, burstPart, hasBurst := strings.Cut(raw, ",")
	n, unit, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return Rate{}, bad
	}
	count, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || count <= 0 || math.IsInf(count, 0) || math.IsNaN(count) {
		return Rate{}, bad
	}
	var per time.Duration
	switch strings.TrimSpace(unit) {
	case "s":
		per = time.Second
	case "m", "min":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return Rate{}, bad
	}
	r := Rate{PerSecond: count / per.Seconds()}
	r.Burst = max(int(math.Ceil(r.PerSecond)), 1)
	if hasBurst {
		name, value, ok := strings.Cut(strings.TrimSpace(burstPart), "=")
		b, err := strconv.Atoi(strings.TrimSpace(value))
		if !ok || strings.TrimSpace(name) != "burst" || err != nil || b < 1 {
			return Rate{}, bad
		}
		r.Burst = b
	}
	return r, nil
}

// The budgets a request can be counted in: the label of
// webhookd_rate_limited_total and the name of the RateLimit policy.
const (
	budgetManagement = "management"
	budgetIntake     = "intake"
	budgetBody       = "body"
)

// budgetOf is the budget route counts in: intake for POST /v1/events and
// /v1/events/batch, none for the routes without a key (health, docs),
// management for every other.
func budgetOf(rt route) string {
	switch {
	case rt.scopes == nil:
		return ""
	case rt.method == http.MethodPost && (rt.pattern == "/v1/events" || rt.pattern == "/v1/events/batch"):
		return budgetIntake
	}
	return budgetManagement
}

// rateFor is the Rate of budget for a key of scope.
func (a *API) rateFor(budget, scope string) Rate {
	switch {
	case budget == budgetManagement && scope == store.ScopeAdmin:
		return a.rates.managementAdmin
	case budget == budgetManagement:
		return a.rates.management
	case scope == store.ScopeAdmin:
		return a.rates.intakeAdmin
	case scope == store.ScopeAccount:
		return a.rates.intakeAccount
	}
	return a.rates.intakeEventsWrite
}

// rates are the API's effective Rates.
type rates struct {
	management, managementAdmin                   Rate
	intakeAccount, intakeAdmin, intakeEventsWrite Rate
}

func newRates(cfg *Config) rates {
	return rates{
		management:        cfg.ManagementRate.or(ManagementRateDefault),
		managementAdmin:   cfg.ManagementRateAdmin.or(ManagementRateAdminDefault),
		intakeAccount:     cfg.IntakeRateAccount.or(IntakeRateDefault),
		intakeAdmin:       cfg.IntakeRateAdmin.or(IntakeRateDefault),
		intakeEventsWrite: cfg.IntakeRateEventsWrite.or(IntakeRateDefault),
	}
}

// bucketKey names p's bucket in budget: its key id, "bootstrap" for the
// bootstrap admin key.
func bucketKey(budget string, p *Principal) string {
	if p.Bootstrap() {
		return budget + "/bootstrap"
	}
	return budget + "/" + p.KeyID
}

// withRateLimit counts a request to rt against its key's budget (after
// auth, before the body is read) and answers 429 rate_limited with
// Retry-After when the budget is spent. A batch of events counts as many
// as it holds: withBatchIntake counts it once its body is read.
func (a *API) withRateLimit(rt route, next http.Handler) http.Handler {
	budget := budgetOf(rt)
	if budget == "" || rt.pattern == "/v1/events/batch" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (budget == budgetManagement && pageChargedCtx(r.Context())) || a.charge(w, principalFrom(r.Context()), budget, 1) {
			next.ServeHTTP(w, r)
		}
	})
}

// withBatchIntake counts a batch's events against its key's intake budget.
// It runs inside the body budget: the body is read here (through the
// same limits the handler would read it with) and handed on as it came.
// A body that can't be read or parsed counts as one event and reaches the
// handler, which answers for it.
func (a *API) withBatchIntake(rt route, next http.Handler) http.Handler {
	if rt.method != http.MethodPost || rt.pattern != "/v1/events/batch" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principalFrom(r.Context())
		if p == nil || !a.rateFor(budgetIntake, p.Scope).On() {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, BatchBodyLimit))
		n := 1
		if err == nil {
			var peek struct {
				Events []json.RawMessage `json:"events"`
			}
			if json.Unmarshal(body, &peek) == nil {
				n = max(len(peek.Events), 1)
			}
		}
		if !a.charge(w, p, budgetIntake, n) {
			return
		}
		var rest io.Reader = bytes.NewReader(body)
		if err != nil {
			rest = io.MultiReader(rest, errReader{err})
		}
		r.Body = io.NopCloser(rest)
		next.ServeHTTP(w, r)
	})
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// charge takes cost tokens from p's bucket in budget (take). With the
// tokens it reports true; without, it answers 429 and reports false.
func (a *API) charge(w http.ResponseWriter, p *Principal, budget string, cost int) bool {
	if e := a.take(w.Header(), p, budget, cost); e != nil {
		writeError(w, e)
		return false
	}
	return true
}

// take takes cost tokens from p's bucket in budget, setting the RateLimit
// fields in h (when not nil: callers in process have no answer to set
// them in). Without the tokens it returns the 429 rate_limited, with
// RetryAfter. A key without a limit in budget is not counted.
func (a *API) take(h http.Header, p *Principal, budget string, cost int) *Error {
	if p == nil {
		return nil
	}
	rate := a.rateFor(budget, p.Scope)
	if !rate.On() {
		return nil
	}
	ok, tokens, wait := a.limiter.take(bucketKey(budget, p), rate, float64(cost))
	if h == nil {
		h = http.Header{}
	}
	// The canonical forms of RateLimit-Policy and RateLimit, which
	// Header.Set would otherwise allocate on every request.
	h["Ratelimit-Policy"] = []string{rateLimitPolicy(budget, rate)}
	if ok {
		h["Ratelimit"] = []string{rateLimitField(budget, tokens, int(math.Ceil(rate.refill(tokens).Seconds())))}
		return nil
	}
	secs := wholeSeconds(wait)
	h["Ratelimit"] = []string{rateLimitField(budget, tokens, secs)}
	a.metrics.RateLimited(p.Scope, budget)
	what := "requests"
	if budget == budgetIntake {
		what = "events"
	}
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: time.Duration(secs) * time.Second,
		Message: fmt.Sprintf("this API key is over its %s rate limit (%s %s, per server process); retry in %d s", budget, rate, what, secs)}
}

// rateLimitPolicy is the RateLimit-Policy field of draft-ietf-httpapi-
// ratelimit-headers-09 for rate: the bucket's size as the quota, and the
// time it takes to refill from empty as the window.
func rateLimitPolicy(budget string, rate Rate) string {
	return `"` + budget + `";q=` + strconv.Itoa(rate.Burst) + ";w=" + strconv.Itoa(wholeSeconds(rate.refill(0)))
}

// rateLimitField is the RateLimit field: the whole tokens left (none when
// in debt) and the seconds until the bucket is full (0 when it is).
func rateLimitField(budget string, tokens float64, full int) string {
	return `"` + budget + `";r=` + strconv.Itoa(max(int(tokens), 0)) + ";t=" + strconv.Itoa(full)
}

// refill is how long a bucket holding tokens takes to be full.
func (r Rate) refill(tokens float64) time.Duration {
	if tokens >= float64(r.Burst) {
		return 0
	}
	return time.Duration((float64(r.Burst) - tokens) / r.PerSecond * float64(time.Second))
}

// wholeSeconds rounds d up to whole seconds, at least 1.
func wholeSeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}

// limiterSweepInterval is how often idle buckets are dropped.
const limiterSweepInterval = time.Minute

// limiter holds a token bucket per key and budget, in memory. A bucket
// that has refilled is the same as no bucket, so buckets idle that long
// are dropped (checked every limiterSweepInterval): memory follows the
// keys in use, not every key ever seen.
type limiter struct {
	now       func() time.Time
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
	rate   Rate
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, buckets: map[string]*bucket{}}
}

// take takes cost tokens from key's bucket of rate if it holds them (or,
// for a cost above the burst, if it is full: it then goes into debt). It
// returns whether it did, the tokens left, and otherwise how long until
// the tokens are there.
func (l *limiter) take(key string, rate Rate, cost float64) (ok bool, tokens float64, wait time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= limiterSweepInterval {
		l.sweep(now)
	}
	b := l.bucket(key, rate, now)
	need := min(cost, float64(rate.Burst))
	if b.tokens >= need {
		b.tokens -= cost
		return true, b.tokens, 0
	}
	return false, b.tokens, time.Duration((need - b.tokens) / rate.PerSecond * float64(time.Second))
}

// tokens is what key's bucket of rate holds now, without taking any.
func (l *limiter) tokens(key string, rate Rate) float64 {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		return b.refilled(now)
	}
	return float64(rate.Burst)
}

// bucket is key's bucket, refilled up to now. Called with mu held.
func (l *limiter) bucket(key string, rate Rate, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok || b.rate != rate {
		b = &bucket{tokens: float64(rate.Burst), at: now, rate: rate}
		l.buckets[key] = b
		return b
	}
	b.tokens, b.at = b.refilled(now), now
	return b
}

func (b *bucket) refilled(now time.Time) float64 {
	elapsed := max(now.Sub(b.at).Seconds(), 0)
	return min(b.tokens+elapsed*b.rate.PerSecond, float64(b.rate.Burst))
}

// sweep drops the buckets that are full again. Called with mu held.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for key, b := range l.buckets {
		if b.refilled(now) >= float64(b.rate.Burst) {
			delete(l.buckets, key)
		}
	}
}
