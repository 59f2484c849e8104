package engine_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/webhookrule"
)

// The body is the envelope byte for byte — data compacted but not
// re-escaped, key order kept, the timestamp with six fractional digits and
// Z — and identical on every retry. Each attempt is signed with its own t,
// which an independent HMAC computation here verifies.
func TestDeliverBodyAndSignature(t *testing.T) {
	t.Parallel()

	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Sequence(500, 500, 200))
	webhookID, secret := createWebhook(t, b.pool, b.keys, "acct_body", recv.URL+"/hook?token=abc")

	occurred := time.Date(2022, 12, 29, 15, 42, 8, 325158000, time.UTC)
	res := enqueue(t, b.pool, b.enqueuer, &engine.Event{
		AccountID:  "acct_body",
		Type:       "bank_transfer_approved",
		Data:       rawJSON("{ \"z\": \"<b>&amp;</b>\",\n  \"a\": \"café ñ 日本 \\u00e9\", \"n\": [1, 2.50, {\"x\": null}] }"),
		OccurredAt: occurred,
	})
	require.Len(t, res.Deliveries, 1)
	require.Equal(t, webhookID, res.Deliveries[0].WebhookID)

	const want = `{"event":{"data":{"z":"<b>&amp;</b>","a":"café ñ 日本 \u00e9","n":[1,2.50,{"x":null}]},"type":"bank_transfer_approved"},"timestamp":"2022-12-29T15:42:08.325158Z"}`

	reqs := recv.Wait(t, 3, 30*time.Second)
	d := waitFinished(t, b.pool, res.Deliveries[0].ID, 10*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)
	require.Len(t, d.AttemptList, 3)
	require.Len(t, recv.Requests(), 3, "nothing after success")

	for i, req := range reqs {
		require.Equal(t, want, string(req.Body), "attempt %d body", i+1)
		require.Equal(t, http.MethodPost, req.Method)
		require.Equal(t, "/hook?token=abc", req.Path)
		require.Equal(t, "application/json", req.Header.Get("Content-Type"))
		require.Equal(t, res.EventID, req.Header.Get("Mono-Event-Id"))
		require.True(t, strings.HasPrefix(req.Header.Get("User-Agent"), "Mono-Webhooks/"), req.Header.Get("User-Agent"))

		// Independent verification: parse t and v1 by hand, HMAC "<t>.<body>".
		parts := strings.Split(req.Header.Get("Mono-Signature"), ",")
		require.Len(t, parts, 2)
		require.True(t, strings.HasPrefix(parts[0], "t="))
		require.True(t, strings.HasPrefix(parts[1], "v1="))
		tsec, err := strconv.ParseInt(strings.TrimPrefix(parts[0], "t="), 10, 64)
		require.NoError(t, err)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(strconv.FormatInt(tsec, 10) + "." + string(req.Body)))
		require.Equal(t, hex.EncodeToString(mac.Sum(nil)), strings.TrimPrefix(parts[1], "v1="))

		// t is the time of this attempt, recorded with it.
		require.InDelta(t, req.At.Unix(), tsec, 1, "attempt %d t", i+1)
		require.Equal(t, d.AttemptList[i].SignatureT, tsec)
	}
	require.Equal(t, []int{500, 500, 200}, []int{*d.AttemptList[0].StatusCode, *d.AttemptList[1].StatusCode, *d.AttemptList[2].StatusCode})
	require.Equal(t, "http_status", *d.AttemptList[0].ErrorKind)
	require.Nil(t, d.AttemptList[2].ErrorKind)
}

