package engine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/testdb"
)

// TrySlot takes the slots a webhook's deliveries take, never waiting: up
// to the webhook's cap (WebhookConcurrencyStart for a new one, or the
// configured cap when lower), then refused with a wait of a second or
// more; a release with an answer grows the cap as a delivery's would.
func TestTrySlot(t *testing.T) {
	t.Parallel()

	newWorker := func(t *testing.T, concurrency int) *engine.Worker {
		t.Helper()
		keys, err := keyring.Parse(keyring.Generate())
		require.NoError(t, err)
		client, err := outbound.NewClient(nil, nil)
		require.NoError(t, err)
		w, err := engine.NewWorker(testdb.New(t), keys, client, &engine.WorkerConfig{WebhookConcurrency: concurrency})
		require.NoError(t, err)
		t.Cleanup(w.Close)
		return w
	}
	take := func(t *testing.T, w *engine.Worker, webhookID string, n int) []func(*outbound.Result) {
		t.Helper()
		var releases []func(*outbound.Result)
		for range n {
			release, _, ok := w.TrySlot(webhookID)
			require.True(t, ok)
			releases = append(releases, release)
		}
		_, wait, ok := w.TrySlot(webhookID)
		require.False(t, ok)
		require.GreaterOrEqual(t, wait, time.Second)
		return releases
	}

	t.Run("NewWebhookCap", func(t *testing.T) {
		t.Parallel()
		w := newWorker(t, 0)

		releases := take(t, w, "wh_a", engine.WebhookConcurrencyStart)
		// Another webhook has slots of its own.
		take(t, w, "wh_b", engine.WebhookConcurrencyStart)
		// An answer frees its slot and grows the cap by one.
		releases[0](&outbound.Result{StatusCode: 200, Duration: time.Millisecond})
		take(t, w, "wh_a", 2)
	})

	t.Run("ConfiguredCapBelowStart", func(t *testing.T) {
		t.Parallel()
		w := newWorker(t, 3)

		take(t, w, "wh_a", 3)
	})
}
