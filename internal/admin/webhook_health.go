package admin

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/store"
)

// webhookHealthWindow is the span of GET /v1/webhooks/{id}/health's
// last_hour.
const webhookHealthWindow = time.Hour

// getWebhookHealth answers a webhook's endpoint health: consecutive failed
// attempts, the last success and failure, and the attempts of the last
// hour. The worker processes write it every few seconds, so it lags the
// attempts by up to that much.
func (a *API) getWebhookHealth(w http.ResponseWriter, r *http.Request) {
	hook, apiErr := a.loadWebhook(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	h, err := store.GetWebhookHealth(r.Context(), a.pool, hook.ID, a.now().Add(-webhookHealthWindow))
	if err != nil {
		a.logger.Error("error reading webhook health", zap.String("webhook_id", hook.ID), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	var cert *apitype.CertificateExpiry
	if info := renderTLS(&hook.TLS, a.now()); info != nil && info.ClientCertificate != nil {
		cert = &apitype.CertificateExpiry{NotAfter: info.ClientCertificate.NotAfter, ExpiresSoon: info.ClientCertificate.ExpiresSoon}
	}
	writeJSON(w, http.StatusOK, apitype.WebhookHealth{
		WebhookID:           hook.ID,
		ClientCertificate:   cert,
		ConsecutiveFailures: h.ConsecutiveFailures,
		LastSuccessAt:       utcPtr(h.LastSuccessAt),
		LastFailureAt:       utcPtr(h.LastFailureAt),
		LastFailureKind:     h.LastFailureKind,
		LastHour: apitype.WebhookHealthCount{
			Attempts: h.Attempts, Successes: h.Successes, Failures: h.Failures, SuccessRate: h.SuccessRate,
		},
	})
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
