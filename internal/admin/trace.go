package admin

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mono/webhookd/internal/engine"
)

// AttrEvents is the accept span's count of events in the request.
const AttrEvents = attribute.Key("webhookd.events")

// acceptKey is the context key of an intake request's *accepting.
type acceptKey struct{}

// isIntake says whether rt accepts events: POST /v1/events and
// /v1/events/batch.
func isIntake(rt route) bool {
	return rt.method == http.MethodPost && (rt.pattern == "/v1/events" || rt.pattern == "/v1/events/batch")
}

// withAcceptSpan wraps an intake route in the span that accepts its events:
// a server span named for the route, one per request, from its start to
// its answer. Its parent is the request's traceparent header when valid;
// on POST /v1/events, the event's traceparent (the field, which wins over
// the header, as for the event). Tracing off (a.tracer nil) or another
// route: next as it is.
func (a *API) withAcceptSpan(rt route, next http.Handler) http.Handler {
	if a.tracer == nil || !isIntake(rt) {
		return next
	}
	name := rt.method + " " + rt.pattern
	single := rt.pattern == "/v1/events"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acc := &accepting{tracer: a.tracer, name: name, route: rt.pattern, single: single, start: time.Now(),
			parent: (propagation.TraceContext{}).Extract(r.Context(), propagation.HeaderCarrier(r.Header))}
		if single {
			acc.events = 1
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), acceptKey{}, acc)))
		span := acc.begin("")
		span.SetAttributes(AttrEvents.Int(acc.events), semconv.HTTPResponseStatusCode(sw.status))
		if sw.status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
		span.End()
	})
}

// accepting is one intake request's accept span, started once its parent
// is known (backdated to the request's start).
type accepting struct {
	tracer trace.Tracer
	name   string
	route  string
	single bool
	start  time.Time
	// parent holds the header's span context, if any.
	parent context.Context
	span   trace.Span
	events int
}

// begin starts the span once, as a child of producer (a single event's
// own traceparent) when valid, else of the header's.
func (acc *accepting) begin(producer string) trace.Span {
	if acc.span != nil {
		return acc.span
	}
	parent := acc.parent
	if sc := engine.ParseTraceparent(producer); acc.single && sc.IsValid() {
		parent = trace.ContextWithRemoteSpanContext(parent, sc)
	}
	_, acc.span = acc.tracer.Start(parent, acc.name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(acc.start),
		trace.WithAttributes(semconv.HTTPRequestMethodPost, semconv.HTTPRoute(acc.route)))
	return acc.span
}

// acceptEvents records how many events the request holds on its accept
// span, if any.
func acceptEvents(ctx context.Context, n int) {
	if acc, _ := ctx.Value(acceptKey{}).(*accepting); acc != nil {
		acc.events = n
	}
}

// acceptTraceparent is the traceparent to store with an event whose
// producer gave producer ("" for none), so that its attempts' spans are
// children of the accept span: the accept span's own, in the producer's
// trace when it gave one. An event of a batch whose own traceparent names
// another trace than the request's header keeps it: its attempts stay in
// the producer's trace. Without an accept span (tracing off), producer as
// it is. The batch's events are checked one after the other, never at
// once.
func acceptTraceparent(ctx context.Context, producer string) string {
	acc, _ := ctx.Value(acceptKey{}).(*accepting)
	if acc == nil {
		return producer
	}
	sc := acc.begin(producer).SpanContext()
	if !sc.IsValid() {
		return producer
	}
	if producer != "" && engine.ParseTraceparent(producer).TraceID() != sc.TraceID() {
		return producer
	}
	return engine.FormatTraceparent(sc)
}

// statusWriter records the status code written through it. Unwrap lets
// http.ResponseController reach the connection (read deadlines).
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
