// Package testtrace helps tests check webhookd's OpenTelemetry spans: a
// real OTLP/HTTP endpoint on 127.0.0.2 that decodes what it receives
// (Sink), and a printer of a trace as a tree (Tree).
package testtrace

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one span as an OTLP endpoint received it.
type Span struct {
	// Service is its resource's service.name.
	Service string
	// TraceID, SpanID and ParentSpanID in hex; ParentSpanID "" for a root.
	TraceID, SpanID, ParentSpanID string
	Name                          string
	Kind                          tracepb.Span_SpanKind
	// Attributes as strings (ints and floats formatted).
	Attributes map[string]string
	// StatusError is whether its status is Error; StatusMessage its
	// description.
	StatusError   bool
	StatusMessage string
	Start, End    time.Time
}

// Sink is an OTLP/HTTP traces endpoint (POST /v1/traces, protobuf,
// optionally gzip) that keeps every span it receives.
type Sink struct {
	// URL is http://127.0.0.2:PORT, an OTEL_EXPORTER_OTLP_ENDPOINT.
	URL string

	mu       sync.Mutex
	spans    []Span
	requests int
	bad      []string
}

// NewSink starts a Sink; it stops at test cleanup.
func NewSink(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("testtrace: error listening on 127.0.0.2: %v", err)
	}
	s := &Sink{URL: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // closed at cleanup
	t.Cleanup(func() {
		srv.Close()
		if bad := s.Bad(); len(bad) > 0 {
			t.Errorf("testtrace: the OTLP sink refused requests: %v", bad)
		}
	})
	return s
}

// ServeHTTP decodes one export request.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(msg string) {
		s.mu.Lock()
		s.bad = append(s.bad, msg)
		s.mu.Unlock()
		http.Error(w, msg, http.StatusBadRequest)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		fail(r.Method + " " + r.URL.Path + ": not POST /v1/traces")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		fail("Content-Type " + ct + ", not application/x-protobuf")
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			fail("bad gzip: " + err.Error())
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		fail("error reading the body: " + err.Error())
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		fail("not an ExportTraceServiceRequest: " + err.Error())
		return
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				got = append(got, Span{
					Service: service, TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentSpanID: hex.EncodeToString(sp.GetParentSpanId()), Name: sp.GetName(), Kind: sp.GetKind(),
					Attributes:  attrs(sp.GetAttributes()),
					StatusError: sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, StatusMessage: sp.GetStatus().GetMessage(),
					Start: time.Unix(0, int64(sp.GetStartTimeUnixNano())), End: time.Unix(0, int64(sp.GetEndTimeUnixNano())),
				})
			}
		}
	}
	s.mu.Lock()
	s.spans = append(s.spans, got...)
	s.requests++
	s.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out) //nolint:errcheck // the exporter's problem
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			out[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
		case *commonpb.AnyValue_DoubleValue:
			out[kv.GetKey()] = fmt.Sprint(v.GetDoubleValue())
		case *commonpb.AnyValue_BoolValue:
			out[kv.GetKey()] = fmt.Sprint(v.GetBoolValue())
		default:
			out[kv.GetKey()] = v.GetStringValue()
		}
	}
	return out
}

// Spans returns the spans received so far.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.spans)
}

// Requests is how many export requests the sink has decoded.
func (s *Sink) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Bad lists the requests the sink refused, and why.
func (s *Sink) Bad() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bad)
}

// Wait waits until the sink holds at least n spans (failing t after
// timeout) and returns them.
func (s *Sink) Wait(t testing.TB, n int, timeout time.Duration) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		spans := s.Spans()
		if len(spans) >= n {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("testtrace: %d spans after %s, want %d", len(spans), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Node is one span of a trace for Tree: its id, its parent's ("" or an id
// not among the nodes: a root) and the line printed for it.
type Node struct {
	ID, Parent, Line string
}

// Tree prints nodes as a tree, roots first in the order given, children
// in the order given under their parent:
//
//	POST /v1/events
//	├─ webhook attempt 1
//	└─ webhook attempt 2
func Tree(nodes []Node) string {
	ids := map[string]bool{}
	for _, n := range nodes {
		ids[n.ID] = true
	}
	var b strings.Builder
	var walk func(parent, indent string)
	walk = func(parent, indent string) {
		var children []Node
		for _, n := range nodes {
			if n.Parent == parent {
				children = append(children, n)
			}
		}
		for i, c := range children {
			branch, next := "├─ ", "│  "
			if i == len(children)-1 {
				branch, next = "└─ ", "   "
			}
			b.WriteString(indent + branch + c.Line + "\n")
			walk(c.ID, indent+next)
		}
	}
	for _, n := range nodes {
		if !ids[n.Parent] {
			b.WriteString(n.Line + "\n")
			walk(n.ID, "")
		}
	}
	return b.String()
}
