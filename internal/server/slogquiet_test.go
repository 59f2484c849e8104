package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// Once the server is stopping, an error record caused by a cancelled
// context is logged at debug; any other error, or one before the stop,
// stays an error.
func TestStoppingHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	stopping := make(chan struct{})
	logger := slog.New(&stoppingHandler{
		Handler:  slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}),
		stopping: stopping,
	}).With("component", "riverui")
	canceled := fmt.Errorf("error counting jobs by state: %w", context.Canceled)

	logger.Error("before the stop", "err", canceled)
	require.Contains(t, buf.String(), "level=ERROR msg=\"before the stop\"")
	buf.Reset()

	close(stopping)
	logger.Error("cut short", "err", canceled)
	logger.Error("flattened", "err", canceled.Error())
	require.Empty(t, buf.String(), "lowered to debug, below the handler's level")

	logger.Error("a real failure", "err", errors.New("connection refused"))
	require.Contains(t, buf.String(), "level=ERROR msg=\"a real failure\"")
	require.Contains(t, buf.String(), "component=riverui")

	buf.Reset()
	debug := slog.New(&stoppingHandler{Handler: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), stopping: stopping})
	debug.Error("cut short", "err", canceled)
	require.Contains(t, buf.String(), "level=DEBUG msg=\"cut short\"")
	require.Contains(t, buf.String(), "context canceled", "the attributes are kept")
}
