package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
)

// stoppingHandler passes records on, except that once stopping is closed an
// error record caused by a cancelled context (River UI's background counts
// interrupted by the server's stop) is passed on at debug: a normal
// shutdown logs no error.
type stoppingHandler struct {
	slog.Handler
	stopping <-chan struct{}
}

func (h *stoppingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && h.stopped() && cancelled(r) {
		lowered := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			lowered.AddAttrs(a)
			return true
		})
		r = lowered
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *stoppingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &stoppingHandler{Handler: h.Handler.WithAttrs(attrs), stopping: h.stopping}
}

func (h *stoppingHandler) WithGroup(name string) slog.Handler {
	return &stoppingHandler{Handler: h.Handler.WithGroup(name), stopping: h.stopping}
}

// Enabled lets error records through to Handle, which may lower them.
func (h *stoppingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelError || h.Handler.Enabled(ctx, level)
}

func (h *stoppingHandler) stopped() bool {
	select {
	case <-h.stopping:
		return true
	default:
		return false
	}
}

// cancelled reports whether any attribute of r is a context.Canceled error
// (or says so: some loggers flatten errors to strings).
func cancelled(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		switch v := a.Value.Any().(type) {
		case error:
			found = errors.Is(v, context.Canceled) || strings.Contains(v.Error(), context.Canceled.Error())
		case string:
			found = strings.Contains(v, context.Canceled.Error())
		}
		return !found
	})
	return found
}
