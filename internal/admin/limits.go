package admin

import (
	"context"
	"net/http"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/store"
)

// getLimits is GET /v1/limits: an account key sees its account, an admin
// key names one with ?account_id=.
// opGetLimits is GET /v1/limits, for account and admin keys.
var opGetLimits = &opSpec{route: "GET /v1/limits", scopes: scopesAccount, budget: budgetManagement}

// GetLimits is GET /v1/limits: the limits of p and of the account
// req.AccountID resolves to (accountOf), and how much of each is used.
// The rate limits' remaining tokens are counted after this call's own.
func (a *API) GetLimits(ctx context.Context, p *Principal, req *apitype.LimitsQuery) (*apitype.Limits, error) {
	if e := a.admit(ctx, p, opGetLimits); e != nil {
		return nil, e
	}
	accountID, e := accountOf(p, req.AccountID)
	if e != nil {
		return nil, e
	}
	used, err := store.CountLiveWebhooks(ctx, a.pool, accountID)
	if err != nil {
		return nil, a.internal("error counting webhooks", err, zap.String("account_id", accountID))
	}
	return &apitype.Limits{
		AccountID:        accountID,
		Scope:            p.Scope,
		Webhooks:         apitype.WebhookLimit{Used: used, Limit: a.maxWebhooks},
		FanoutPerRequest: a.enqueuer.MaxFanout(),
		RateLimits: apitype.RateLimits{
			Management: a.rateLimitOf(budgetManagement, p, "requests"),
			Intake:     a.rateLimitOf(budgetIntake, p, "events"),
		},
		Bodies: apitype.BodyLimits{PerKeyBytes: a.bodyShares.size, MinRateBytesPerSecond: max(a.bodyMinRate, 0)},
	}, nil
}

// decodeLimits reads GET /v1/limits's query: account_id.
func decodeLimits(_ http.ResponseWriter, r *http.Request, req *apitype.LimitsQuery) *Error {
	q, e := queryParams(r, "account_id")
	if e != nil {
		return e
	}
	req.AccountID = q.Get("account_id")
	return nil
}

func (a *API) rateLimitOf(budget string, p *Principal, unit string) apitype.RateLimit {
	rate := a.rateFor(budget, p.Scope)
	if !rate.On() {
		return apitype.RateLimit{Unit: unit}
	}
	remaining := max(int(a.limiter.tokens(bucketKey(budget, p), rate)), 0)
	return apitype.RateLimit{Limited: true, Unit: unit, PerSecond: rate.PerSecond, Burst: rate.Burst, Remaining: &remaining}
}
