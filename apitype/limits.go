package apitype

// LimitsQuery is the query of GET /v1/limits: the account whose webhooks
// are counted; "" is the calling key's own account (required for a key
// bound to none).
type LimitsQuery struct {
	AccountID string `json:"account_id,omitempty"`
}

// Limits is GET /v1/limits: the limits that apply to the calling key and
// its account, and how much of each is used.
type Limits struct {
	AccountID string `json:"account_id"`
	// Scope is the calling key's scope; the rate limits are its own.
	Scope    string       `json:"scope"`
	Webhooks WebhookLimit `json:"webhooks"`
	// FanoutPerRequest is the most deliveries (events × the webhooks each
	// goes to) one request may create; omitted when there is no limit.
	FanoutPerRequest int `json:"fanout_per_request,omitempty"`
	// RateLimits are the calling key's budgets in this server process
	// (each process counts its own).
	RateLimits RateLimits `json:"rate_limits"`
	// Bodies are the limits on request bodies.
	Bodies BodyLimits `json:"bodies"`
}

// WebhookLimit is how many live webhooks an account has, and may have.
type WebhookLimit struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// RateLimits are a key's two budgets.
type RateLimits struct {
	Management RateLimit `json:"management"`
	Intake     RateLimit `json:"intake"`
}

// RateLimit is one budget: a token bucket of Burst refilled at PerSecond,
// holding Remaining now; Limited is false when the key has none.
type RateLimit struct {
	Limited   bool    `json:"limited"`
	Unit      string  `json:"unit"`
	PerSecond float64 `json:"per_second,omitempty"`
	Burst     int     `json:"burst,omitempty"`
	Remaining *int    `json:"remaining,omitempty"`
}

// BodyLimits are the limits on request bodies.
type BodyLimits struct {
	// PerKeyBytes is how much of the process's body budget one key's
	// bodies may hold at once.
	PerKeyBytes int64 `json:"per_key_bytes"`
	// MinRateBytesPerSecond is the slowest a body may arrive after its
	// first second; 0 when there is no minimum.
	MinRateBytesPerSecond int64 `json:"min_rate_bytes_per_second"`
}
