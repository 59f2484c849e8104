package testwait

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUntil(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	require.True(t, Until(10*time.Second, func() bool { return n.Load() == 3 }))

	calls := 0
	start := time.Now()
	require.False(t, Until(50*time.Millisecond, func() bool { calls++; return false }))
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "gave up before the timeout")
	require.Greater(t, calls, 2, "checked again before giving up")
}

type fakeTB struct{ failed string }

func (*fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestForFailsWithTheLastState(t *testing.T) {
	t.Parallel()
	tb := &fakeTB{}
	i := 0
	For(tb, 30*time.Millisecond, func() (bool, string) { i++; return false, fmt.Sprint("check ", i) })
	require.Contains(t, tb.failed, fmt.Sprint("check ", i))

	tb = &fakeTB{}
	For(tb, time.Second, func() (bool, string) { return true, "" })
	require.Empty(t, tb.failed)
}
