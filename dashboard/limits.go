package dashboard

import (
	"fmt"
	"strconv"
)

// apiLimits is GET /v1/limits: the signed-in key's limits and its
// account's, shown in the API page's Limits panel.
type apiLimits struct {
	Webhooks struct {
		Used  int `json:"used"`
		Limit int `json:"limit"`
	} `json:"webhooks"`
	FanoutPerRequest int `json:"fanout_per_request"`
	RateLimits       struct {
		Management apiRate `json:"management"`
		Intake     apiRate `json:"intake"`
	} `json:"rate_limits"`
}

// apiRate is one of the key's budgets (per server process).
type apiRate struct {
	Limited   bool    `json:"limited"`
	Unit      string  `json:"unit"`
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
	Remaining *int    `json:"remaining"`
}

// Text says the budget in words: "50 requests a second, 100 at once (97
// left)" or "No limit".
func (r apiRate) Text() string {
	if !r.Limited {
		return "No limit"
	}
	rate := strconv.FormatFloat(r.PerSecond, 'f', -1, 64) + " " + r.Unit + " a second"
	if r.PerSecond < 1 {
		rate = strconv.FormatFloat(r.PerSecond*60, 'f', -1, 64) + " " + r.Unit + " a minute"
	}
	s := fmt.Sprintf("%s, %d at once", rate, r.Burst)
	if r.Remaining != nil {
		s += fmt.Sprintf(" (%d left)", *r.Remaining)
	}
	return s
}
