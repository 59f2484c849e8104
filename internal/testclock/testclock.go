// Package testclock is a clock for tests that moves only when told, safe
// for concurrent use. It is also a River time generator
// (river.TestConfig{Time: ...}).
package testclock

import (
	"sync"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// Clock is a stubbed clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock standing at now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NowOrNil is Now, for River's TimeGenerator.
func (c *Clock) NowOrNil() *time.Time {
	now := c.Now()
	return &now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var _ rivertype.TimeGenerator = (*Clock)(nil)
