package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testtrace"
	"github.com/mono/webhookd/internal/testwait"
)

// traceBundle is a test server whose spans go to an in-memory exporter.
type traceBundle struct {
	srv      *testserver.Server
	exporter *tracetest.InMemoryExporter
}

func setupTrace(t *testing.T) *traceBundle {
	t.Helper()
	exporter := tracetest.NewInMemoryExporter()
	// The SDK's default sampler (parent-based, always on), exported as
	// each span ends.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	srv := testserver.Start(t, func(c *server.Config) { c.TracerProvider = tp })
	return &traceBundle{srv: srv, exporter: exporter}
}

func (b *traceBundle) post(t *testing.T, path, body string, header map[string]string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.BaseURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testserver.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
	return resp.StatusCode
}

func (b *traceBundle) createWebhook(t *testing.T, account, url string) string {
	t.Helper()
	var hook struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, b.post(t, "/v1/webhooks", fmt.Sprintf(`{"account_id":%q,"url":%q}`, account, url), nil, &hook))
	return hook.ID
}

// waitSpans waits (bounded) until the exporter holds n spans.
func (b *traceBundle) waitSpans(t *testing.T, n int) tracetest.SpanStubs {
	t.Helper()
	var spans tracetest.SpanStubs
	testwait.For(t, 15*time.Second, func() (bool, string) {
		spans = b.exporter.GetSpans()
		return len(spans) >= n, fmt.Sprintf("%d spans, want %d", len(spans), n)
	})
	// In the order they started: an attempt may end before the request
	// that accepted its event has.
	slices.SortFunc(spans, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	return spans
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	out := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = kv.Value
	}
	return out
}

// requireNoURL fails if any part of span (name, attributes, status,
// events) holds the webhook URL's path or query.
func requireNoURL(t *testing.T, span tracetest.SpanStub, secrets ...string) {
	t.Helper()
	texts := []string{span.Name, span.Status.Description}
	for _, kv := range span.Attributes {
		texts = append(texts, string(kv.Key)+"="+kv.Value.String())
	}
	for _, ev := range span.Events {
		texts = append(texts, ev.Name)
		for _, kv := range ev.Attributes {
			texts = append(texts, kv.Value.String())
		}
	}
	for _, text := range texts {
		for _, secret := range secrets {
			require.NotContains(t, text, secret, "span %q", span.Name)
		}
	}
}

// treeOf prints spans as a tree under the producer's span.
func treeOf(spans tracetest.SpanStubs, producer trace.SpanID) string {
	nodes := []testtrace.Node{{ID: producer.String(), Line: "producer's span " + producer.String() + " (remote, from the traceparent header)"}}
	for _, s := range spans {
		a := attrMap(s.Attributes)
		line := fmt.Sprintf("%s [%s] span %s", s.Name, s.SpanKind, s.SpanContext.SpanID())
		if n, ok := a[engine.AttrAttempt]; ok {
			line = fmt.Sprintf("attempt %d: %s", n.AsInt64(), line)
		} else {
			line = "accept: " + line
		}
		for _, k := range []attribute.Key{admin.AttrEvents, "http.response.status_code", engine.AttrErrorKind, engine.AttrWebhookID, engine.AttrDeliveryID, engine.AttrDurationMS} {
			if v, ok := a[k]; ok {
				line += fmt.Sprintf(" %s=%s", strings.TrimPrefix(string(k), "webhookd."), v.String())
			}
		}
		nodes = append(nodes, testtrace.Node{ID: s.SpanContext.SpanID().String(), Parent: s.Parent.SpanID().String(), Line: line})
	}
	return testtrace.Tree(nodes)
}

// With tracing on, one event in the producer's trace: the accept span is
// a child of the producer's traceparent header, attempt 1 (500) and
// attempt 2 (200) are client spans children of the accept span, and each
// request's traceparent continues from its attempt's span. No span holds
// the webhook URL's path or query.
func TestTraceAcceptAndAttempts(t *testing.T) {
	t.Parallel()
	b := setupTrace(t)
	recv := testreceiver.New(t, testreceiver.Sequence(500, 200))
	webhookID := b.createWebhook(t, "acct_trace", recv.URL+"/hooks/secret-path?token=secret-query-token")

	const producerTrace, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var ev struct {
		ID         string `json:"id"`
		Deliveries []struct {
			ID string `json:"id"`
		} `json:"deliveries"`
	}
	require.Equal(t, http.StatusAccepted, b.post(t, "/v1/events", `{"account_id":"acct_trace","type":"order.created","data":{"n":1}}`,
		map[string]string{"traceparent": "00-" + producerTrace + "-" + producerSpan + "-01"}, &ev))
	require.Len(t, ev.Deliveries, 1)
	reqs := recv.Wait(t, 2, 15*time.Second)
	spans := b.waitSpans(t, 3)
	require.Len(t, spans, 3)
	t.Logf("the trace, from the in-memory exporter:\n%s", treeOf(spans, mustSpanID(t, producerSpan)))

	accept, attempts := spans[0], spans[1:]
	require.Equal(t, "POST /v1/events", accept.Name)
	require.Equal(t, trace.SpanKindServer, accept.SpanKind)
	require.Equal(t, producerTrace, accept.SpanContext.TraceID().String(), "the accept span is in the producer's trace")
	require.Equal(t, producerSpan, accept.Parent.SpanID().String(), "a child of the producer's span")
	require.True(t, accept.Parent.IsRemote())
	a := attrMap(accept.Attributes)
	require.EqualValues(t, 1, a[admin.AttrEvents].AsInt64())
	require.EqualValues(t, http.StatusAccepted, a["http.response.status_code"].AsInt64())
	require.Equal(t, "/v1/events", a["http.route"].AsString())

	for i, s := range attempts {
		n := i + 1
		require.Equal(t, engine.AttemptSpanName, s.Name)
		require.Equal(t, trace.SpanKindClient, s.SpanKind)
		require.Equal(t, producerTrace, s.SpanContext.TraceID().String(), "attempt %d in the producer's trace", n)
		require.Equal(t, accept.SpanContext.SpanID(), s.Parent.SpanID(), "attempt %d is a child of the accept span", n)
		a := attrMap(s.Attributes)
		require.EqualValues(t, n, a[engine.AttrAttempt].AsInt64())
		require.Equal(t, webhookID, a[engine.AttrWebhookID].AsString())
		require.Equal(t, ev.Deliveries[0].ID, a[engine.AttrDeliveryID].AsString())
		require.Equal(t, ev.ID, a[engine.AttrEventID].AsString())
		require.Equal(t, "POST", a["http.request.method"].AsString())
		require.Equal(t, "127.0.0.2", a["server.address"].AsString())
		require.Positive(t, a[engine.AttrDurationMS].AsFloat64())

		// The receiver's traceparent continues from the attempt's span.
		tp := reqs[i].Header.Get("Traceparent")
		require.Equal(t, "00-"+producerTrace+"-"+s.SpanContext.SpanID().String()+"-01", tp, "attempt %d's traceparent", n)
		requireNoURL(t, s, "secret-path", "secret-query-token", "/hooks")
	}
	requireNoURL(t, accept, "secret-path", "secret-query-token", "/hooks")

	first, second := attrMap(attempts[0].Attributes), attrMap(attempts[1].Attributes)
	require.EqualValues(t, 500, first["http.response.status_code"].AsInt64())
	require.Equal(t, "http_status", first[engine.AttrErrorKind].AsString())
	require.Equal(t, codes.Error, attempts[0].Status.Code)
	require.EqualValues(t, 200, second["http.response.status_code"].AsInt64())
	_, hasKind := second[engine.AttrErrorKind]
	require.False(t, hasKind)
	require.Equal(t, codes.Unset, attempts[1].Status.Code)
}

