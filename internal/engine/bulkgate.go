package engine

import (
	"context"
	"slices"
	"sync"
	"time"
)

// A backlog gives way to other accounts' live traffic. River fetches
// PriorityNormal jobs first, but once fetched, a backlog's jobs and a live
// event's share the machine's CPU and the database: measured (scenario 4
// of the bench, a 100,000-delivery backlog of account A beside account B's
// 100 events/s), B's first attempts waited p50 53 – 55 ms with 400 of A's
// deliveries under way, p50 21 ms and p99 55 – 57 ms with 50.
//
// So while live deliveries (PriorityNormal) of some account are being
// answered, a bulk delivery of another account that is already more than
// bulkBacklogLag behind its time (a backlog, not a stream the workers keep
// up with, which goes on unhindered) starts only while fewer than the
// gate's limit of such deliveries are under way in this process; otherwise
// it waits, holding its River slot (the slots free as the admitted ones
// finish, and River fills them with live jobs first). An account's own
// live deliveries never hold back its bulk ones: one account sending above
// its fair rate is one stream, and gating its excess behind its own first
// 100/s would only slow it down (measured: 2,000/s from one account fell
// to 1,639/s with first attempts at p99 748 ms). Live means answered: an
// HTTP status within bulkLiveAnswer. Live traffic to a black hole or a
// dead endpoint uses no CPU while it waits, and gating a backlog for it
// would only slow the backlog (measured: the isolation ratio fell to
// 0.75 – 0.90 when every live attempt's start counted).
//
// The wait ends when a delivery admitted this way finishes, when the other
// accounts' live traffic has stopped for bulkLiveWindow, or after
// bulkMaxWait, whichever comes first: a backlog slows down, it never
// stops. An admitted delivery stops counting after bulkHoldMax, so slow
// endpoints (which use no CPU while they keep a request waiting) can't
// hold the gate shut.
const (
	bulkLiveWindow = 250 * time.Millisecond
	bulkBacklogLag = time.Second
	bulkMaxWait    = 2 * time.Second
	bulkHoldMax    = 500 * time.Millisecond
	bulkLiveAnswer = time.Second
)

// BulkWhileLiveDefault returns the gate's default limit for maxWorkers:
// a sixteenth of them (25 of the default 400). Measured in three
// alternating pairs (scenario 4): B's p99 55 / 87 / 77 ms with 25 against
// 84 / 96 / 86 ms with 50, A delivering 26 – 40 k against 33 – 39 k
// meanwhile.
func BulkWhileLiveDefault(maxWorkers int) int { return max(1, maxWorkers/16) }

// bulkGate is the gate above; the zero limit (or less) never gates.
type bulkGate struct {
	limit int
	// window, maxWait and holdMax are bulkLiveWindow, bulkMaxWait and
	// bulkHoldMax (tests shorten or lengthen them).
	window, maxWait, holdMax time.Duration
	// waited, when set, is told how long each delivery that waited did.
	waited func(time.Duration)

	mu      sync.Mutex
	running int
	// recent are the two accounts whose live deliveries were answered last
	// (distinct; recent[0] the latest) and until when each counts as live:
	// whatever account asks, the latest other live account is one of them.
	recent  [2]liveAccount
	waiters []chan struct{} // first come, first admitted
}

type liveAccount struct {
	id    string
	until time.Time
}

// othersLiveUntil is until when accounts other than accountID count as
// live (zero: none).
func (g *bulkGate) othersLiveUntil(accountID string) time.Time {
	var until time.Time
	for _, r := range g.recent {
		if r.id != accountID && r.until.After(until) {
			until = r.until
		}
	}
	return until
}

func newBulkGate(limit int, waited func(time.Duration)) *bulkGate {
	return &bulkGate{limit: limit, window: bulkLiveWindow, maxWait: bulkMaxWait, holdMax: bulkHoldMax, waited: waited}
}

// live notes that a live delivery of accountID was answered.
func (g *bulkGate) live(accountID string) {
	if g.limit <= 0 {
		return
	}
	until := time.Now().Add(g.window)
	g.mu.Lock()
	if g.recent[0].id == accountID {
		g.recent[0].until = until
	} else {
		g.recent[1], g.recent[0] = g.recent[0], liveAccount{id: accountID, until: until}
	}
	g.mu.Unlock()
}

// enter admits a bulk delivery of accountID lag behind its time, waiting
// as described above, and returns the function that lets the next one in
// (idempotent), or the context's error.
func (g *bulkGate) enter(ctx context.Context, accountID string, lag time.Duration) (release func(), err error) {
	noop := func() {}
	if g.limit <= 0 || lag <= bulkBacklogLag {
		return noop, nil
	}
	start := time.Now()
	waited := false
	defer func() {
		if waited && g.waited != nil {
			g.waited(time.Since(start))
		}
	}()
	g.mu.Lock()
	for {
		now := time.Now()
		liveUntil := g.othersLiveUntil(accountID)
		if !now.Before(liveUntil) {
			g.mu.Unlock()
			return noop, nil
		}
		if g.running < g.limit || now.Sub(start) >= g.maxWait {
			g.running++
			g.mu.Unlock()
			return g.holder(), nil
		}
		waited = true
		ch := make(chan struct{})
		g.waiters = append(g.waiters, ch)
		wake := time.NewTimer(min(liveUntil.Sub(now), g.maxWait-now.Sub(start)))
		g.mu.Unlock()
		select {
		case <-ch:
			// Admitted by a release, which counted us in.
			wake.Stop()
			return g.holder(), nil
		case <-wake.C:
		case <-ctx.Done():
			wake.Stop()
		}
		g.mu.Lock()
		if i := slices.Index(g.waiters, ch); i >= 0 {
			g.waiters = slices.Delete(g.waiters, i, i+1)
		} else {
			// A release admitted us meanwhile.
			g.mu.Unlock()
			return g.holder(), nil
		}
		if err := ctx.Err(); err != nil {
			g.mu.Unlock()
			return nil, err
		}
	}
}

// holder returns the release of one admitted delivery: called when it
// finishes, or by itself after bulkHoldMax.
func (g *bulkGate) holder() func() {
	var once sync.Once
	release := func() { once.Do(g.release) }
	t := time.AfterFunc(g.holdMax, release)
	return func() {
		t.Stop()
		release()
	}
}

// release counts one admitted delivery out and admits the first waiter.
func (g *bulkGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if len(g.waiters) > 0 {
		close(g.waiters[0])
		g.waiters = g.waiters[1:]
		g.running++
	}
}
