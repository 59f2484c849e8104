package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

const adminKey = "client-test-admin-key-0123456789"

// testBundle is an in-process webhookd and a client of it.
type testBundle struct {
	baseURL string
	pool    *pgxpool.Pool
	client  *client.Client
	signals *server.TestSignals
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	signals := &server.TestSignals{}
	signals.ReplayBatch.Done.Init()
	srv := testserver.Start(t, func(c *server.Config) {
		c.TestSignals = signals
		c.BootstrapAdminKey = adminKey
		c.RetryScale = 0.0001
		c.DBMaxConns = 8
		c.MaxWorkers = 20
	})
	b := &testBundle{baseURL: srv.BaseURL, pool: srv.Pool(), signals: signals}
	var err error
	b.client, err = client.New(b.baseURL, adminKey, nil)
	require.NoError(t, err)
	return b
}

func (b *testBundle) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// waitState polls until delivery id is in state.
func waitState(t *testing.T, c *client.Client, id, state string) *client.Delivery {
	t.Helper()
	var d *client.Delivery
	testwait.For(t, 15*time.Second, func() (bool, string) {
		var err error
		d, err = c.GetDelivery(context.Background(), id)
		require.NoError(t, err)
		return d.State == state, fmt.Sprintf("delivery %s is %s, not %s", id, d.State, state)
	})
	return d
}

func requireAPIError(t *testing.T, err error, status int, code, field string) *client.APIError {
	t.Helper()
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, status, apiErr.Status, apiErr.Error())
	require.Equal(t, code, apiErr.Code, apiErr.Error())
	require.Equal(t, field, apiErr.Field, apiErr.Error())
	return apiErr
}

