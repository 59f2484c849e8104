package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
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
	// answered 503.
	BodyBudgetWait = 2 * time.Second
)

// bodyLimit is the largest body route may read.
func bodyLimit(rt route) int64 {
	switch rt.pattern {
	case "/v1/events/batch":
		return BatchBodyLimit
	case "/v1/events":
		return EventBodyLimit
	}
	return SmallBodyLimit
}

// withBodyBudget makes a request to a route that reads a body (limit bytes
// at most) reserve its size from the process's budget before reading it:
// its Content-Length, or limit when it gives none. With no room within
// BodyBudgetWait it is answered 503 server_busy with Retry-After, having
// read nothing, so a storm of large or slow bodies can't take the
// process's memory.
func (a *API) withBodyBudget(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			// Refused before a byte of it is read.
			writeError(w, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the request body is larger than the limit of %d bytes", limit)})
			return
		}
		n := limit
		if r.ContentLength >= 0 && r.ContentLength < limit {
			n = max(r.ContentLength, 1)
		}
		ctx, cancel := context.WithTimeout(r.Context(), BodyBudgetWait)
		err := a.bodies.Acquire(ctx, n)
		cancel()
		if err != nil {
			w.Header().Set("Retry-After", strconv.Itoa(1))
			writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: "server_busy", Message: "too many request bodies are being processed at once; retry shortly"})
			return
		}
		defer a.bodies.Release(n)
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
