package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// Request body budget defaults.
const (
	// BodyBudgetDefault bounds the bytes of request bodies being read and
	// decoded at once by one process: 32 MiB. Decoding JSON takes about
	// three times a body's size, so this bounds that memory to about
	// 100 MiB however many callers send at once.
	BodyBudgetDefault = 32 << 20
	// BodyBudgetWait is how long a request waits for room before it is
	// answered 503 (or, when its own key holds its share, 429).
	BodyBudgetWait = 2 * time.Second
	// BodyBudgetKeyShare: by default one API key holds at most a quarter
	// of the body budget (and never less than one largest batch), so a
	// key's slow or large uploads leave three quarters to everyone else.
	BodyBudgetKeyShare = 4
	// BodyMinRateDefault is the slowest a request body may arrive, in
	// bytes a second, after its first BodyMinRateGrace: 64 KiB/s. A
	// slower body is cut with 408 body_too_slow.
	BodyMinRateDefault = 64 << 10
	// BodyMinRateGrace is the time a body has before the minimum rate
	// counts.
	BodyMinRateGrace = time.Second
	// BodyReadMax is the longest a body may take however fast it arrives,
	// the server's ReadTimeout (30 s): the minimum rate's read deadline
	// never goes past it.
	BodyReadMax = 30 * time.Second
)

// bodyLimit is the largest body route may read.
func bodyLimit(rt route) int64 {
	switch rt.pattern {
	case "/v1/events/batch":
		return BatchBodyLimit
	case "/v1/events":
		return EventBodyLimit
	case "/v1/webhooks", "/v1/webhooks/{id}":
		if rt.method == http.MethodPost || rt.method == http.MethodPatch {
			return WebhookBodyLimit // a certificate chain, key and CA bundle
		}
	}
	return SmallBodyLimit
}

// withBodyBudget makes a request to a route that reads a body (limit bytes
// at most) reserve its size from the process's budget before reading it:
// its Content-Length, or limit when it gives none. One key holds at most
// its share of the budget: past it, its request waits for its own bodies
// and, with no room within BodyBudgetWait, is answered 429 rate_limited;
// with no room in the whole budget it is answered 503 server_busy. Either
// way with Retry-After, having read nothing, so a storm of large or slow
// bodies can't take the process's memory, and one key's can't take
// everyone's share. The body then has to arrive at the minimum rate.
func (a *API) withBodyBudget(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			// Refused before a byte of it is read.
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the request body is larger than the limit of %d bytes", limit)})
			return
		}
		n := limit
		if r.ContentLength >= 0 && r.ContentLength < limit {
			n = max(r.ContentLength, 1)
		}
		ctx, cancel := context.WithTimeout(r.Context(), BodyBudgetWait)
		defer cancel()
		p := principalFrom(r.Context())
		if p != nil {
			share := a.bodyShares.get(bucketKey(budgetBody, p))
			err := share.sem.Acquire(ctx, n)
			if err != nil {
				a.bodyShares.put(share)
				w.Header().Set("Retry-After", "1")
				a.metrics.RateLimited(p.Scope, budgetBody)
				writeError(w, &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: fmt.Sprintf("this API key already has its share (%d bytes) of the request bodies being read at once; retry shortly", a.bodyShares.size)})
				return
			}
			defer func() {
				share.sem.Release(n)
				a.bodyShares.put(share)
			}()
		}
		if err := a.bodies.Acquire(ctx, n); err != nil {
			w.Header().Set("Retry-After", strconv.Itoa(1))
			writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "server_busy", Message: "too many request bodies are being processed at once; retry shortly"})
			return
		}
		defer a.bodies.Release(n)
		if a.bodyMinRate > 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = &minRateBody{ReadCloser: r.Body, w: w, rc: http.NewResponseController(w), start: time.Now(), rate: a.bodyMinRate}
		}
		next.ServeHTTP(w, r)
	})
}

func newBodyBudget(size int64) *semaphore.Weighted {
	if size <= 0 {
		size = BodyBudgetDefault
	}
	// A single largest body must always fit.
	return semaphore.NewWeighted(max(size, BatchBodyLimit))
}

// bodyShares holds each key's share of the body budget while it has
// bodies being read, and forgets the key when it has none.
type bodyShares struct {
	size int64
	mu   sync.Mutex
	keys map[string]*bodyShare
}

type bodyShare struct {
	key  string
	sem  *semaphore.Weighted
	refs int
}

// newBodyShares gives each key perKey bytes, or a BodyBudgetKeyShare-th
// of budget when perKey is 0; never less than one largest body.
func newBodyShares(budget, perKey int64) *bodyShares {
	if budget <= 0 {
		budget = BodyBudgetDefault
	}
	if perKey <= 0 {
		perKey = budget / BodyBudgetKeyShare
	}
	return &bodyShares{size: max(perKey, BatchBodyLimit), keys: map[string]*bodyShare{}}
}

func (s *bodyShares) get(key string) *bodyShare {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.keys[key]
	if !ok {
		sh = &bodyShare{key: key, sem: semaphore.NewWeighted(s.size)}
		s.keys[key] = sh
	}
	sh.refs++
	return sh
}

func (s *bodyShares) put(sh *bodyShare) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.refs--; sh.refs == 0 {
		delete(s.keys, sh.key)
	}
}

// errBodyTooSlow is a request body cut for arriving below the minimum
// rate; decodeJSON answers it 408 body_too_slow.
var errBodyTooSlow = errors.New("the request body arrived too slowly")

// minRateBody cuts a request body that arrives slower than rate bytes a
// second after BodyMinRateGrace: before each read it sets the
// connection's read deadline to when the bytes so far would be too few.
type minRateBody struct {
	io.ReadCloser
	w     http.ResponseWriter
	rc    *http.ResponseController
	start time.Time
	rate  int64
	read  int64
	done  bool
}

func (b *minRateBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	due := b.start.Add(min(BodyMinRateGrace+time.Duration(float64(b.read)/float64(b.rate)*float64(time.Second)), BodyReadMax))
	// Unsupported (an in-process request): nothing to cut.
	_ = b.rc.SetReadDeadline(due)
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		// Read whole: the connection's deadline no longer concerns us.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.w.Header().Set("Connection", "close")
		return n, fmt.Errorf("%w (less than %d bytes a second): %w", errBodyTooSlow, b.rate, err)
	}
	return n, err
}
