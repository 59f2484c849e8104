package dispatcher

import (
	"encoding/json"
	"math/rand/v2"
	"sync"
	"time"
)

// WebhookConcurrencyDefault is how many attempts to one webhook a process
// makes at once. A slow or black-hole endpoint can hold at most this many of
// a process's workers; the others keep serving everybody else.
const WebhookConcurrencyDefault = 20

// Bounds of the snooze of a job whose webhook is saturated. The delay grows
// with the job's snooze count, so a backlog behind a black hole settles to
// one look every SaturatedSnoozeMax instead of churning the queue.
const (
	SaturatedSnoozeMin = 200 * time.Millisecond
	SaturatedSnoozeMax = 10 * time.Second
)

// inflight caps concurrent attempts per webhook within one process.
type inflight struct {
	limit int
	mu    sync.Mutex
	count map[string]int
}

func newInflight(limit int) *inflight {
	return &inflight{limit: limit, count: make(map[string]int)}
}

// acquire takes a slot for webhookID, reporting false when it is saturated.
func (f *inflight) acquire(webhookID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count[webhookID] >= f.limit {
		return false
	}
	f.count[webhookID]++
	return true
}

func (f *inflight) release(webhookID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count[webhookID] <= 1 {
		delete(f.count, webhookID)
		return
	}
	f.count[webhookID]--
}

// saturatedSnooze is how long a job waits when its webhook is saturated:
// SaturatedSnoozeMin doubled per earlier snooze of the job, capped at
// SaturatedSnoozeMax, with ±25% jitter so waiting jobs don't return in step.
func saturatedSnooze(metadata []byte) time.Duration {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	d := SaturatedSnoozeMin
	for i := 0; i < m.Snoozes && d < SaturatedSnoozeMax; i++ {
		d *= 2
	}
	d = min(d, SaturatedSnoozeMax)
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}
