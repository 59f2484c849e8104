package admin

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/mono/webhookd/store"
)

// limitsResponse is GET /v1/limits: the limits that apply to the calling
// key and its account, and how much of each is used.
type limitsResponse struct {
	AccountID string `json:"account_id"`
	// Scope is the calling key's scope; the rate limits are its own.
	Scope    string       `json:"scope"`
	Webhooks webhookLimit `json:"webhooks"`
	// FanoutPerRequest is the most deliveries (events × the webhooks each
	// goes to) one request may create; omitted when there is no limit.
	FanoutPerRequest int `json:"fanout_per_request,omitempty"`
	// RateLimits are the calling key's budgets in this server process
	// (each process counts its own).
	RateLimits rateLimits `json:"rate_limits"`
	// Bodies are the limits on request bodies.
	Bodies bodyLimits `json:"bodies"`
}

type webhookLimit struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

type rateLimits struct {
	Management rateLimit `json:"management"`
	Intake     rateLimit `json:"intake"`
}

// rateLimit is one budget: a token bucket of Burst refilled at PerSecond,
// holding Remaining now; Limited is false when the key has none.
type rateLimit struct {
	Limited   bool    `json:"limited"`
	Unit      string  `json:"unit"`
	PerSecond float64 `json:"per_second,omitempty"`
	Burst     int     `json:"burst,omitempty"`
	Remaining *int    `json:"remaining,omitempty"`
}

type bodyLimits struct {
	// PerKeyBytes is how much of the process's body budget one key's
	// bodies may hold at once.
	PerKeyBytes int64 `json:"per_key_bytes"`
	// MinRateBytesPerSecond is the slowest a body may arrive after its
	// first second; 0 when there is no minimum.
	MinRateBytesPerSecond int64 `json:"min_rate_bytes_per_second"`
}

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
	writeJSON(w, http.StatusOK, &limitsResponse{
		AccountID:        accountID,
		Scope:            p.Scope,
		Webhooks:         webhookLimit{Used: used, Limit: a.maxWebhooks},
		FanoutPerRequest: a.enqueuer.MaxFanout(),
		RateLimits: rateLimits{
			Management: a.rateLimitOf(budgetManagement, p, "requests"),
			Intake:     a.rateLimitOf(budgetIntake, p, "events"),
		},
		Bodies: bodyLimits{PerKeyBytes: a.bodyShares.size, MinRateBytesPerSecond: max(a.bodyMinRate, 0)},
	})
}

// rateLimitOf is p's budget and what is left of it.
func (a *API) rateLimitOf(budget string, p *Principal, unit string) rateLimit {
	rate := a.rateFor(budget, p.Scope)
	if !rate.On() {
		return rateLimit{Unit: unit}
	}
	remaining := max(int(a.limiter.tokens(bucketKey(budget, p), rate)), 0)
	return rateLimit{Limited: true, Unit: unit, PerSecond: rate.PerSecond, Burst: rate.Burst, Remaining: &remaining}
}
