package admin

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/store"
)

// getLimits is GET /v1/limits: an account key sees its account, an admin
// key names one with ?account_id=.
func (a *API) getLimits(w http.ResponseWriter, r *http.Request) {
	q, apiErr := queryParams(r, "account_id")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	accountID, apiErr := queryAccount(r, q)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	used, err := store.CountLiveWebhooks(r.Context(), a.pool, accountID)
	if err != nil {
		a.logger.Error("error counting webhooks", zap.String("account_id", accountID), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	p := principalFrom(r.Context())
	writeJSON(w, http.StatusOK, &apitype.Limits{
		AccountID:        accountID,
		Scope:            p.Scope,
		Webhooks:         apitype.WebhookLimit{Used: used, Limit: a.maxWebhooks},
		FanoutPerRequest: a.enqueuer.MaxFanout(),
		RateLimits: apitype.RateLimits{
			Management: a.rateLimitOf(budgetManagement, p, "requests"),
			Intake:     a.rateLimitOf(budgetIntake, p, "events"),
		},
		Bodies: apitype.BodyLimits{PerKeyBytes: a.bodyShares.size, MinRateBytesPerSecond: max(a.bodyMinRate, 0)},
	})
}

// rateLimitOf is p's budget and what is left of it.
func (a *API) rateLimitOf(budget string, p *Principal, unit string) apitype.RateLimit {
	rate := a.rateFor(budget, p.Scope)
	if !rate.On() {
		return apitype.RateLimit{Unit: unit}
	}
	remaining := max(int(a.limiter.tokens(bucketKey(budget, p), rate)), 0)
	return apitype.RateLimit{Limited: true, Unit: unit, PerSecond: rate.PerSecond, Burst: rate.Burst, Remaining: &remaining}
}
