package dispatcher

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/mono/webhookd/store"
)

// DeadNoticeWindowDefault is ReconcilerConfig.DeadNoticeWindow's default:
// at most one delivery.dead per webhook per minute.
const DeadNoticeWindowDefault = time.Minute

// DeadNoticeLagDefault is ReconcilerConfig.DeadNoticeLag's default: more
// than an attempt's recording may take to commit after its finished_at
// was read (BookkeepingTimeoutDefault), so no death is committed behind
// the cursor.
const DeadNoticeLagDefault = BookkeepingTimeoutDefault + 5*time.Second

// deadNoticeCursor names the cursor (webhookd_cursors) of delivery.dead.
const deadNoticeCursor = "delivery_dead_notices"

// DeliveryDeadData is the data of delivery.dead.
type DeliveryDeadData struct {
	WebhookID string `json:"webhook_id"`
	AccountID string `json:"account_id"`
	URL       string `json:"url"`
	// Count is how many of its deliveries died in the window;
	// DeliveryIDs the first of them (at most 10); Since when the first
	// died.
	Count       int       `json:"count"`
	DeliveryIDs []string  `json:"delivery_ids"`
	Since       time.Time `json:"since"`
}

// NotifyDead writes, with client, one delivery.dead per webhook whose
// deliveries died since the last call that wrote any, once that window
// is DeadNoticeWindow long or more: a count and the first ids. The
// window's end (the clock less a lag longer than a recording takes to
// commit) is kept in webhookd_cursors, moved in the same transaction as
// the notifications, so each death is counted once, even with several
// reconcilers, and a webhook gets at most one per window. The first call
// only starts the cursor. A notification's own deaths are left out. It
// returns how many it wrote.
func (r *Reconciler) NotifyDead(ctx context.Context, client *river.Client[pgx.Tx]) (int, error) {
	if client == nil {
		return 0, nil
	}
	to := r.now().Add(-r.deadLag).UTC().Truncate(time.Microsecond)
	written := 0
	err := pgx.BeginFunc(ctx, r.db, func(tx pgx.Tx) error {
		from, ok, err := store.LockCursorTime(ctx, tx, deadNoticeCursor)
		if err != nil {
			return err
		}
		if !ok {
			return store.SetCursorTime(ctx, tx, deadNoticeCursor, to)
		}
		if to.Sub(from) < r.deadWindow {
			return nil
		}
		groups, err := store.DeadSince(ctx, tx, from, to, NotifyAccount)
		if err != nil {
			return fmt.Errorf("error reading dead deliveries: %w", err)
		}
		for _, g := range groups {
			err := Notify(ctx, tx, client, &Notification{Type: NotifyDeliveryDead, AccountID: g.AccountID, WebhookID: g.WebhookID, Data: &DeliveryDeadData{
				WebhookID: g.WebhookID, AccountID: g.AccountID, URL: g.URL, Count: g.Count, DeliveryIDs: g.DeliveryIDs, Since: g.Since,
			}}, r.now())
			if err != nil {
				return err
			}
		}
		written = len(groups)
		return store.SetCursorTime(ctx, tx, deadNoticeCursor, to)
	})
	if err != nil {
		return 0, fmt.Errorf("error writing delivery.dead notifications: %w", err)
	}
	if written > 0 {
		r.logger.Info("delivery.dead notifications written", zap.Int("webhooks", written))
	}
	return written, nil
}
