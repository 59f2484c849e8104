package dashboard

// RateLimit is the webhook's rate_limit_per_second, 0 when it has none.
func (h apiWebhook) RateLimit() int {
	if h.RateLimitPerSecond == nil {
		return 0
	}
	return *h.RateLimitPerSecond
}
