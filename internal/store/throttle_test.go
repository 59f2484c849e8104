package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
)

// Slots of a rate-limited webhook: reserved one interval apart from now
// on, a bounded reservation takes nothing beyond its bound, starts are
// claimed at least an interval apart, and the reserved-ahead slots are
// counted as throttled.
func TestThrottleSlots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.Tx(t)
	now := time.Now().Truncate(time.Microsecond)
	interval := store.RateInterval(4) // 250 ms
	require.Equal(t, 250*time.Millisecond, interval)
	require.Equal(t, 10*time.Millisecond, store.RateInterval(100))
	require.Equal(t, 333334*time.Microsecond, store.RateInterval(3), "rounded up: 3 never fit in less than a second")

	slot, err := store.ReserveSlot(ctx, db, "wh_thr_a", interval, now, time.Time{})
	require.NoError(t, err)
	require.True(t, slot.Equal(now), "the first slot is now")
	slots, err := store.ReserveSlots(ctx, db, []store.SlotRequest{{WebhookID: "wh_thr_a", Interval: interval}, {WebhookID: "wh_thr_b", Interval: interval}, {WebhookID: "wh_thr_a", Interval: interval}}, now)
	require.NoError(t, err)
	require.True(t, slots[0].Equal(now.Add(interval)), "%v", slots[0])
	require.True(t, slots[1].Equal(now), "another webhook's slots are its own")
	require.True(t, slots[2].Equal(now.Add(2*interval)), "%v", slots[2])

	_, err = store.ReserveSlot(ctx, db, "wh_thr_a", interval, now, now.Add(interval))
	require.ErrorIs(t, err, store.ErrNoSlotSoon, "the next slot (now + 3 intervals) is past the bound")
	slot, err = store.ReserveSlot(ctx, db, "wh_thr_a", interval, now, now.Add(3*interval))
	require.NoError(t, err)
	require.True(t, slot.Equal(now.Add(3*interval)))

	n, err := store.CountThrottled(ctx, db, now)
	require.NoError(t, err)
	require.Equal(t, int64(3), n, "wh_thr_a's three slots after now")

	// A claim that must start at once (latest = now): now or nothing.
	start, ok, err := store.ClaimStart(ctx, db, "wh_thr_a", interval, now, now)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, start.Equal(now))
	soon := now.Add(interval - time.Microsecond)
	next, ok, err := store.ClaimStart(ctx, db, "wh_thr_a", interval, soon, soon)
	require.NoError(t, err)
	require.False(t, ok, "too soon after the last start")
	require.True(t, next.Equal(now.Add(interval)), "%v", next)
	start, ok, err = store.ClaimStart(ctx, db, "wh_thr_a", interval, now.Add(interval), now.Add(interval))
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, start.Equal(now.Add(interval)))
	_, ok, err = store.ClaimStart(ctx, db, "wh_thr_a", interval, now.Add(interval), now.Add(interval))
	require.NoError(t, err)
	require.False(t, ok, "a second claim of the same microsecond is refused, not taken for the first")

	// Claims that may wait are given the next starts in turn, an interval
	// apart, up to their bound.
	at := now.Add(interval)
	for k := 2; k <= 4; k++ {
		start, ok, err = store.ClaimStart(ctx, db, "wh_thr_a", interval, at, at.Add(time.Second))
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, start.Equal(now.Add(time.Duration(k)*interval)), "claim %d: %v", k, start)
	}
	next, ok, err = store.ClaimStart(ctx, db, "wh_thr_a", interval, at, at.Add(3*interval-time.Microsecond))
	require.NoError(t, err)
	require.False(t, ok, "the next start (now + 5 intervals) is past the bound")
	require.True(t, next.Equal(now.Add(5*interval)), "%v", next)
	// A slot reserved now comes after the starts given (now + 4 intervals).
	slot, err = store.ReserveSlot(ctx, db, "wh_thr_a", interval, now, time.Time{})
	require.NoError(t, err)
	require.True(t, slot.Equal(now.Add(5*interval)), "%v", slot)

	_, ok, err = store.ClaimStart(ctx, db, "wh_thr_new", interval, now, now)
	require.NoError(t, err)
	require.True(t, ok, "a webhook without a row yet: the claim makes it")
	_, ok, err = store.ClaimStart(ctx, db, "wh_thr_new", interval, now, now)
	require.NoError(t, err)
	require.False(t, ok)
}
