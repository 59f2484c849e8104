package engine_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdns"
)

// A delivery whose host name resolves to a link-local address (the cloud
// metadata service): every attempt is recorded as blocked_address saying
// only "the address is not allowed", and logged once at warn with the
// webhook id and the range, never the URL.
func TestWorkerBlockedAddress(t *testing.T) {
	t.Parallel()

	const (
		host     = "metadata.internal.example.test"
		resolved = "169.254.169.254"
		rng      = "169.254.0.0/16"
		secret   = "SECRET123"
	)
	// Refused before connecting: the address is never contacted.
	client, err := outbound.NewClient(nil, &outbound.ClientConfig{
		Timeout:  2 * time.Second,
		Resolver: testdns.Start(t, map[string][]netip.Addr{host: {netip.MustParseAddr(resolved)}}),
	})
	require.NoError(t, err)
	core, logs := observer.New(zap.InfoLevel)
	rig := newFakeClockRigWith(t, fmt.Sprintf("http://%s/hook?token=%s", host, secret), "acct_blocked", client, zap.New(core))
	target := rig.target(t)

	for attempt := 1; attempt <= 2; attempt++ {
		rig.clock.Set(*rig.target(t).NextAttemptAt)
		result := rig.work(t, *target.JobID)
		require.Equal(t, river.EventKindJobSnoozed, result.EventKind, "a blocked attempt is retried")

		d, err := store.GetDelivery(context.Background(), rig.tx, rig.deliveryID)
		require.NoError(t, err)
		require.Len(t, d.AttemptList, attempt)
		a := d.AttemptList[attempt-1]
		require.Equal(t, outbound.ErrorKindBlockedAddress, *a.ErrorKind)
		require.Equal(t, outbound.BlockedMessage, *a.ErrorMessage)
		require.Contains(t, *a.ErrorMessage, "the address is not allowed")
		require.NotContains(t, *a.ErrorMessage, resolved)
		require.NotContains(t, *a.ErrorMessage, "169.254")
		require.NotContains(t, *a.ErrorMessage, "link-local")

		warnings := logs.FilterLevelExact(zap.WarnLevel).All()
		require.Len(t, warnings, attempt, "one warning per blocked attempt")
		fields := warnings[attempt-1].ContextMap()
		require.Equal(t, target.WebhookID, fields["webhook_id"])
		require.Equal(t, rig.deliveryID, fields["delivery_id"])
		require.Contains(t, fields["reason"], rng)
	}
	for _, entry := range logs.All() {
		logged := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		for _, leak := range []string{secret, "token=", "/hook", host} {
			require.NotContains(t, logged, leak, "no part of the URL in the log")
		}
	}
}
