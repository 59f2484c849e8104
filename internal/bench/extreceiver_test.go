package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// The external receiver runs in another process and counts every request,
// a second one for the same event too: the drain's duplicate check reads
// these counts.
func TestExternalReceiverCounts(t *testing.T) {
	s := &stage{}
	t.Cleanup(s.close)
	recv, url, err := s.startExternalReceiver()
	require.NoError(t, err)
	require.NotNil(t, recv.ext)
	require.True(t, strings.HasPrefix(url, "http://"+receiverHost+":"), url)

	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for _, id := range []string{"evt_1", "evt_1", "evt_2"} {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"a":1}`))
		require.NoError(t, err)
		req.Header.Set("Mono-Event-Id", id)
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.Zero(t, recv.requests.Load(), "nothing is counted in this process")
	require.NoError(t, recv.refresh())
	require.EqualValues(t, 3, recv.requests.Load(), "the repeated event is counted twice")
	require.EqualValues(t, 3, recv.ok.Load())
	require.Zero(t, recv.bad.Load())

	s.close()
	require.Error(t, recv.refresh(), "the process ends with the stage")
}

// TestDrainExternalReceiverSmoke runs scenarios 0 and 1 with the receiver
// in a process of its own, tiny: both drain fully and pass the duplicate
// check. The figures mean nothing at this size.
func TestDrainExternalReceiverSmoke(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	var progress lockedBuffer
	res, err := Run(ctx, &Config{
		DatabaseURL:      testdb.BaseURL(),
		Scenarios:        []int{ScenarioReference, ScenarioDrain},
		Backlog:          300,
		ExternalReceiver: true,
		Timeout:          time.Minute,
		Out:              &out,
		Progress:         io.MultiWriter(&progress, logWriter{t}),
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)
	require.Equal(t, 300, res.Reference.Deliveries)
	require.Equal(t, 300, res.Drain.Deliveries)
	require.Contains(t, out.String(), "**External receiver**")
	require.Equal(t, 2, strings.Count(progress.String(), "external receiver: process"), "one receiver process for River and one for the drain")
}

// lockedBuffer is a bytes.Buffer the scenarios' goroutines can write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
