package engine

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
)

// pauseGone pauses target's webhook, reason gone, after an attempt it
// answered 410 Gone was recorded (its on_gone is pause). The attempt
// counts as it is; the delivery keeps its place in the schedule and is
// parked, with every other, when its next attempt comes due, until the
// webhook is resumed. A webhook paused already stays as it is. Should this
// fail (or the process stop between the recording and here), the next 410
// pauses it.
func (w *Worker) pauseGone(ctx context.Context, target *store.Target, now time.Time, log *zap.Logger) {
	client := contextClient(ctx)
	if target.AccountID == NotifyAccount {
		client = nil // a notification's own 410 pauses, but notifies no one
	}
	err := PauseNotifying(ctx, w.db, client, target.WebhookID, "", store.PauseGone, nil, now)
	switch {
	case errors.Is(err, store.ErrAlreadyPaused), errors.Is(err, store.ErrNotFound):
	case err != nil:
		log.Error("error pausing a webhook whose endpoint answered 410 Gone", zap.Error(err))
	default:
		w.cfg.Metrics.WebhookPause("pause", store.PauseGone)
		log.Warn("endpoint answered 410 Gone; webhook paused (on_gone: pause)")
	}
}
