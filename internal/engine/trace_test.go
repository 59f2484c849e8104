package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestTracer(t *testing.T) {
	t.Parallel()
	require.Nil(t, Tracer(nil), "nil: tracing off")
	require.Nil(t, Tracer(noop.NewTracerProvider()), "the no-op provider: tracing off")
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	require.NotNil(t, Tracer(tp))
}

func TestTraceparentRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in string
		valid    bool
	}{
		{"Sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"NotSampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"Empty", "", false},
		{"Garbage", "garbage", false},
		{"ZeroTrace", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := ParseTraceparent(tt.in)
			require.Equal(t, tt.valid, sc.IsValid())
			if tt.valid {
				require.True(t, sc.IsRemote())
				require.Equal(t, tt.in, FormatTraceparent(sc))
			}
		})
	}
}
