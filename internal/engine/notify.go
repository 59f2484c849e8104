package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// NotifyAccount is the internal account that owns webhookd's own
// notifications (see Notify): their events and deliveries, and the
// operator's webhook (WEBHOOKD_NOTIFY_URL, store.OperatorWebhookID). The
// API refuses it as an account to write to or list; it has no quotas.
const NotifyAccount = "_webhookd"

// Notification is one of webhookd's own events about a webhook of an
// account: Data is its event data (a JSON object, see the payload types).
type Notification struct {
	Type      string
	AccountID string
	WebhookID string
	Data      any
}

// WebhookPausedData is the data of webhook.paused.
type WebhookPausedData struct {
	WebhookID string `json:"webhook_id"`
	AccountID string `json:"account_id"`
	URL       string `json:"url"`
	// Reason is manual, auto or gone.
	Reason   string    `json:"reason"`
	PausedAt time.Time `json:"paused_at"`
}

// WebhookResumedData is the data of webhook.resumed.
type WebhookResumedData struct {
	WebhookID string    `json:"webhook_id"`
	AccountID string    `json:"account_id"`
	URL       string    `json:"url"`
	ResumedAt time.Time `json:"resumed_at"`
	// Deliveries is how many paused deliveries went back on their
	// schedule.
	Deliveries int `json:"deliveries"`
}

// Notify writes notification n in tx, the transaction of the state change
// it reports, as an ordinary event of NotifyAccount: one signed delivery
// (with its River job, through client) to the operator's webhook, if there
// is one, and one to each live webhook of n's account that names n.Type in
// its event_types, the webhook n is about aside. An empty filter or a
// wildcard does not take notifications. Nothing is written for a
// notification about NotifyAccount's own webhook, so a notification's own
// failure never produces another. The deliveries are exempt from the
// fan-out limit; a paused subscriber's wait like any other.
func Notify(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], n *Notification, now time.Time) error {
	if client == nil {
		return nil
	}
	targets, err := notificationTargets(ctx, tx, n)
	if err != nil || len(targets) == 0 {
		return err
	}
	return writeNotification(ctx, tx, client, n, targets, ident.New(ident.Event), now, now)
}

// notificationTargets are the webhooks notification n goes to (see
// Notify): none for one about NotifyAccount's own webhook.
func notificationTargets(ctx context.Context, tx pgx.Tx, n *Notification) ([]store.LiveWebhook, error) {
	if n.AccountID == NotifyAccount {
		return nil, nil
	}
	hooks, err := store.LiveWebhooks(ctx, tx, []string{NotifyAccount, n.AccountID})
	if err != nil {
		return nil, fmt.Errorf("error listing notification webhooks: %w", err)
	}
	var targets []store.LiveWebhook
	for _, w := range hooks[NotifyAccount] {
		if slices.Contains(w.EventTypes, n.Type) {
			targets = append(targets, w)
		}
	}
	for _, w := range hooks[n.AccountID] {
		if w.ID != n.WebhookID && slices.Contains(w.EventTypes, n.Type) {
			targets = append(targets, w)
		}
	}
	return targets, nil
}

// writeNotification writes n in tx as event eventID of NotifyAccount, made
// at now, with one delivery (and its River job) to each of targets, first
// due at sendAt (now or later).
func writeNotification(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], n *Notification, targets []store.LiveWebhook, eventID string, now, sendAt time.Time) error {
	data, err := json.Marshal(n.Data)
	if err != nil {
		return fmt.Errorf("error encoding %s data: %w", n.Type, err)
	}
	now = now.UTC().Truncate(time.Microsecond)
	body, err := webhookrule.Envelope(n.Type, data, now)
	if err != nil {
		return err
	}
	ev := &store.NewEvent{
		ID: eventID, AccountID: NotifyAccount, Type: n.Type, Body: body, OccurredAt: now, CreatedAt: now,
		DeliveryIDs: make([]string, len(targets)), WebhookIDs: make([]string, len(targets)), JobIDs: make([]int64, len(targets)),
	}
	later := sendAt.After(now)
	opts := &river.InsertOpts{Priority: PriorityNormal}
	if later {
		opts.ScheduledAt = sendAt
	}
	var params []river.InsertManyParams
	for i, w := range targets {
		ev.DeliveryIDs[i], ev.WebhookIDs[i] = ident.New(ident.Delivery), w.ID
		if !w.Paused {
			params = append(params, river.InsertManyParams{Args: DeliveryArgs{DeliveryID: ev.DeliveryIDs[i]}, InsertOpts: opts})
		}
	}
	if len(params) > 0 {
		jobOf, err := insertDeliveryJobs(ctx, client, tx, params)
		if err != nil {
			return err
		}
		for i, id := range ev.DeliveryIDs {
			ev.JobIDs[i] = jobOf[id]
		}
	}
	if err := store.InsertEvents(ctx, tx, []*store.NewEvent{ev}); err != nil {
		return fmt.Errorf("error inserting %s notification: %w", n.Type, err)
	}
	if later {
		if err := store.DelayEventDeliveries(ctx, tx, ev.ID, sendAt); err != nil {
			return fmt.Errorf("error scheduling %s notification: %w", n.Type, err)
		}
	}
	return nil
}

