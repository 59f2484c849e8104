package schedule

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"
)

func TestDelay(t *testing.T) {
	t.Parallel()

	for n, want := range map[int]time.Duration{
		1: 0, 2: 30 * time.Second, 3: 90 * time.Second, 4: 210 * time.Second,
		5: 450 * time.Second, 6: 930 * time.Second, 7: 1890 * time.Second,
		8: 3810 * time.Second, 9: 7650 * time.Second, 10: 15330 * time.Second,
	} {
		got, ok := Delay(n)
		require.True(t, ok, "attempt %d", n)
		require.Equal(t, want, got, "attempt %d", n)
		// The closed form from the seed: 30 s·(2^(n-1)−1).
		require.Equal(t, time.Duration(30*((1<<(n-1))-1))*time.Second, got)
	}
	for _, n := range []int{-1, 0, 11, 100} {
		_, ok := Delay(n)
		require.False(t, ok, "attempt %d", n)
	}
}

func TestTotal(t *testing.T) {
	t.Parallel()

	require.Equal(t, 30390*time.Second, Total())
	// "All ten attempts complete within approximately 8.4 hours."
	require.InDelta(t, 8.44, Total().Hours(), 0.01)
}

func TestNew(t *testing.T) {
	t.Parallel()

	for _, scale := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		_, err := New(scale)
		require.ErrorIs(t, err, ErrInvalidScale, "scale %v", scale)
	}

	s, err := New(1)
	require.NoError(t, err)
	require.False(t, s.Scaled())

	s, err = New(0.001)
	require.NoError(t, err)
	require.True(t, s.Scaled())
	d, ok := s.Delay(2)
	require.True(t, ok)
	require.Equal(t, 30*time.Millisecond, d)
	d, _ = s.Delay(10)
	require.Equal(t, 15330*time.Millisecond, d)
}

func TestBackOff(t *testing.T) {
	t.Parallel()

	s, err := New(1)
	require.NoError(t, err)
	b := s.BackOff()

	var got []time.Duration
	for range 20 {
		d := b.NextBackOff()
		if d == backoff.Stop {
			break
		}
		got = append(got, d)
	}
	require.Len(t, got, MaxAttempts-1)
	for i, d := range got {
		want, _ := Delay(i + 2)
		require.Equal(t, want, d)
	}
	require.Equal(t, backoff.Stop, b.NextBackOff())

	b.Reset()
	require.Equal(t, 30*time.Second, b.NextBackOff())
}

// The retry helper of cenkalti/backoff drives exactly ten attempts.
func TestBackOffWithRetry(t *testing.T) {
	t.Parallel()

	s, err := New(0.00001)
	require.NoError(t, err)
	calls := 0
	err = backoff.Retry(func() error { calls++; return errors.New("fail") }, s.BackOff())
	require.Error(t, err)
	require.Equal(t, MaxAttempts, calls)
}
