package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/store"
)

// webhookRateField is a rate_limit_per_second in a create or update: Set
// when the body has the field (null included: no limit), Value its number.
type webhookRateField struct {
	Set   bool
	Value *int
}

// UnmarshalJSON implements json.Unmarshaler: a whole number or null.
func (f *webhookRateField) UnmarshalJSON(b []byte) error {
	f.Set = true
	if string(b) == "null" {
		f.Value = nil
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return err // a *json.UnmarshalTypeError: the decoder names the field
	}
	f.Value = &n
	return nil
}

// check refuses a limit outside 1–100 (422 invalid_rate_limit).
func (f *webhookRateField) check() *apiError {
	if f.Value != nil && (*f.Value < store.RateLimitMin || *f.Value > store.RateLimitMax) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_rate_limit", Field: "rate_limit_per_second",
			Message: fmt.Sprintf("rate_limit_per_second must be a whole number from %d to %d, or null for no limit", store.RateLimitMin, store.RateLimitMax)}
	}
	return nil
}

// update is the store's change for f: nil when the body didn't set it.
func (f *webhookRateField) update() **int {
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
	start, wait, ok, err := dispatcher.ThrottleStart(ctx, a.pool, hook.ID, *hook.RateLimitPerSecond, TestSendSlotWait)
	if err != nil {
		return time.Time{}, 0, errInternal(err)
	}
	if !ok {
		return time.Time{}, wholeSeconds(wait), &apiError{Status: http.StatusTooManyRequests, Code: "webhook_rate_limited",
			Message: fmt.Sprintf("this webhook's rate limit (%d attempts a second) has no start free within %s; retry in %d s", *hook.RateLimitPerSecond, TestSendSlotWait, wholeSeconds(wait))}
	}
	return start, 0, nil
}