// The timestamp keeps six fractional digits even when they are zeros.
func TestEnvelope(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, data, want string
		at               time.Time
	}{
		{"Seed", `{"amount":240000}`, `{"event":{"data":{"amount":240000},"type":"t"},"timestamp":"2022-12-29T15:42:08.325158Z"}`, time.Date(2022, 12, 29, 15, 42, 8, 325158000, time.UTC)},
		{"ZeroFraction", `{}`, `{"event":{"data":{},"type":"t"},"timestamp":"2022-12-29T15:42:08.000000Z"}`, time.Date(2022, 12, 29, 15, 42, 8, 0, time.UTC)},
		{"TrailingZeros", `{}`, `{"event":{"data":{},"type":"t"},"timestamp":"2022-12-29T15:42:08.100000Z"}`, time.Date(2022, 12, 29, 15, 42, 8, 100000999, time.UTC)},
		{"ToUTC", `{}`, `{"event":{"data":{},"type":"t"},"timestamp":"2022-12-29T20:42:08.000001Z"}`, time.Date(2022, 12, 29, 15, 42, 8, 1000, time.FixedZone("COT", -5*3600))},
		{"Compacted", "{ \"b\" : [ 1 , 2 ] ,\n\t\"a\" : \"<&>\" }", `{"event":{"data":{"b":[1,2],"a":"<&>"},"type":"t"},"timestamp":"2022-12-29T15:42:08.000000Z"}`, time.Date(2022, 12, 29, 15, 42, 8, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := webhookrule.Envelope("t", []byte(tt.data), tt.at)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

// 500, 500, 200 ends succeeded after the third attempt; a 302 is a failure
// whose Location is never requested; a receiver that never answers fails at
// the timeout; a refused connection fails. Every failure is retried.
func TestFailureKinds(t *testing.T) {
	t.Parallel()

	b := setupServer(t, func(c *server.Config) { c.HTTPTimeout = 400 * time.Millisecond })

	elsewhere := testreceiver.New(t, testreceiver.Status(200))
	redirect := testreceiver.New(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/stolen", http.StatusFound)
	})
	hang := testreceiver.New(t, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	refusedURL := "http://" + ln.Addr().String() + "/"
	require.NoError(t, ln.Close())

	cases := []struct {
		name, url, kind string
		status          int
	}{
		{"Redirect", redirect.URL + "/", "http_status", 302},
		{"NeverAnswers", hang.URL + "/", "timeout", 0},
		{"Refused", refusedURL, "connect", 0},
	}
	ids := map[string]string{}
	for _, c := range cases {
		account := "acct_" + strings.ToLower(c.name)
		createWebhook(t, b.pool, b.keys, account, c.url)
		res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: account, Type: "ping", Data: rawJSON(`{}`)})
		ids[c.name] = res.Deliveries[0].ID
	}
	for _, c := range cases {
		d := waitAttempts(t, b.pool, ids[c.name], 3, 30*time.Second)
		require.Equal(t, store.StatePending, d.State, c.name)
		for i, a := range d.AttemptList[:3] {
			require.Equal(t, i+1, a.Number, c.name)
			require.NotNil(t, a.ErrorKind, c.name)
			require.Equal(t, c.kind, *a.ErrorKind, c.name)
			if c.status != 0 {
				require.Equal(t, c.status, *a.StatusCode, c.name)
			} else {
				require.Nil(t, a.StatusCode, c.name)
			}
			require.NotContains(t, *a.ErrorMessage, "127.0.0.2", "no URL in errors")
			if c.kind == "timeout" {
				require.GreaterOrEqual(t, a.Duration, 400*time.Millisecond, "ends at the timeout")
				require.Less(t, a.Duration, 1400*time.Millisecond, "ends at the timeout")
			}
		}
	}
	require.Zero(t, elsewhere.Count(), "a redirect is never followed")
	require.GreaterOrEqual(t, redirect.Count(), 3)

	ok := testreceiver.New(t, testreceiver.Sequence(500, 500, 200))
	createWebhook(t, b.pool, b.keys, "acct_ok", ok.URL+"/")
	res := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_ok", Type: "ping", Data: rawJSON(`{}`)})
	d := waitFinished(t, b.pool, res.Deliveries[0].ID, 20*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)
	require.Len(t, d.AttemptList, 3)
	require.Equal(t, 3, ok.Count())
}

// A rolled-back enqueue sends nothing; a committed one sends exactly once.
func TestTransactionalEnqueue(t *testing.T) {
	t.Parallel()

	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Status(200))
	createWebhook(t, b.pool, b.keys, "acct_tx", recv.URL+"/")
	ctx := context.Background()

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	rolledBack, err := b.enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_tx", Type: "rolled_back", Data: rawJSON(`{}`)})
	require.NoError(t, err)
	require.Len(t, rolledBack.Deliveries, 1)
	require.NoError(t, tx.Rollback(ctx))

	committed := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_tx", Type: "committed", Data: rawJSON(`{}`)})
	d := waitFinished(t, b.pool, committed.Deliveries[0].ID, 10*time.Second)
	require.Equal(t, store.StateSucceeded, d.State)

	// Every delivery job finished: a stray one would have sent by now.
	waitDeliveryJobsFinished(t, b.pool)
	reqs := recv.Requests()
	require.Len(t, reqs, 1)
	require.Equal(t, committed.EventID, reqs[0].Header.Get("Mono-Event-Id"))
	require.Equal(t, 1, count(t, b.pool, "events"))
	require.Equal(t, 1, count(t, b.pool, "deliveries"))
	// No job of the rolled-back event; the committed delivery's was
	// deleted when its attempt was recorded (WEBHOOKD_KEEP_FINISHED_JOBS).
	var jobs int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'webhookd.delivery'").Scan(&jobs))
	require.Equal(t, 0, jobs)
}