// Every method once, against a running server.
func TestClientMethods(t *testing.T) {
	t.Parallel()

	b := setup(t)
	ctx := context.Background()
	c := b.client
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))

	require.NoError(t, c.Health(ctx))
	require.NoError(t, c.Ready(ctx))

	// Webhooks.
	hook, err := c.CreateWebhook(ctx, &client.CreateWebhookParams{AccountID: "acct_client", URL: rcv.URL + "/hook", Description: "first"})
	require.NoError(t, err)
	require.Regexp(t, `^wh_[0-9a-f]{32}$`, hook.ID)
	require.Regexp(t, `^whsec_`, hook.Secret)
	require.Equal(t, "acct_client", hook.AccountID)

	_, err = c.CreateWebhook(ctx, &client.CreateWebhookParams{AccountID: "acct_client", URL: "ftp://x"})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "unsupported_scheme", "url")

	page, err := c.ListWebhooks(ctx, &client.ListWebhooksParams{AccountID: "acct_client", Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.Equal(t, hook.ID, page.Data[0].ID)
	require.Empty(t, page.Data[0].Secret)
	require.Empty(t, page.NextCursor)

	got, err := c.GetWebhook(ctx, hook.ID)
	require.NoError(t, err)
	require.Equal(t, "first", got.Description)
	require.Empty(t, got.Secret)

	secret, err := c.RevealSecret(ctx, hook.ID)
	require.NoError(t, err)
	require.Equal(t, hook.Secret, secret)

	desc := "renamed"
	updated, err := c.UpdateWebhook(ctx, hook.ID, &client.UpdateWebhookParams{Description: &desc})
	require.NoError(t, err)
	require.Equal(t, "renamed", updated.Description)

	// Events: a generated key, then a given one sent twice.
	ev, err := c.SendEvent(ctx, &client.EventParams{AccountID: "acct_client", Type: "payment.succeeded", Data: map[string]any{"amount": "12.50"}})
	require.NoError(t, err)
	require.False(t, ev.Repeat)
	require.NotEmpty(t, ev.IdempotencyKey)
	require.Len(t, ev.Deliveries, 1)
	require.Equal(t, hook.ID, ev.Deliveries[0].WebhookID)

	again, err := c.SendEvent(ctx, &client.EventParams{AccountID: "acct_client", Type: "payment.succeeded", Data: map[string]any{"amount": "12.50"}, IdempotencyKey: ev.IdempotencyKey})
	require.NoError(t, err)
	require.True(t, again.Repeat)
	require.Equal(t, ev.ID, again.ID)

	found, err := c.FindEvent(ctx, "acct_client", ev.IdempotencyKey)
	require.NoError(t, err)
	require.Equal(t, ev.ID, found.ID)

	full, err := c.GetEvent(ctx, ev.ID)
	require.NoError(t, err)
	require.Equal(t, "payment.succeeded", full.Type)
	require.Equal(t, ev.IdempotencyKey, *full.IdempotencyKey)
	require.Len(t, full.Deliveries, 1)
	require.Contains(t, string(full.Body), `"amount":"12.50"`)

	batch, err := c.SendEvents(ctx, []*client.EventParams{
		{AccountID: "acct_client", Type: "a.one", Data: json.RawMessage(`{}`)},
		{AccountID: "acct_client", Type: "a.two", Data: json.RawMessage(`{}`), IdempotencyKey: "given-key"},
	})
	require.NoError(t, err)
	require.Len(t, batch, 2)
	require.NotEmpty(t, batch[0].IdempotencyKey)
	require.Equal(t, "given-key", batch[1].IdempotencyKey)
	require.False(t, batch[1].Repeat)

	_, err = c.SendEvents(ctx, []*client.EventParams{
		{AccountID: "acct_client", Type: "ok", Data: json.RawMessage(`{}`)},
		{AccountID: "acct_client", Type: "Bad Type", Data: json.RawMessage(`{}`)},
	})
	apiErr := requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_batch", "events")
	require.Len(t, apiErr.Items, 1)
	require.Equal(t, 1, apiErr.Items[0].Index)
	require.Equal(t, "type", apiErr.Items[0].Field)

	// Deliveries and replays.
	id := ev.Deliveries[0].ID
	d := waitState(t, c, id, client.StateSucceeded)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, 200, *d.Attempts[0].StatusCode)

	list, err := c.ListDeliveries(ctx, &client.DeliveryFilter{WebhookID: hook.ID, EventType: "payment.succeeded", CreatedAfter: time.Now().Add(-time.Hour), Limit: 5})
	require.NoError(t, err)
	require.Len(t, list.Data, 1)
	require.Equal(t, id, list.Data[0].ID)
	require.Nil(t, list.Data[0].Attempts)

	_, err = c.ListDeliveries(ctx, &client.DeliveryFilter{State: client.StatePending})
	requireAPIError(t, err, http.StatusUnprocessableEntity, "missing_filter", "account_id")

	replayed, err := c.ReplayDelivery(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 2, replayed.Generation)
	require.Len(t, replayed.Replays, 1)
	d = waitState(t, c, id, client.StateSucceeded)
	require.Len(t, d.Attempts, 2)

	for _, e := range batch {
		waitState(t, c, e.Deliveries[0].ID, client.StateSucceeded)
	}
	rb, err := c.ReplayDeliveries(ctx, &client.ReplayFilter{WebhookID: hook.ID, State: client.StateSucceeded, CreatedAfter: time.Now().Add(-time.Hour)})
	require.NoError(t, err)
	require.Equal(t, 3, rb.Total)
	require.Equal(t, "acct_client", rb.Filter.AccountID)
	require.Equal(t, rb.ID, b.signals.ReplayBatch.Done.WaitOrTimeout(t), "the bulk replay worker finished the batch")
	rb, err = c.GetReplay(ctx, rb.ID)
	require.NoError(t, err)
	require.Equal(t, "done", rb.State)
	require.Equal(t, 3, rb.Replayed)

	// Keys.
	key, err := c.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopeAccount, AccountID: "acct_client", Description: "svc"})
	require.NoError(t, err)
	require.NotEmpty(t, key.Key)
	keys, err := c.ListKeys(ctx, &client.ListKeysParams{AccountID: "acct_client"})
	require.NoError(t, err)
	require.Len(t, keys.Data, 1)
	require.Equal(t, key.ID, keys.Data[0].ID)
	require.Empty(t, keys.Data[0].Key)

	scoped, err := client.New(b.baseURL, key.Key, nil)
	require.NoError(t, err)
	_, err = scoped.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopeAdmin})
	requireAPIError(t, err, http.StatusForbidden, "insufficient_scope", "Authorization")
	_, err = scoped.GetWebhook(ctx, hook.ID)
	require.NoError(t, err)

	require.NoError(t, c.RevokeKey(ctx, key.ID))
	_, err = scoped.GetWebhook(ctx, hook.ID)
	requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key", "Authorization")

	// Delete: gone afterwards.
	require.NoError(t, c.DeleteWebhook(ctx, hook.ID))
	_, err = c.GetWebhook(ctx, hook.ID)
	apiErr = requireAPIError(t, err, http.StatusNotFound, "not_found", "id")
	require.Equal(t, "webhook not found", apiErr.Message)
	require.Equal(t, "webhookd: 404 not_found (id): webhook not found", apiErr.Error())

	_, err = c.GetWebhook(ctx, "../keys")
	require.ErrorContains(t, err, "is not an id")
}

