package admin

import (
	"cmp"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mono/webhookd/internal/outbound"
)

// TestSendRateDefault is Config.TestSendRate's default: one test send a
// second per webhook and process, five at once.
var TestSendRateDefault = Rate{PerSecond: 1, Burst: 5}

// TestSendsInFlightDefault is Config.TestSendsInFlight's default: the test
// sends one webhook may have in flight on a process without workers.
const TestSendsInFlightDefault = 2

// Slots are a process's slots for attempts to each webhook
// (engine.Worker.TrySlot).
type Slots interface {
	// TrySlot takes one of webhookID's slots if one is free now; release
	// gives it back with the attempt's result. With none free, ok is
	// false and wait says when to try again.
	TrySlot(webhookID string) (release func(*outbound.Result), wait time.Duration, ok bool)
}

// testSendLimits bounds the test sends of each webhook in this process: a
// token bucket each, in the API's limiter (refused: 429 rate_limited), and
// slots in flight (refused: 429 test_sends_busy). A refused test send
// writes nothing.
type testSendLimits struct {
	rate  Rate
	slots Slots
}

func newTestSendLimits(cfg *Config) *testSendLimits {
	l := &testSendLimits{rate: cfg.TestSendRate.or(TestSendRateDefault), slots: cfg.TestSendSlots}
	if l.slots == nil {
		l.slots = &ownSlots{limit: cmp.Or(max(cfg.TestSendsInFlight, 0), TestSendsInFlightDefault), n: make(map[string]int)}
	}
	return l
}

// takeTestSend admits one test send to webhookID now: within its rate and
// with a slot free. release gives the slot back with the attempt's result.
// A refusal is the error to answer, with its Retry-After in seconds; a
// test send refused for want of a slot has used its token all the same.
func (a *API) takeTestSend(webhookID string) (release func(*outbound.Result), retryAfter int, apiErr *Error) {
	l := a.testSends
	if l.rate.On() {
		if ok, _, wait := a.limiter.take("test-send/"+webhookID, l.rate, 1); !ok {
			return nil, wholeSeconds(wait), &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message: fmt.Sprintf("too many test sends to this webhook (%s per server process); retry in %d s", l.rate, wholeSeconds(wait))}
		}
	}
	release, wait, ok := l.slots.TrySlot(webhookID)
	if !ok {
		return nil, wholeSeconds(wait), &Error{Status: http.StatusTooManyRequests, Code: "test_sends_busy",
			Message: fmt.Sprintf("this webhook has as many attempts in flight as this server process allows; retry in %d s", wholeSeconds(wait))}
	}
	return release, 0, nil
}

// ownSlots are test sends' own slots per webhook, for a process whose
// deliveries' slots it can't share (no workers): limit each.
type ownSlots struct {
	limit int
	mu    sync.Mutex
	n     map[string]int
}

func (s *ownSlots) TrySlot(webhookID string) (func(*outbound.Result), time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[webhookID] >= s.limit {
		return nil, time.Second, false
	}
	s.n[webhookID]++
	return func(*outbound.Result) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.n[webhookID]--; s.n[webhookID] == 0 {
			delete(s.n, webhookID)
		}
	}, 0, true
}
