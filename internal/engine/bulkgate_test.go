package engine

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// backlogged is a bulk delivery's lag that makes it a backlog.
const backlogged = 10 * time.Second

// newTestGate is a gate whose admitted deliveries stay counted until
// released (an hour's bulkHoldMax), so that timing never admits a waiter.
func newTestGate(limit int) *bulkGate {
	g := newBulkGate(limit, nil)
	g.holdMax = time.Hour
	g.maxWait = time.Hour
	return g
}

// enterAsync enters g on a goroutine; the channel yields once admitted.
func enterAsync(t *testing.T, ctx context.Context, g *bulkGate) <-chan func() {
	t.Helper()
	out := make(chan func(), 1)
	go func() {
		release, err := g.enter(ctx, "acct_backlog", backlogged)
		if err != nil {
			close(out)
			return
		}
		out <- release
	}()
	return out
}

// requireWaiting asserts that nothing comes out of admitted for a moment.
func requireWaiting(t *testing.T, admitted <-chan func()) {
	t.Helper()
	select {
	case <-admitted:
		t.Fatal("admitted although the gate was full")
	case <-time.After(100 * time.Millisecond):
	}
}

// requireAdmitted waits (at most about a second beyond after) for
// admitted and returns the release, failing if it came before after.
func requireAdmitted(t *testing.T, admitted <-chan func(), start time.Time, after time.Duration) func() {
	t.Helper()
	select {
	case release, ok := <-admitted:
		require.True(t, ok, "the wait failed")
		require.GreaterOrEqual(t, time.Since(start), after, "admitted early")
		return release
	case <-time.After(after + 1500*time.Millisecond):
		t.Fatalf("not admitted %s after it should have been", time.Since(start)-after)
		return nil
	}
}

func TestBulkGateWithoutLiveTrafficAdmitsAll(t *testing.T) {
	g := newBulkGate(1, nil)
	for range 10 {
		release, err := g.enter(context.Background(), "acct_backlog", backlogged)
		require.NoError(t, err)
		defer release()
	}
	require.Zero(t, g.running, "without live traffic nothing is counted")
}

func TestBulkGateLetsStreamsThrough(t *testing.T) {
	g := newBulkGate(1, nil)
	g.live("acct_live")
	hold, err := g.enter(context.Background(), "acct_backlog", backlogged)
	require.NoError(t, err)
	defer hold()
	// Full; a bulk delivery on time (not a backlog) is not held.
	done := make(chan struct{})
	go func() {
		defer close(done)
		release, err := g.enter(context.Background(), "acct_backlog", bulkBacklogLag)
		if err == nil {
			release()
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("a bulk delivery on time waited")
	}
}

func TestBulkGateOff(t *testing.T) {
	g := newBulkGate(-1, nil)
	g.live("acct_live")
	for range 10 {
		release, err := g.enter(context.Background(), "acct_backlog", backlogged)
		require.NoError(t, err)
		defer release()
	}
}

func TestBulkGateLimitsBacklogWhileLive(t *testing.T) {
	ctx := context.Background()
	g := newTestGate(2)
	g.live("acct_live")
	stop := keepLive(g)
	defer stop()

	a, err := g.enter(ctx, "acct_backlog", backlogged)
	require.NoError(t, err)
	b, err := g.enter(ctx, "acct_backlog", backlogged)
	require.NoError(t, err)
	third := enterAsync(t, ctx, g)
	waitersAre(t, g, 1)
	fourth := enterAsync(t, ctx, g)
	waitersAre(t, g, 2)
	requireWaiting(t, third)
	requireWaiting(t, fourth)

	// Each release admits one waiter, the first come first.
	start := time.Now()
	a()
	a() // idempotent: admits no second waiter
	c := requireAdmitted(t, third, start, 0)
	requireWaiting(t, fourth)
	b()
	d := requireAdmitted(t, fourth, start, 0)
	c()
	d()
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Zero(t, g.running)
	require.Empty(t, g.waiters)
}

func TestBulkGateOpensWhenLiveTrafficStops(t *testing.T) {
	g := newTestGate(1)
	g.live("acct_live")
	hold, err := g.enter(context.Background(), "acct_backlog", backlogged)
	require.NoError(t, err)
	defer hold()
	start := time.Now()
	waiter := enterAsync(t, context.Background(), g)
	// No live delivery since: the gate opens when the window ends.
	requireAdmitted(t, waiter, start, bulkLiveWindow-150*time.Millisecond)()
}

func TestBulkGateHoldIsBounded(t *testing.T) {
	g := newBulkGate(1, nil)
	g.maxWait = time.Hour
	// Never released: a slow endpoint's request outlives bulkHoldMax; a
	// waiter gets in once that has passed. The hold's time runs from its
	// own start, so start is taken before it (taken after, a loaded
	// machine's few ms between the two made "admitted early" of a waiter
	// admitted on time: 495 ms).
	start := time.Now()
	holdFull(t, g)
	waiter := enterAsync(t, context.Background(), g)
	requireAdmitted(t, waiter, start, bulkHoldMax)()
}

func TestBulkGateWaitIsBounded(t *testing.T) {
	g := newTestGate(1)
	g.maxWait = 300 * time.Millisecond
	holdFull(t, g)
	start := time.Now()
	waiter := enterAsync(t, context.Background(), g)
	// Over the limit, after the longest wait: a backlog slows, never stops.
	requireAdmitted(t, waiter, start, g.maxWait)()
}

func TestBulkGateWaitEndsWithItsContext(t *testing.T) {
	g := newTestGate(1)
	holdFull(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	waiter := enterAsync(t, ctx, g)
	requireWaiting(t, waiter)
	cancel()
	select {
	case _, ok := <-waiter:
		require.False(t, ok, "admitted after its context ended")
	case <-time.After(time.Second):
		t.Fatal("still waiting after its context ended")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Empty(t, g.waiters)
}

// waitersAre waits (a second at most) until g has n waiters.
func waitersAre(t *testing.T, g *bulkGate, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.waiters) == n
	}, time.Second, time.Millisecond)
}

// holdFull keeps g live (another account's traffic) until the test ends
// and takes its only slot (a limit of 1) until then.
func holdFull(t *testing.T, g *bulkGate) {
	t.Helper()
	g.live("acct_live")
	t.Cleanup(keepLive(g))
	hold, err := g.enter(context.Background(), "acct_backlog", backlogged)
	require.NoError(t, err)
	t.Cleanup(hold)
}

// keepLive marks live traffic every 20 ms until stopped.
func keepLive(g *bulkGate) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				g.live("acct_live")
			}
		}
	}()
	return func() { close(done) }
}

// An account's own live deliveries never hold back its bulk ones, and the
// live account that counts is any other one.
func TestBulkGateIgnoresTheAccountsOwnLiveTraffic(t *testing.T) {
	g := newTestGate(1)
	g.live("acct_backlog")
	for range 5 {
		release, err := g.enter(context.Background(), "acct_backlog", backlogged)
		require.NoError(t, err)
		defer release()
	}
	// Another account goes live, then the backlog's own account again:
	// the other one still counts.
	g.live("acct_other")
	g.live("acct_backlog")
	hold, err := g.enter(context.Background(), "acct_third", backlogged)
	require.NoError(t, err)
	defer hold()
	requireWaiting(t, enterAsync(t, context.Background(), g))
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Equal(t, 1, g.running, "only what entered while another account was live is counted")
}
