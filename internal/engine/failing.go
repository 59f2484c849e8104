package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// FailingThresholdDefault is the endpoint.failing threshold the server
// uses by default (WEBHOOKD_ENDPOINT_FAILING_AFTER): ten consecutive failed
// attempts, a whole delivery's schedule.
const FailingThresholdDefault = 10

// EndpointFailingData is the data of endpoint.failing.
type EndpointFailingData struct {
	WebhookID           string  `json:"webhook_id"`
	AccountID           string  `json:"account_id"`
	URL                 string  `json:"url"`
	ConsecutiveFailures int     `json:"consecutive_failures"`
	Threshold           int     `json:"threshold"`
	LastFailureKind     *string `json:"last_failure_kind"`
}

// flush writes one batch of health and, with a threshold and a notifier,
// the endpoint.failing notifications of the webhooks it makes cross the
// threshold, in the same transaction.
func (t *HealthTracker) flush(ctx context.Context, folds []store.HealthFold, minutes []store.HealthMinute, now time.Time) error {
	notifier := t.notifier.Load()
	if t.cfg.FailingThreshold <= 0 || notifier == nil || len(folds) == 0 {
		return store.FlushHealth(ctx, t.db, folds, minutes, now)
	}
	ids := make([]string, len(folds))
	for i, f := range folds {
		ids[i] = f.WebhookID
	}
	return pgx.BeginFunc(ctx, t.db, func(tx pgx.Tx) error {
		if err := store.FlushHealth(ctx, tx, folds, minutes, now); err != nil {
			return err
		}
		failing, err := store.CrossFailing(ctx, tx, ids, t.cfg.FailingThreshold, now)
		if err != nil {
			return fmt.Errorf("error checking endpoint.failing: %w", err)
		}
		for _, f := range failing {
			err := notifier.Notify(ctx, tx, &Notification{Type: webhookrule.NotifyEndpointFailing, AccountID: f.AccountID, WebhookID: f.WebhookID, Data: &EndpointFailingData{
				WebhookID: f.WebhookID, AccountID: f.AccountID, URL: f.URL, ConsecutiveFailures: f.ConsecutiveFailures,
				Threshold: t.cfg.FailingThreshold, LastFailureKind: f.LastFailureKind,
			}})
			if err != nil {
				return err
			}
			t.cfg.Logger.Info("endpoint failing: notification written", zap.String("webhook_id", f.WebhookID), zap.Int("consecutive_failures", f.ConsecutiveFailures))
		}
		return nil
	})
}
