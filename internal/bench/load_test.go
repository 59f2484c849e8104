package bench

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Even arrivals are one every 1/rate from the start.
func TestArrivalTimesEven(t *testing.T) {
	times := arrivalTimes(5, 100, false)
	require.Equal(t, []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 40 * time.Millisecond}, times)
}

// Poisson arrivals keep the rate on average, but their gaps vary as an
// exponential distribution's do (standard deviation equal to the mean, a
// share 1 - 1/e of them shorter than the mean), and they are the same
// instants every run.
func TestArrivalTimesPoisson(t *testing.T) {
	const total, rate = 20_000, 100
	times := arrivalTimes(total, rate, true)
	require.Len(t, times, total)
	require.Zero(t, times[0])
	mean := float64(10 * time.Millisecond)

	var sum, sumSq float64
	shorter := 0
	for i := 1; i < total; i++ {
		gap := float64(times[i] - times[i-1])
		require.GreaterOrEqual(t, gap, 0.0, "arrival %d before the one before it", i)
		sum += gap
		sumSq += gap * gap
		if gap < mean {
			shorter++
		}
	}
	n := float64(total - 1)
	avg := sum / n
	sd := math.Sqrt(sumSq/n - avg*avg)
	// With 20,000 gaps the sample mean's standard error is 0.7 % of the
	// mean: these bounds fail only for a schedule of another shape.
	require.InDelta(t, mean, avg, 0.05*mean, "mean gap")
	require.InDelta(t, mean, sd, 0.1*mean, "gaps' standard deviation (even arrivals have none)")
	require.InDelta(t, 1-1/math.E, float64(shorter)/n, 0.03, "share of gaps shorter than the mean")

	require.Equal(t, times, arrivalTimes(total, rate, true), "the same instants every run")
}
