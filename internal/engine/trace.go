package engine

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// TracerName is the instrumentation scope of webhookd's spans.
const TracerName = "github.com/mono/webhookd"

// AttemptSpanName is the name of the client span of one attempt.
const AttemptSpanName = "webhook attempt"

// Attributes of webhookd's spans besides the semantic conventions' (none
// is the URL, its query, a header or a body).
const (
	AttrWebhookID  = attribute.Key("webhookd.webhook_id")
	AttrDeliveryID = attribute.Key("webhookd.delivery_id")
	AttrEventID    = attribute.Key("webhookd.event_id")
	// AttrAttempt is the attempt's number as the deliveries API lists it
	// (rising across replays); AttrGeneration the replay generation.
	AttrAttempt    = attribute.Key("webhookd.attempt")
	AttrGeneration = attribute.Key("webhookd.generation")
	AttrErrorKind  = attribute.Key("webhookd.error_kind")
	AttrDurationMS = attribute.Key("webhookd.duration_ms")
)

// traceContext reads and writes W3C traceparent headers.
var traceContext propagation.TraceContext

// Tracer returns the tracer of tp for webhookd's spans, or nil when tp is
// nil or OpenTelemetry's no-op provider: tracing off, and the callers skip
// all of it.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		return nil
	}
	return tp.Tracer(TracerName)
}

// ParseTraceparent reads a stored W3C traceparent as a remote span
// context; the zero SpanContext when tp is empty or malformed.
func ParseTraceparent(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// FormatTraceparent writes sc as a W3C traceparent (version 00).
func FormatTraceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// startAttempt starts the client span of one attempt of target and sets
// the receiver's traceparent on header. Tracing off (w.tracer nil), it
// sets today's header only: the producer's trace id and flags with a
// fresh span id, nothing without a stored traceparent; the span is nil.
//
// Tracing on, the span's parent is the stored traceparent (the span that
// accepted the event, or the producer's own), none making it a root; the
// receiver's traceparent continues from the attempt span. The span names
// the webhook, the delivery and the attempt, and of the URL only its host
// and port: never the path, the query, a header or the body.
func (w *Worker) startAttempt(ctx context.Context, target *store.Target, header http.Header) (context.Context, trace.Span) {
	if w.tracer == nil {
		if target.Traceparent != nil {
			if tp := webhookrule.AttemptTraceparent(*target.Traceparent); tp != "" {
				header.Set("Traceparent", tp)
			}
		}
		return ctx, nil
	}
	var parent trace.SpanContext
	if target.Traceparent != nil {
		parent = ParseTraceparent(*target.Traceparent)
	}
	// A zero parent replaces whatever span ctx holds: a root.
	ctx, span := w.tracer.Start(trace.ContextWithSpanContext(ctx, parent), AttemptSpanName, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() { // sampled: the attributes are worth making
		span.SetAttributes(attemptAttributes(target)...)
	}
	traceContext.Inject(ctx, propagation.HeaderCarrier(header))
	return ctx, span
}

// attemptAttributes are an attempt span's attributes known at its start.
func attemptAttributes(target *store.Target) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, semconv.HTTPRequestMethodPost,
		AttrWebhookID.String(target.WebhookID), AttrDeliveryID.String(target.DeliveryID), AttrEventID.String(target.EventID),
		AttrAttempt.Int(target.Attempts+1), AttrGeneration.Int(target.Generation))
	if u, err := url.Parse(target.URL); err == nil && u.Host != "" {
		port, _ := strconv.Atoi(u.Port())
		if port == 0 && u.Scheme == "https" {
			port = 443
		} else if port == 0 {
			port = 80
		}
		attrs = append(attrs, semconv.ServerAddress(u.Hostname()), semconv.ServerPort(port))
	}
	return attrs
}

// endAttempt ends an attempt's span (nil: tracing off) with its outcome:
// the status code, the error kind and message (which never hold the URL),
// the duration.
func endAttempt(span trace.Span, res *outbound.Result) {
	if span == nil {
		return
	}
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, AttrDurationMS.Float64(float64(res.Duration.Microseconds())/1000))
	if res.StatusCode != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(res.StatusCode))
	}
	if res.ErrorKind != "" {
		attrs = append(attrs, AttrErrorKind.String(res.ErrorKind), semconv.ErrorTypeKey.String(res.ErrorKind))
	}
	span.SetAttributes(attrs...)
	if !res.Succeeded() {
		span.SetStatus(codes.Error, res.ErrorMessage)
	}
	span.End()
}