// proxy forwards requests to upstream, counting them; mode decides, per
// request number (from 1), whether to forward, to forward and then drop
// the connection without answering, or to answer a status itself.
type proxy struct {
	url      string
	upstream string
	n        atomic.Int32
	mode     func(n int) string
}

func newProxy(t *testing.T, upstream string, mode func(n int) string) *proxy {
	t.Helper()
	p := &proxy{upstream: upstream, mode: mode}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	p.url = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *proxy) count() int { return int(p.n.Load()) }

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := p.mode(int(p.n.Add(1)))
	switch mode {
	case "503":
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case "429":
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	body, _ := io.ReadAll(r.Body)
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if mode == "drop" {
		// The server has done the work; the client never hears of it.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func onFirst(first string) func(int) string {
	return func(n int) string {
		if n == 1 {
			return first
		}
		return "forward"
	}
}

// fast retries for tests.
var fastRetries = &client.Config{RetryInitialInterval: 10 * time.Millisecond}

// An enqueue whose answer is lost is retried with the same idempotency
// key: one event, and the caller gets it.
func TestClientRetriedEnqueue(t *testing.T) {
	t.Parallel()

	b := setup(t)
	ctx := context.Background()
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	_, err := b.client.CreateWebhook(ctx, &client.CreateWebhookParams{AccountID: "acct_retry", URL: rcv.URL + "/hook"})
	require.NoError(t, err)

	t.Run("DroppedAfterForwarding", func(t *testing.T) {
		p := newProxy(t, b.baseURL, onFirst("drop"))
		c, err := client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		before := b.count(t, "events")
		ev, err := c.SendEvent(ctx, &client.EventParams{AccountID: "acct_retry", Type: "order.created", Data: map[string]int{"n": 1}})
		require.NoError(t, err)
		require.Equal(t, 2, p.count(), "one dropped attempt, one retry")
		require.True(t, ev.Repeat, "the retry found the event the first attempt created")
		require.Equal(t, before+1, b.count(t, "events"))
		found, err := b.client.FindEvent(ctx, "acct_retry", ev.IdempotencyKey)
		require.NoError(t, err)
		require.Equal(t, ev.ID, found.ID)
	})

	t.Run("ServiceUnavailableOnce", func(t *testing.T) {
		p := newProxy(t, b.baseURL, onFirst("503"))
		c, err := client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		before := b.count(t, "events")
		ev, err := c.SendEvent(ctx, &client.EventParams{AccountID: "acct_retry", Type: "order.created", Data: map[string]int{"n": 2}})
		require.NoError(t, err)
		require.Equal(t, 2, p.count())
		require.False(t, ev.Repeat)
		require.Equal(t, before+1, b.count(t, "events"))
	})

	t.Run("BatchDroppedAfterForwarding", func(t *testing.T) {
		p := newProxy(t, b.baseURL, onFirst("drop"))
		c, err := client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		before := b.count(t, "events")
		res, err := c.SendEvents(ctx, []*client.EventParams{
			{AccountID: "acct_retry", Type: "order.created", Data: map[string]int{"n": 3}},
			{AccountID: "acct_retry", Type: "order.created", Data: map[string]int{"n": 4}},
		})
		require.NoError(t, err)
		require.Equal(t, 2, p.count())
		require.True(t, res[0].Repeat)
		require.True(t, res[1].Repeat)
		require.Equal(t, before+2, b.count(t, "events"))
	})

	t.Run("TooManyRequestsOnce", func(t *testing.T) {
		p := newProxy(t, b.baseURL, onFirst("429"))
		c, err := client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		_, err = c.ListWebhooks(ctx, &client.ListWebhooksParams{AccountID: "acct_retry"})
		require.NoError(t, err)
		require.Equal(t, 2, p.count())
	})
}

// A 4xx is never retried; a lasting 5xx is retried MaxRetries times; a
// cancelled context stops the retries.
func TestClientRetryBounds(t *testing.T) {
	t.Parallel()

	b := setup(t)
	ctx := context.Background()

	t.Run("ClientErrorNotRetried", func(t *testing.T) {
		p := newProxy(t, b.baseURL, func(int) string { return "forward" })
		c, err := client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		before := b.count(t, "events")
		_, err = c.SendEvent(ctx, &client.EventParams{AccountID: "acct_4xx", Type: "Not A Type", Data: map[string]int{}})
		requireAPIError(t, err, http.StatusUnprocessableEntity, "invalid_event_type", "type")
		_, err = c.GetDelivery(ctx, "dlv_00000000000000000000000000000000")
		requireAPIError(t, err, http.StatusNotFound, "not_found", "id")
		bad, err := client.New(p.url, "wrong-key", fastRetries)
		require.NoError(t, err)
		_, err = bad.ListKeys(ctx, nil)
		requireAPIError(t, err, http.StatusUnauthorized, "invalid_api_key", "Authorization")
		require.Equal(t, 3, p.count(), "one request each")
		require.Equal(t, before, b.count(t, "events"))
	})

	t.Run("ServerErrorRetriedBounded", func(t *testing.T) {
		p := newProxy(t, b.baseURL, func(int) string { return "503" })
		c, err := client.New(p.url, adminKey, &client.Config{MaxRetries: 2, RetryInitialInterval: time.Millisecond})
		require.NoError(t, err)
		_, err = c.ListKeys(ctx, nil)
		requireAPIError(t, err, http.StatusServiceUnavailable, "", "")
		require.Equal(t, 3, p.count())
	})

	t.Run("DefaultMaxRetries", func(t *testing.T) {
		p := newProxy(t, b.baseURL, func(int) string { return "drop" })
		c, err := client.New(p.url, adminKey, fastRetries)
		require.NoError(t, err)
		_, err = c.ListKeys(ctx, nil)
		require.Error(t, err)
		var apiErr *client.APIError
		require.NotErrorAs(t, err, &apiErr, "a network error is no API error")
		require.Equal(t, 1+client.MaxRetriesDefault, p.count())
	})

	t.Run("NoRetries", func(t *testing.T) {
		p := newProxy(t, b.baseURL, func(int) string { return "503" })
		c, err := client.New(p.url, adminKey, &client.Config{MaxRetries: -1})
		require.NoError(t, err)
		_, err = c.ListKeys(ctx, nil)
		require.Error(t, err)
		require.Equal(t, 1, p.count())
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		p := newProxy(t, b.baseURL, func(int) string { return "503" })
		c, err := client.New(p.url, adminKey, &client.Config{RetryInitialInterval: time.Hour})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.ListKeys(ctx, nil)
		require.Error(t, err)
		require.Less(t, time.Since(start), 5*time.Second)
		require.Equal(t, 1, p.count())
	})

	t.Run("AttemptTimeout", func(t *testing.T) {
		// A server that never answers: each attempt ends at Timeout.
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		var accepted atomic.Int32
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				t.Cleanup(func() { conn.Close() })
			}
		}()
		t.Cleanup(func() { ln.Close() })
		c, err := client.New("http://"+ln.Addr().String(), adminKey, &client.Config{Timeout: 50 * time.Millisecond, MaxRetries: 1, RetryInitialInterval: time.Millisecond})
		require.NoError(t, err)
		_, err = c.ListKeys(ctx, nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, int32(2), accepted.Load())
	})
}

func TestClientNew(t *testing.T) {
	t.Parallel()

	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "http://h/?q=1"} {
		_, err := client.New(bad, "k", nil)
		require.Error(t, err, bad)
	}
	_, err := client.New("http://h", "k", &client.Config{Timeout: -1})
	require.ErrorContains(t, err, "Timeout")
	c, err := client.New("http://127.0.0.1:1/", "k", &client.Config{MaxRetries: -1})
	require.NoError(t, err)
	require.Error(t, c.Health(context.Background()))
}
