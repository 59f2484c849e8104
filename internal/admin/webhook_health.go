package admin

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/store"
)

// webhookHealthWindow is the span of GET /v1/webhooks/{id}/health's
// last_hour.
const webhookHealthWindow = time.Hour

// opGetWebhookHealth is GET /v1/webhooks/{id}/health, for account and
// admin keys.
var opGetWebhookHealth = &opSpec{route: "GET /v1/webhooks/{id}/health", scopes: scopesAccount, budget: budgetManagement}

// GetWebhookHealth answers a webhook's endpoint health (GET
// /v1/webhooks/{id}/health): consecutive failed attempts, the last success
// and failure, and the attempts of the last hour. The worker processes
// write it every few seconds, so it lags the attempts by up to that much.
func (a *API) GetWebhookHealth(ctx context.Context, p *Principal, req *apitype.WebhookGet) (*apitype.WebhookHealth, error) {
	if e := a.admit(ctx, p, opGetWebhookHealth); e != nil {
		return nil, e
	}
	hook, apiErr := a.webhookOf(ctx, p, req.ID)
	if apiErr != nil {
		return nil, apiErr
	}
	h, err := store.GetWebhookHealth(ctx, a.pool, hook.ID, a.now().Add(-webhookHealthWindow))
	if err != nil {
		return nil, a.internal("error reading webhook health", err, zap.String("webhook_id", hook.ID))
	}
	var cert *apitype.CertificateExpiry
	if info := renderTLS(&hook.TLS, a.now()); info != nil && info.ClientCertificate != nil {
		cert = &apitype.CertificateExpiry{NotAfter: info.ClientCertificate.NotAfter, ExpiresSoon: info.ClientCertificate.ExpiresSoon}
	}
	return &apitype.WebhookHealth{
		WebhookID:           hook.ID,
		ClientCertificate:   cert,
		ConsecutiveFailures: h.ConsecutiveFailures,
		LastSuccessAt:       utcPtr(h.LastSuccessAt),
		LastFailureAt:       utcPtr(h.LastFailureAt),
		LastFailureKind:     h.LastFailureKind,
		LastHour: apitype.WebhookHealthCount{
			Attempts: h.Attempts, Successes: h.Successes, Failures: h.Failures, SuccessRate: h.SuccessRate,
		},
	}, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// A webhook endpoint's state, judged from its health (EndpointState).
const (
	// EndpointNone: never attempted.
	EndpointNone = "none"
	// EndpointOK: the last attempt succeeded.
	EndpointOK = "ok"
	// EndpointDegraded: the last attempt failed, but one succeeded within
	// the last hour.
	EndpointDegraded = "degraded"
	// EndpointFailing: the last attempt failed and none succeeded within
	// the last hour.
	EndpointFailing = "failing"
)

// EndpointState is the one rule judging an endpoint from its health (the
// answer of GetWebhookHealth): the dashboard's Webhooks page and detail
// view both show it.
func EndpointState(h *apitype.WebhookHealth) string {
	switch {
	case h.ConsecutiveFailures > 0 && h.LastHour.Successes > 0:
		return EndpointDegraded
	case h.ConsecutiveFailures > 0:
		return EndpointFailing
	case h.LastSuccessAt != nil:
		return EndpointOK
	}
	return EndpointNone
}