// Notify is Notify with the enqueuer's River client and clock.
func (e *Enqueuer) Notify(ctx context.Context, tx pgx.Tx, n *Notification) error {
	return Notify(ctx, tx, e.river, n, e.now())
}

// PauseNotifying pauses webhook hook (reason, by API key keyID or nil) and
// writes its webhook.paused notification in the same transaction, with
// client (nil: none). store.ErrAlreadyPaused when it was paused already:
// nothing is written.
func PauseNotifying(ctx context.Context, db store.DB, client *river.Client[pgx.Tx], id, accountID, reason string, keyID *string, now time.Time) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := store.PauseWebhook(ctx, tx, id, accountID, reason, keyID, now); err != nil {
			return err
		}
		hook, err := store.GetWebhook(ctx, tx, id)
		if err != nil {
			return err
		}
		return Notify(ctx, tx, client, &Notification{Type: webhookrule.NotifyWebhookPaused, AccountID: hook.AccountID, WebhookID: hook.ID, Data: &WebhookPausedData{
			WebhookID: hook.ID, AccountID: hook.AccountID, URL: hook.URLNormalized, Reason: reason, PausedAt: now.UTC().Truncate(time.Microsecond),
		}}, now)
	})
}

// validateNotReserved refuses an event a producer may not enqueue: one of
// webhookd's notification types, or one for NotifyAccount.
func validateNotReserved(ev *Event) error {
	if webhookrule.IsNotificationType(ev.Type) {
		return &ValidationError{Field: "type", Code: "reserved_event_type", Message: "type " + ev.Type + " is one of webhookd's own notification types; producers can't send it"}
	}
	if ev.AccountID == NotifyAccount {
		return &ValidationError{Field: "account_id", Code: "reserved_account", Message: "account " + NotifyAccount + " is webhookd's own"}
	}
	return nil
}

// Pause is PauseNotifying with the enqueuer's River client.
func (e *Enqueuer) Pause(ctx context.Context, db store.DB, id, accountID, reason string, keyID *string, now time.Time) error {
	return PauseNotifying(ctx, db, e.river, id, accountID, reason, keyID, now)
}

// contextClient is the River client of a job's context (River's, or a
// hand-off's: withClient), or nil outside a job (a test calling a step
// directly): then no notification is written.
func contextClient(ctx context.Context) *river.Client[pgx.Tx] {
	if client, ok := ctx.Value(clientKey{}).(*river.Client[pgx.Tx]); ok {
		return client
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return nil
	}
	return client
}

// clientKey is withClient's context key.
type clientKey struct{}

// withClient gives ctx the River client a job run outside River (a
// hand-off) writes its notifications with; nil: none.
func withClient(ctx context.Context, client *river.Client[pgx.Tx]) context.Context {
	if client == nil {
		return ctx
	}
	return context.WithValue(ctx, clientKey{}, client)
}

// clientFor is the outbound client of target's attempts: NotifyClient for
// the operator's notification webhook, when set; the client otherwise.
func (w *Worker) clientFor(target *store.Target) *outbound.Client {
	if target.WebhookID == store.OperatorWebhookID && w.cfg.NotifyClient != nil {
		return w.cfg.NotifyClient
	}
	return w.client
}