// A repeat of the same key and payload creates nothing and returns the
// original; a different payload under the same key is refused.
func TestIdempotency(t *testing.T) {
	t.Parallel()

	b := setupServer(t, nil)
	recv := testreceiver.New(t, testreceiver.Status(200))
	createWebhook(t, b.pool, b.keys, "acct_idem", recv.URL+"/")
	ctx := context.Background()

	ev := &engine.Event{AccountID: "acct_idem", Type: "card_charged", Data: rawJSON(`{"amount": 160}`), IdempotencyKey: "order-42"}
	first := enqueue(t, b.pool, b.enqueuer, ev)
	require.False(t, first.Repeat)

	// The same payload, differently spaced: a repeat.
	again := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_idem", Type: "card_charged", Data: rawJSON(`{"amount":160}`), IdempotencyKey: "order-42"})
	require.True(t, again.Repeat)
	require.Equal(t, first.EventID, again.EventID)
	require.Equal(t, first.Deliveries, again.Deliveries)

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = b.enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: "acct_idem", Type: "card_charged", Data: rawJSON(`{"amount": 161}`), IdempotencyKey: "order-42"})
	require.ErrorIs(t, err, engine.ErrIdempotencyKeyReused)
	require.NoError(t, tx.Rollback(ctx))

	// The same key in another account is another event.
	createWebhook(t, b.pool, b.keys, "acct_other", recv.URL+"/other")
	other := enqueue(t, b.pool, b.enqueuer, &engine.Event{AccountID: "acct_other", Type: "card_charged", Data: rawJSON(`{"amount": 160}`), IdempotencyKey: "order-42"})
	require.False(t, other.Repeat)

	require.Equal(t, 2, count(t, b.pool, "events"))
	require.Equal(t, 2, count(t, b.pool, "deliveries"))
	waitFinished(t, b.pool, first.Deliveries[0].ID, 10*time.Second)
	waitFinished(t, b.pool, other.Deliveries[0].ID, 10*time.Second)
	waitDeliveryJobsFinished(t, b.pool) // a repeat's job would have sent by now
	require.Equal(t, 2, recv.Count())
}

// Validation happens before any SQL: a bad event fails even on a
// transaction that is already closed, and changes nothing.
func TestEnqueueValidation(t *testing.T) {
	t.Parallel()

	b := setupServer(t, nil)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	tests := []struct {
		name  string
		ev    engine.Event
		field string
	}{
		{"MissingAccount", engine.Event{Type: "a", Data: rawJSON(`{}`)}, "account_id"},
		{"BadAccount", engine.Event{AccountID: "a b", Type: "a", Data: rawJSON(`{}`)}, "account_id"},
		{"LongAccount", engine.Event{AccountID: strings.Repeat("a", 65), Type: "a", Data: rawJSON(`{}`)}, "account_id"},
		{"MissingType", engine.Event{AccountID: "a", Data: rawJSON(`{}`)}, "type"},
		{"UpperType", engine.Event{AccountID: "a", Type: "Bank", Data: rawJSON(`{}`)}, "type"},
		{"DigitFirstType", engine.Event{AccountID: "a", Type: "1bank", Data: rawJSON(`{}`)}, "type"},
		{"LongType", engine.Event{AccountID: "a", Type: "a" + strings.Repeat("b", 100), Data: rawJSON(`{}`)}, "type"},
		{"ArrayData", engine.Event{AccountID: "a", Type: "a", Data: rawJSON(`[1]`)}, "data"},
		{"NullData", engine.Event{AccountID: "a", Type: "a", Data: rawJSON(`null`)}, "data"},
		{"BrokenData", engine.Event{AccountID: "a", Type: "a", Data: rawJSON(`{"a":`)}, "data"},
		{"ControlInKey", engine.Event{AccountID: "a", Type: "a", Data: rawJSON(`{}`), IdempotencyKey: "a\nb"}, "idempotency_key"},
	}
	for _, tt := range tests {
		_, err := b.enqueuer.Enqueue(ctx, tx, &tt.ev)
		var v *engine.ValidationError
		require.ErrorAs(t, err, &v, tt.name)
		require.Equal(t, tt.field, v.Field, tt.name)
	}
	require.Equal(t, 0, count(t, b.pool, "events"))
}