// A batch is one accept span (its event count, a child of the header's
// traceparent); its events' attempts are its children, except an event
// whose own traceparent names another trace: its attempt stays in that
// trace. An event without any traceparent, tracing on, gets the accept
// span's trace.
func TestTraceBatch(t *testing.T) {
	t.Parallel()
	b := setupTrace(t)
	recv := testreceiver.New(t, testreceiver.Status(200))
	b.createWebhook(t, "acct_batch", recv.URL+"/hook")

	const headerTrace, otherTrace = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
	body := `{"events":[{"account_id":"acct_batch","type":"a","data":{}},{"account_id":"acct_batch","type":"b","data":{}},` +
		`{"account_id":"acct_batch","type":"c","data":{},"traceparent":"00-` + otherTrace + `-00f067aa0ba902b7-01"}]}`
	require.Equal(t, http.StatusAccepted, b.post(t, "/v1/events/batch", body, map[string]string{"traceparent": "00-" + headerTrace + "-b7ad6b7169203331-01"}, nil))
	reqs := recv.Wait(t, 3, 15*time.Second)
	spans := b.waitSpans(t, 4)
	require.Len(t, spans, 4)

	accept := spans[0]
	require.Equal(t, "POST /v1/events/batch", accept.Name)
	require.Equal(t, headerTrace, accept.SpanContext.TraceID().String())
	require.Equal(t, "b7ad6b7169203331", accept.Parent.SpanID().String())
	require.EqualValues(t, 3, attrMap(accept.Attributes)[admin.AttrEvents].AsInt64())

	byTrace := map[string]int{}
	for _, s := range spans[1:] {
		byTrace[s.SpanContext.TraceID().String()]++
		if s.SpanContext.TraceID().String() == headerTrace {
			require.Equal(t, accept.SpanContext.SpanID(), s.Parent.SpanID())
		} else {
			require.Equal(t, "00f067aa0ba902b7", s.Parent.SpanID().String(), "the event's own traceparent")
		}
	}
	require.Equal(t, map[string]int{headerTrace: 2, otherTrace: 1}, byTrace)
	for _, r := range reqs {
		tp := engine.ParseTraceparent(r.Header.Get("Traceparent"))
		require.True(t, tp.IsValid())
		require.Contains(t, []string{headerTrace, otherTrace}, tp.TraceID().String())
	}
}

func mustSpanID(t *testing.T, hex string) trace.SpanID {
	t.Helper()
	id, err := trace.SpanIDFromHex(hex)
	require.NoError(t, err)
	return id
}

// A producer's trace it did not sample (flags 00) stays unsampled: no span
// is exported, and the receiver still gets the producer's trace id and
// flags, from a span id of the attempt's own.
func TestTraceNotSampled(t *testing.T) {
	t.Parallel()
	b := setupTrace(t)
	recv := testreceiver.New(t, testreceiver.Status(200))
	b.createWebhook(t, "acct_unsampled", recv.URL+"/hook")

	const producerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	require.Equal(t, http.StatusAccepted, b.post(t, "/v1/events", `{"account_id":"acct_unsampled","type":"order.created","data":{}}`,
		map[string]string{"traceparent": "00-" + producerTrace + "-00f067aa0ba902b7-00"}, nil))
	tp := engine.ParseTraceparent(recv.Wait(t, 1, 15*time.Second)[0].Header.Get("Traceparent"))
	require.True(t, tp.IsValid())
	require.Equal(t, producerTrace, tp.TraceID().String())
	require.False(t, tp.IsSampled())
	require.NotEqual(t, "00f067aa0ba902b7", tp.SpanID().String())
	require.Empty(t, b.exporter.GetSpans())
}
