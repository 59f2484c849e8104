package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// TracingShutdownTimeout bounds the flush of the spans still buffered when
// the process exits.
const TracingShutdownTimeout = 5 * time.Second

// tracing is OpenTelemetry tracing as the standard OTEL_* variables set
// it: a no-op provider unless they ask for OTLP traces.
type tracing struct {
	// Provider goes into server.Config.TracerProvider.
	Provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
}

// tracingWanted reads whether the OTEL_* variables (through lookup) turn
// traces on: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// or OTEL_TRACES_EXPORTER=otlp, unless OTEL_TRACES_EXPORTER=none or
// OTEL_SDK_DISABLED=true. An exporter other than otlp and none, or the
// grpc protocol (webhookd exports OTLP over HTTP only), is an error that
// names the variable.
func tracingWanted(lookup func(string) (string, bool)) (bool, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	if disabled := get("OTEL_SDK_DISABLED"); disabled != "" {
		off, err := strconv.ParseBool(disabled)
		if err != nil {
			return false, fmt.Errorf("OTEL_SDK_DISABLED: %q is not true or false", disabled)
		}
		if off {
			return false, nil
		}
	}
	exporter := strings.ToLower(get("OTEL_TRACES_EXPORTER"))
	switch exporter {
	case "none":
		return false, nil
	case "", "otlp":
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported; use otlp (OTLP over HTTP) or none", exporter)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		switch p := get(name); p {
		case "", "http/protobuf", "http/json":
		default:
			return false, fmt.Errorf("%s: %q is not supported; webhookd exports OTLP over HTTP: http/protobuf (the default, port 4318) or http/json", name, p)
		}
	}
	endpoint := false
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		raw := get(name)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false, fmt.Errorf("%s: %q is not an http(s) URL such as http://otel-collector:4318", name, raw)
		}
		endpoint = true
	}
	return endpoint || exporter == "otlp", nil
}

// setupTracing builds the tracer provider once for the process: with the
// OTLP/HTTP exporter, batching, the sampler of OTEL_TRACES_SAMPLER
// (parentbased_always_on by default) and the resource of OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES (service.name webhookd by default) when
// tracingWanted says so; the no-op provider otherwise. The SDK reads the
// other OTEL_* variables itself. Export errors are logged at warn.
func setupTracing(ctx context.Context, lookup func(string) (string, bool), version string, logger *zap.Logger) (*tracing, error) {
	on, err := tracingWanted(lookup)
	if err != nil || !on {
		return &tracing{Provider: noop.NewTracerProvider()}, err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("OpenTelemetry: error exporting traces", zap.Error(err))
	}))
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_*: error creating the trace exporter: %w", err)
	}
	res, err := sdkresource.New(ctx,
		sdkresource.WithSchemaURL(semconv.SchemaURL),
		sdkresource.WithAttributes(semconv.ServiceName("webhookd"), semconv.ServiceVersion(version)),
		sdkresource.WithTelemetrySDK(),
		sdkresource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, sdkresource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	logger.Info("tracing on: spans exported over OTLP/HTTP", zap.String("endpoint", exportEndpoint(lookup)))
	return &tracing{Provider: sdk, sdk: sdk}, nil
}

// exportEndpoint is where spans go, for the log: the traces endpoint, the
// base endpoint's /v1/traces, or the SDK's default; without userinfo.
func exportEndpoint(lookup func(string) (string, bool)) string {
	if v, _ := lookup("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); strings.TrimSpace(v) != "" {
		u, _ := url.Parse(strings.TrimSpace(v))
		return u.Redacted()
	}
	if v, _ := lookup("OTEL_EXPORTER_OTLP_ENDPOINT"); strings.TrimSpace(v) != "" {
		u, _ := url.Parse(strings.TrimSpace(v))
		return strings.TrimSuffix(u.Redacted(), "/") + "/v1/traces"
	}
	return "http://localhost:4318/v1/traces"
}

// Shutdown flushes the spans still buffered (at most
// TracingShutdownTimeout) and stops exporting; a no-op when off.
func (t *tracing) Shutdown(logger *zap.Logger) {
	if t == nil || t.sdk == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), TracingShutdownTimeout)
	defer cancel()
	if err := t.sdk.Shutdown(ctx); err != nil {
		logger.Warn("OpenTelemetry: error flushing traces on exit", zap.Error(err))
	}
}
