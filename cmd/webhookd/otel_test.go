package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testtrace"
)

func TestTracingWanted(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		want bool
		err  string
	}{
		{name: "Nothing", env: nil, want: false},
		{name: "Endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: true},
		{name: "TracesEndpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector/v1/traces"}, want: true},
		{name: "ExporterOTLP", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "ExporterNone", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: false},
		{name: "SDKDisabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: false},
		{name: "SDKNotDisabled", env: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "EmptyEndpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, want: false},
		{name: "HTTPJSON", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, want: true},
		{name: "ExporterZipkin", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "OTEL_TRACES_EXPORTER"},
		{name: "GRPC", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, err: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "BadEndpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "BadDisabled", env: map[string]string{"OTEL_SDK_DISABLED": "maybe"}, err: "OTEL_SDK_DISABLED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lookup := func(name string) (string, bool) { v, ok := tt.env[name]; return v, ok }
			got, err := tracingWanted(lookup)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			traces, err := setupTracing(t.Context(), lookup, "test", zap.NewNop())
			require.NoError(t, err)
			require.Equal(t, tt.want, traces.sdk != nil, "an SDK provider only when wanted")
			traces.Shutdown(zap.NewNop())
		})
	}
}

// `webhookd serve` with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans to
// a real OTLP/HTTP endpoint (protobuf, decoded here): an event accepted in
// the producer's trace, attempt 1 (500) and attempt 2 (200) under it. The
// batch processor's delay is a minute, so the spans arrive only through
// the flush on SIGTERM.
func TestServeOTLPTraces(t *testing.T) {
	t.Parallel()
	sink := testtrace.NewSink(t)
	recv := testreceiver.New(t, testreceiver.Sequence(500, 200))
	p := startServe(t, serveEnv(testdb.NewURL(t), keyring.Generate(), "WEBHOOKD_RETRY_SCALE=0.001",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+sink.URL, "OTEL_BSP_SCHEDULE_DELAY=60000", "OTEL_SERVICE_NAME=webhookd-e2e"))

	var hook struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, p.call(t, http.MethodPost, "/v1/webhooks", map[string]string{"account_id": "acct_otlp", "url": recv.URL + "/hook?token=secret-query-token"}, &hook))
	const producerTrace, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, err := http.NewRequest(http.MethodPost, p.base+"/v1/events", strings.NewReader(`{"account_id":"acct_otlp","type":"order.created","data":{"n":1}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("traceparent", "00-"+producerTrace+"-"+producerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	reqs := recv.Wait(t, 2, 30*time.Second)
	require.Empty(t, sink.Spans(), "nothing exported before the flush")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("webhookd serve did not exit within 30s of SIGTERM")
	}
	spans := sink.Wait(t, 3, time.Second) // flushed before exit
	require.Len(t, spans, 3)
	slices.SortFunc(spans, func(a, b testtrace.Span) int { return a.Start.Compare(b.Start) })

	nodes := []testtrace.Node{{ID: producerSpan, Line: "producer's span " + producerSpan + " (remote)"}}
	for _, s := range spans {
		line := fmt.Sprintf("%s [%s] span %s service=%s", s.Name, strings.TrimPrefix(s.Kind.String(), "SPAN_KIND_"), s.SpanID, s.Service)
		if n := s.Attributes["webhookd.attempt"]; n != "" {
			line = "attempt " + n + ": " + line
		} else {
			line = "accept: " + line
		}
		for _, k := range []string{"webhookd.events", "http.response.status_code", "webhookd.error_kind"} {
			if v := s.Attributes[k]; v != "" {
				line += " " + strings.TrimPrefix(k, "webhookd.") + "=" + v
			}
		}
		nodes = append(nodes, testtrace.Node{ID: s.SpanID, Parent: s.ParentSpanID, Line: line})
	}
	t.Logf("the trace, as the OTLP endpoint received it:\n%s", testtrace.Tree(nodes))

	accept := spans[0]
	require.Equal(t, "POST /v1/events", accept.Name)
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, accept.Kind)
	require.Equal(t, producerSpan, accept.ParentSpanID)
	require.Equal(t, "1", accept.Attributes["webhookd.events"])
	for i, s := range spans[1:] {
		require.Equal(t, "webhookd-e2e", s.Service, "OTEL_SERVICE_NAME")
		require.Equal(t, producerTrace, s.TraceID)
		require.Equal(t, accept.SpanID, s.ParentSpanID)
		require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, s.Kind)
		require.Equal(t, fmt.Sprint(i+1), s.Attributes["webhookd.attempt"])
		require.Equal(t, hook.ID, s.Attributes["webhookd.webhook_id"])
		require.Equal(t, "00-"+producerTrace+"-"+s.SpanID+"-01", reqs[i].Header.Get("Traceparent"))
		for k, v := range s.Attributes {
			require.NotContains(t, v, "secret-query-token", "attribute %s", k)
		}
	}
	require.Equal(t, "500", spans[1].Attributes["http.response.status_code"])
	require.True(t, spans[1].StatusError)
	require.Equal(t, "200", spans[2].Attributes["http.response.status_code"])
	require.False(t, spans[2].StatusError)
}

// A bad OTEL_* setting stops `webhookd serve` at start, naming the
// variable.
func TestServeBadOTELConfig(t *testing.T) {
	t.Parallel()
	for _, env := range []string{"OTEL_TRACES_EXPORTER=zipkin", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector:4318"} {
		cmd := exec.Command(binary, "serve")
		cmd.Env = serveEnv("postgres://127.0.0.1:1/unused", keyring.Generate(), env)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, string(out))
		require.Contains(t, string(out), strings.SplitN(env, "=", 2)[0], "%s", env)
	}
}
