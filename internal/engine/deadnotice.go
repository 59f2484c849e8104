package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// DeadNoticeWindowDefault is WorkerConfig.DeadNoticeWindow's default: at
// most one delivery.dead per webhook per minute.
const DeadNoticeWindowDefault = time.Minute

// deadNoticeSlack is added to the bookkeeping timeout to make the time
// before its sending after which a delivery.dead notification takes no
// more deaths (see notifyDeaths): more than clocks may differ.
const deadNoticeSlack = 5 * time.Second

// maxDeadIDs is how many delivery ids a delivery.dead names at most.
const maxDeadIDs = 10

// DeliveryDeadData is the data of delivery.dead.
type DeliveryDeadData struct {
	WebhookID string `json:"webhook_id"`
	AccountID string `json:"account_id"`
	URL       string `json:"url"`
	// Count is how many of its deliveries the notification reports;
	// DeliveryIDs the first of them (at most 10); Since when the first
	// died.
	Count       int       `json:"count"`
	DeliveryIDs []string  `json:"delivery_ids"`
	Since       time.Time `json:"since"`
}

// SetNotifier makes the worker write delivery.dead notifications with e's
// River client, in the transaction that records the deaths. Without one
// it writes none.
func (w *Worker) SetNotifier(e *Enqueuer) { w.notifier.Store(e) }

// recordAttempts records a batch of attempts (the worker's batched
// recording): store.RecordAttempts, or, with a notifier, with the
// delivery.dead notifications of its deaths in the same transaction.
func (w *Worker) recordAttempts(ctx context.Context, db store.DB, rs []store.Recording) ([]bool, error) {
	if w.notifier.Load() == nil {
		return store.RecordAttempts(ctx, db, rs)
	}
	recorded, failed, err := store.RecordAttemptsNotifying(ctx, db, rs, w.notifyDeaths)
	if failed != nil {
		// Those deaths were not recorded: their deliveries stay pending
		// and are re-queued by the reconciler.
		w.cfg.Logger.Error("deaths not recorded: their delivery.dead notification could not be written", zap.Error(failed))
	}
	return recorded, err
}

// notifyDeaths writes, in tx, the delivery.dead notification of deaths
// (one webhook's deliveries, just recorded dead in tx), so the deaths and
// the notification that reports them commit together. A webhook gets at
// most one per DeadNoticeWindow: the first death after a quiet window is
// told at once; deaths within a window of the last notification go into
// one notification sent when that window ends, written with the first of
// them and updated (count, first ids) by each later one in its own
// transaction until shortly before it is sent (the bookkeeping timeout
// and a slack before: no transaction still open then can change a body
// being sent). Nothing is written without a subscriber, nor for a
// notification's own deaths.
func (w *Worker) notifyDeaths(ctx context.Context, tx pgx.Tx, deaths []store.Recording) error {
	e := w.notifier.Load()
	first := deaths[0].Target
	if e == nil || first.AccountID == NotifyAccount {
		return nil
	}
	n := &Notification{Type: webhookrule.NotifyDeliveryDead, AccountID: first.AccountID, WebhookID: first.WebhookID}
	targets, err := notificationTargets(ctx, tx, n)
	if err != nil || len(targets) == 0 {
		return err
	}
	ids := make([]string, 0, min(len(deaths), maxDeadIDs))
	since := deaths[0].Outcome.Now
	for _, d := range deaths {
		if len(ids) < maxDeadIDs {
			ids = append(ids, d.Target.DeliveryID)
		}
		if d.Outcome.Now.Before(since) {
			since = d.Outcome.Now
		}
	}
	now := w.cfg.Now().UTC().Truncate(time.Microsecond)
	last, err := store.LockDeadNotice(ctx, tx, first.WebhookID)
	if err != nil {
		return fmt.Errorf("error locking webhook %s's delivery.dead notifications: %w", first.WebhookID, err)
	}
	if last.After(now.Add(w.cfg.BookkeepingTimeout + deadNoticeSlack)) {
		added, err := addDeaths(ctx, tx, deadNoticeEventID(first.WebhookID, last), len(deaths), ids)
		if err != nil || added {
			return err
		}
	}
	sendAt := now
	if !last.IsZero() {
		sendAt = last.Add(w.deadNoticeWindow())
		if sendAt.Before(now) {
			sendAt = now
		}
	}
	n.Data = &DeliveryDeadData{WebhookID: first.WebhookID, AccountID: first.AccountID, URL: first.URL,
		Count: len(deaths), DeliveryIDs: ids, Since: since.UTC().Truncate(time.Microsecond)}
	if err := writeNotification(ctx, tx, e.river, n, targets, deadNoticeEventID(first.WebhookID, sendAt), now, sendAt); err != nil {
		return err
	}
	return store.SetDeadNotice(ctx, tx, first.WebhookID, sendAt)
}

// deadNoticeWindow is the worker's DeadNoticeWindow with its default.
func (w *Worker) deadNoticeWindow() time.Duration {
	if w.cfg.DeadNoticeWindow > 0 {
		return w.cfg.DeadNoticeWindow
	}
	return DeadNoticeWindowDefault
}

// addDeaths adds count deaths (ids the first of them) to the delivery.dead
// notification eventID, not sent yet, and reports whether it did (false:
// it is gone or has been attempted).
func addDeaths(ctx context.Context, tx pgx.Tx, eventID string, count int, ids []string) (bool, error) {
	body, err := store.LockEventBody(ctx, tx, eventID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	var env struct {
		Event struct {
			Data DeliveryDeadData `json:"data"`
		} `json:"event"`
		Timestamp string `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return false, fmt.Errorf("error reading delivery.dead notification %s: %w", eventID, err)
	}
	at, err := time.Parse(webhookrule.TimestampLayout, env.Timestamp)
	if err != nil {
		return false, fmt.Errorf("error reading delivery.dead notification %s: %w", eventID, err)
	}
	data := &env.Event.Data
	data.Count += count
	data.DeliveryIDs = append(data.DeliveryIDs, ids[:min(len(ids), maxDeadIDs-min(len(data.DeliveryIDs), maxDeadIDs))]...)
	encoded, err := json.Marshal(data)
	if err != nil {
		return false, err
	}
	if body, err = webhookrule.Envelope(webhookrule.NotifyDeliveryDead, encoded, at); err != nil {
		return false, err
	}
	return store.SetNotSentEventBody(ctx, tx, eventID, body)
}

// deadNoticeEventID is the event id of webhook webhookID's delivery.dead
// notification sent at sendAt: a UUIDv7 of that time whose other bits are
// a hash of both, so that the webhook's row of notifications (which holds
// sendAt) finds the one still gathering deaths.
func deadNoticeEventID(webhookID string, sendAt time.Time) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "delivery.dead:%s:%d", webhookID, sendAt.UnixMicro()))
	var u [16]byte
	ms := sendAt.UnixMilli()
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	copy(u[6:], sum[:10])
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 4122 variant
	return string(ident.Event) + "_" + hex.EncodeToString(u[:])
}
