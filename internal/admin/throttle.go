package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/store"
)

// checkRate refuses a create or update's rate_limit_per_second outside
// 1–100 (422 invalid_rate_limit); null or absent is no limit.
func checkRate(f apitype.NullableInt) *Error {
	if f.Value != nil && (*f.Value < store.RateLimitMin || *f.Value > store.RateLimitMax) {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_rate_limit", Field: "rate_limit_per_second",
			Message: fmt.Sprintf("rate_limit_per_second must be a whole number from %d to %d, or null for no limit", store.RateLimitMin, store.RateLimitMax)}
	}
	return nil
}

// rateUpdate is the store's change for f: nil when the body didn't set it.
func rateUpdate(f apitype.NullableInt) **int {
	if !f.Set {
		return nil
	}
	v := f.Value
	return &v
}

// TestSendSlotWait is how soon a rate-limited webhook's next start slot
// must come for a test send to take it and wait; a later one answers 429
// webhook_rate_limited with Retry-After.
const TestSendSlotWait = time.Second

// throttleTestSend holds a test send to hook's rate limit, if it has one:
// it takes the webhook's next start slot when that comes within
// TestSendSlotWait (the same slots the deliveries take, across processes),
// waits for it and returns the start claimed. Otherwise it reserves
// nothing and answers the error, with its Retry-After in seconds.
func (a *API) throttleTestSend(ctx context.Context, hook *store.Webhook) (start time.Time, retryAfter int, apiErr *apiError) {
	if hook.RateLimitPerSecond == nil {
		return a.now(), 0, nil
	}
	start, wait, ok, err := engine.ThrottleStart(ctx, a.pool, hook.ID, *hook.RateLimitPerSecond, TestSendSlotWait)
	if err != nil {
		return time.Time{}, 0, errInternal(err)
	}
	if !ok {
		return time.Time{}, wholeSeconds(wait), &apiError{Status: http.StatusTooManyRequests, Code: "webhook_rate_limited",
			Message: fmt.Sprintf("this webhook's rate limit (%d attempts a second) has no start free within %s; retry in %d s", *hook.RateLimitPerSecond, TestSendSlotWait, wholeSeconds(wait))}
	}
	return start, 0, nil
}
