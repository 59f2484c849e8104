package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// TestEventType is the type of a test send that names no catalogue type.
const TestEventType = "webhook.test"

// Sender makes one signed HTTP attempt of a delivery: the worker's path
// (engine.Worker.Send), shared by test sends.
type Sender interface {
	Send(ctx context.Context, target *store.Target, start time.Time, log *zap.Logger) *outbound.Result
}

// opSendTest is POST /v1/webhooks/{id}/test, for account and admin keys.
var opSendTest = &opSpec{route: "POST /v1/webhooks/{id}/test", scopes: scopesAccount, budget: budgetManagement}

// SendTest is POST /v1/webhooks/{id}/test: a real signed envelope (type
// webhook.test, or a catalogue type with its example data) sent at once
// through the worker's path (signature, custom headers, the outbound
// client and its guard), answered with the attempt. Each webhook has a
// rate of test sends (429 rate_limited beyond it) and slots in flight per
// process (429 test_sends_busy when they are taken); both answer at once,
// with RetryAfter, and write nothing. It is recorded as an
// event with one delivery marked test, finished after that one attempt:
// never retried, never sent to the account's other webhooks.
func (a *API) SendTest(ctx context.Context, p *Principal, req *apitype.TestSendRequest) (*apitype.TestSend, error) {
	if e := a.admit(ctx, p, opSendTest); e != nil {
		return nil, e
	}
	hook, apiErr := a.webhookOf(ctx, p, req.ID)
	if apiErr != nil {
		return nil, apiErr
	}
	if a.sender == nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "this process can't send test events"}
	}

	eventType := TestEventType
	now := a.now().UTC().Truncate(time.Microsecond)
	eventID, deliveryID := ident.New(ident.Event), ident.New(ident.Delivery)
	data, _ := json.Marshal(map[string]string{
		"webhook_id": hook.ID,
		"message":    "A test event from Mono webhooks: if you can verify its signature, your endpoint is ready.",
	})
	if req.Type != nil && *req.Type != TestEventType {
		et, err := store.GetEventType(ctx, a.pool, *req.Type)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "unknown_event_type", Field: "type", Message: "type must be webhook.test or an event type of the catalogue (GET /v1/event-types)"}
		}
		if err != nil {
			return nil, a.internal("error loading event type", err)
		}
		eventType, data = et.Type, et.Example
	}
	body, err := webhookrule.Envelope(eventType, data, now)
	if err != nil {
		return nil, a.internal("error assembling test envelope", err)
	}

	target := &store.Target{
		DeliveryID: deliveryID, EventID: eventID, AccountID: hook.AccountID, WebhookID: hook.ID, Body: body,
		URL: hook.URLNormalized, SecretCipher: hook.SecretCiphertext, SecretKeyID: hook.SecretKeyID,
		EventType: eventType, CreatedAt: now, HeadersCipher: hook.HeadersCiphertext, HeadersKeyID: hook.HeadersKeyID,
		PreviousSecretCipher: hook.PreviousSecretCiphertext, PreviousSecretKeyID: hook.PreviousSecretKeyID,
		PreviousSecretExpiresAt: hook.PreviousSecretExpiresAt, SignatureScheme: hook.SignatureScheme,
		TLSCipher: hook.TLS.Ciphertext, TLSKeyID: hook.TLS.KeyID, TLSCABundle: hook.TLS.CABundle,
		// A test send is one attempt outside the schedule: whatever it is
		// answered (a 410 too), it never pauses the webhook.
		OnGone: store.OnGoneRetry,
	}
	// Within the webhook's rate, with a slot free (the worker's, shared
	// with deliveries, on a process with workers), or refused at once,
	// having written nothing.
	release, retryAfter, apiErr := a.takeTestSend(hook.ID)
	if apiErr != nil {
		apiErr.RetryAfter = time.Duration(retryAfter) * time.Second
		return nil, apiErr
	}
	// Within the webhook's rate limit, if it has one: its next start
	// slot, if that comes within a second (internal/admin/throttle.go).
	start, retryAfter, apiErr := a.throttleTestSend(ctx, hook)
	if apiErr != nil {
		release(&outbound.Result{})
		apiErr.RetryAfter = time.Duration(retryAfter) * time.Second
		return nil, apiErr
	}
	log := a.logger.With(zap.String("delivery_id", deliveryID), zap.String("event_id", eventID), zap.String("webhook_id", hook.ID), zap.String("account_id", hook.AccountID))
	res := a.sender.Send(ctx, target, start, log)
	release(res)

	attempt := &store.AttemptRecord{
		Number: 1, Generation: 1, Counted: true, ScheduledAt: start, StartedAt: start,
		Duration: res.Duration, ResponseExcerpt: res.ResponseExcerpt, SignatureT: start.Unix(),
	}
	if res.StatusCode != 0 {
		attempt.StatusCode = &res.StatusCode
	}
	if res.ErrorKind != "" {
		attempt.ErrorKind, attempt.ErrorMessage = &res.ErrorKind, &res.ErrorMessage
	}
	state := store.StateDead
	if res.Succeeded() {
		state = store.StateSucceeded
	}
	ev := &store.NewEvent{
		ID: eventID, AccountID: hook.AccountID, Type: eventType, Body: body, OccurredAt: now, CreatedAt: now,
		DeliveryIDs: []string{deliveryID}, WebhookIDs: []string{hook.ID}, JobIDs: []int64{0},
	}
	// Recorded even if the caller went away meanwhile: the receiver may
	// have seen it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := store.InsertTestDelivery(rctx, a.pool, ev, state, attempt, a.now()); err != nil {
		return nil, a.internal("error recording test send", err)
	}
	log.Info("test event sent", zap.Int("status", res.StatusCode), zap.String("error_kind", res.ErrorKind), zap.Duration("duration", res.Duration))
	return &apitype.TestSend{
		DeliveryID: deliveryID, EventID: eventID, Type: eventType, Succeeded: res.Succeeded(),
		Attempt: apitype.Attempt{
			Number: 1, Generation: 1, Counted: true, ScheduledAt: start.UTC(), StartedAt: start.UTC(),
			DurationMS: float64(res.Duration.Microseconds()) / 1000,
			StatusCode: attempt.StatusCode, ErrorKind: attempt.ErrorKind, ErrorMessage: attempt.ErrorMessage,
			ResponseExcerpt: excerpt(res.ResponseExcerpt), SignatureT: attempt.SignatureT,
		},
	}, nil
}

// decodeSendTest reads POST /v1/webhooks/{id}/test: the path's id, then
// the body, which may be empty.
func decodeSendTest(w http.ResponseWriter, r *http.Request, req *apitype.TestSendRequest) *Error {
	return decodeWebhookBody(w, r, SmallBodyLimit, true, req, &req.ID)
}
