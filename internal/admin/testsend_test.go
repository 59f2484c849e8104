package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testdns"
)

// testSendAnswer is the answer of POST /v1/webhooks/{id}/test, its attempt
// left to each test to read.
type testSendAnswer struct {
	DeliveryID string          `json:"delivery_id"`
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	Succeeded  bool            `json:"succeeded"`
	Attempt    json.RawMessage `json:"attempt"`
}

// A test send to a host name that resolves to a private address: the
// account is told "the address is not allowed", in the answer and in the
// stored attempt, never which address or range (or a test send would map the
// internal DNS); the server log names the range, with the webhook id, once,
// and no part of the URL.
func TestSendTestEventBlockedAddress(t *testing.T) {
	t.Parallel()

	const (
		host     = "hooks.internal.example.test"
		resolved = "10.20.30.40"
		rng      = "10.0.0.0/8"
		secret   = "SECRET123"
	)

	// The API with the strict policy, its test sends going through a worker
	// whose client resolves host to resolved. The dial is refused before
	// connecting, so the address is never contacted.
	pool := testdb.New(t)
	keys, err := keyring.Parse(keyring.Generate())
	require.NoError(t, err)
	client, err := outbound.NewClient(nil, &outbound.ClientConfig{
		Timeout:  2 * time.Second,
		Resolver: testdns.Start(t, map[string][]netip.Addr{host: {netip.MustParseAddr(resolved)}}),
	})
	require.NoError(t, err)
	worker, err := engine.NewWorker(pool, keys, client, &engine.WorkerConfig{HTTPTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(worker.Close)
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)
	core, logs := observer.New(zap.InfoLevel)
	api, err := admin.New(pool, enqueuer, keys, &admin.Config{BootstrapAdminKey: adminKey, Logger: zap.New(core), Sender: worker})
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	b := &testBundle{baseURL: srv.URL, client: srv.Client()}

	// A host name is accepted at create time: its addresses are checked
	// when they are dialled.
	hook := b.createWebhook(t, "acct_blocked", fmt.Sprintf("http://%s:8443/hook?token=%s", host, secret))
	account := bearer(b.createKey(t, store.ScopeAccount, "acct_blocked").Key)

	requireGeneric := func(t *testing.T, kind, message *string) {
		t.Helper()
		require.NotNil(t, kind)
		require.Equal(t, outbound.ErrorKindBlockedAddress, *kind)
		require.NotNil(t, message)
		require.Contains(t, *message, "the address is not allowed")
		for _, leak := range []string{resolved, "10.0.0.0", "/8", "private", host, secret} {
			require.NotContains(t, *message, leak)
		}
	}

	type testAttempt struct {
		StatusCode   *int    `json:"status_code"`
		ErrorKind    *string `json:"error_kind"`
		ErrorMessage *string `json:"error_message"`
	}
	var res testSendAnswer
	var attempt testAttempt
	answer := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test", auth: account})
	jsonBody(t, answer, http.StatusOK, &res)
	require.False(t, res.Succeeded)
	require.NoError(t, json.Unmarshal(res.Attempt, &attempt))
	require.Nil(t, attempt.StatusCode)
	requireGeneric(t, attempt.ErrorKind, attempt.ErrorMessage)
	require.NotContains(t, string(answer.body), resolved)
	require.NotContains(t, string(answer.body), rng)

	// The deliveries API, as the account reads it, and the stored row the
	// dashboard shows.
	var d apitype.Delivery
	jsonBody(t, b.do(t, request{method: http.MethodGet, path: "/v1/deliveries/" + res.DeliveryID, auth: account}), http.StatusOK, &d)
	require.Len(t, d.Attempts, 1)
	requireGeneric(t, d.Attempts[0].ErrorKind, d.Attempts[0].ErrorMessage)
	var kind, message *string
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT error_kind, error_message FROM attempt_log WHERE delivery_id = $1`, res.DeliveryID).Scan(&kind, &message))
	requireGeneric(t, kind, message)

	// The operator's log: one warning, with the webhook id and the range.
	warnings := logs.FilterLevelExact(zap.WarnLevel).All()
	require.Len(t, warnings, 1, "one warning per blocked attempt")
	fields := warnings[0].ContextMap()
	require.Equal(t, hook.ID, fields["webhook_id"])
	require.Equal(t, "acct_blocked", fields["account_id"])
	require.Equal(t, res.DeliveryID, fields["delivery_id"])
	reason, ok := fields["reason"].(string)
	require.True(t, ok, "the warning has a reason: %v", fields)
	require.Contains(t, reason, rng)
	require.Contains(t, reason, resolved)
	for _, entry := range logs.All() {
		logged := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		for _, leak := range []string{secret, "token=", "/hook", host} {
			require.NotContains(t, logged, leak, "no part of the URL in the log")
		}
	}

	// The same for every test send: one more warning, nothing more told.
	jsonBody(t, b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test", auth: account}), http.StatusOK, &res)
	attempt = testAttempt{}
	require.NoError(t, json.Unmarshal(res.Attempt, &attempt))
	requireGeneric(t, attempt.ErrorKind, attempt.ErrorMessage)
	require.True(t, strings.HasPrefix(*attempt.ErrorMessage, "the address is not allowed"))
	require.Len(t, logs.FilterLevelExact(zap.WarnLevel).All(), 2)
}
