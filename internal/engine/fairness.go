package engine

import (
	"sync"
	"time"
)

// River fetches jobs by priority, then by due time. Deliveries of an account
// that stays within its fair rate go in at PriorityNormal; the excess of a
// burst goes in at PriorityBulk, so a small sender is never queued behind a
// big sender's backlog. Bulk replays run at PriorityBulk too.
const (
	PriorityNormal = 1
	PriorityBulk   = 2
)

// Fair-share defaults: an account may enqueue FairRateDefault events per
// second, with bursts of FairBurstDefault, at normal priority.
const (
	FairRateDefault  = 100.0
	FairBurstDefault = 200.0
)

// fairness is a token bucket per account, in process memory: the accounting
// is per enqueuing process, which is enough to keep one account's burst from
// starving the others.
type fairness struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newFairness(rate, burst float64, now func() time.Time) *fairness {
	return &fairness{rate: rate, burst: burst, now: now, buckets: make(map[string]*bucket)}
}

// priority takes one token from accountID's bucket and returns the River
// priority for its event's deliveries.
func (f *fairness) priority(accountID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.sweepLocked(now)
	b, ok := f.buckets[accountID]
	if !ok {
		b = &bucket{tokens: f.burst, at: now}
		f.buckets[accountID] = b
	}
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = min(f.burst, b.tokens+elapsed*f.rate)
	}
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return PriorityNormal
	}
	return PriorityBulk
}

// sweepLocked forgets buckets that have refilled completely, at most once a
// minute, so idle accounts cost no memory.
func (f *fairness) sweepLocked(now time.Time) {
	if now.Sub(f.sweep) < time.Minute {
		return
	}
	f.sweep = now
	full := time.Duration(f.burst / f.rate * float64(time.Second))
	for id, b := range f.buckets {
		if now.Sub(b.at) > full {
			delete(f.buckets, id)
		}
	}
}
