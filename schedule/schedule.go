// Package schedule is webhookd's fixed retry schedule: ten attempts, the
// first immediately and each later one 30 s·(2^(n-1)−1) after the end of the
// previous attempt, about 8.44 hours in all (the seed's retry policy).
//
//	attempt  1  2    3    4     5     6     7      8      9      10
//	delay    0  30s  90s  210s  450s  930s  1890s  3810s  7650s  15330s
package schedule

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// MaxAttempts is the number of attempts a delivery gets per generation
// before it is dead.
const MaxAttempts = 10

// ScaleDefault is the production scale: the table as it stands.
const ScaleDefault = 1.0

// delays[n-1] is the delay before attempt n.
var delays = [MaxAttempts]time.Duration{
	0,
	30 * time.Second,
	90 * time.Second,
	210 * time.Second,
	450 * time.Second,
	930 * time.Second,
	1890 * time.Second,
	3810 * time.Second,
	7650 * time.Second,
	15330 * time.Second,
}

// ErrInvalidScale is returned for a scale that is not a finite number > 0.
var ErrInvalidScale = errors.New("retry scale must be a finite number greater than 0")

// Delay is the unscaled delay before attempt n (1-based), counted from the
// end of attempt n-1. ok is false when n is outside 1..MaxAttempts.
func Delay(n int) (d time.Duration, ok bool) {
	if n < 1 || n > MaxAttempts {
		return 0, false
	}
	return delays[n-1], true
}

// Total is the sum of all delays: 30,390 s.
func Total() time.Duration {
	var total time.Duration
	for _, d := range delays {
		total += d
	}
	return total
}

// Schedule is the table under a scale factor. Scale 1 is production; 0.001
// turns the 8.44 hours into about 30 seconds for staging and tests.
type Schedule struct {
	scale float64
}

// New returns the schedule under scale, which must be a finite number > 0.
func New(scale float64) (*Schedule, error) {
	if scale <= 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
		return nil, fmt.Errorf("%w (got %v)", ErrInvalidScale, scale)
	}
	return &Schedule{scale: scale}, nil
}

// Scale is the schedule's scale factor.
func (s *Schedule) Scale() float64 { return s.scale }

// Scaled reports whether the scale is not 1 (a warning belongs in the log).
func (s *Schedule) Scaled() bool { return s.scale != ScaleDefault }

// Delay is the scaled delay before attempt n (1-based); ok is false when
// there is no attempt n.
func (s *Schedule) Delay(n int) (time.Duration, bool) {
	d, ok := Delay(n)
	if !ok {
		return 0, false
	}
	if s.scale == ScaleDefault {
		return d, true
	}
	return time.Duration(math.Round(float64(d) * s.scale)), true
}

// BackOff returns a cenkalti/backoff/v4 BackOff that yields the nine delays
// between the ten attempts and then backoff.Stop.
func (s *Schedule) BackOff() backoff.BackOff {
	return &scheduleBackOff{schedule: s}
}

type scheduleBackOff struct {
	schedule *Schedule
	// next is the attempt whose delay NextBackOff returns next.
	next int
}

func (b *scheduleBackOff) NextBackOff() time.Duration {
	if b.next < 2 {
		b.next = 2
	}
	d, ok := b.schedule.Delay(b.next)
	if !ok {
		return backoff.Stop
	}
	b.next++
	return d
}

func (b *scheduleBackOff) Reset() { b.next = 2 }
