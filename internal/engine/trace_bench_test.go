package engine

import (
	"context"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
)

// discard is a span exporter that drops what it gets.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// What one attempt's span costs on the worker's hot path, without the
// POST: off (today's traceparent only), on and sampled (batched to an
// exporter that drops them), on and not sampled.
func BenchmarkAttemptSpan(b *testing.B) {
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	target := &store.Target{DeliveryID: "dlv_01", EventID: "evt_01", WebhookID: "wh_01", URL: "https://receiver.example.com/hook?token=t", Traceparent: &tp, Attempts: 1, Generation: 1}
	res := &outbound.Result{StatusCode: 200, Duration: time.Millisecond}
	for _, bb := range []struct {
		name string
		tp   func() *sdktrace.TracerProvider
	}{
		{"Off", nil},
		{"OnSampled", func() *sdktrace.TracerProvider { return sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{})) }},
		{"OnNotSampled", func() *sdktrace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			w := &Worker{}
			if bb.tp != nil {
				tp := bb.tp()
				w.tracer = Tracer(tp)
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				header := make(http.Header, 4)
				_, span := w.startAttempt(ctx, target, header)
				endAttempt(span, res)
			}
		})
	}
}
