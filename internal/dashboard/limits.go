package dashboard

import (
	"fmt"
	"strconv"

	"github.com/mono/webhookd/apitype"
)

// rateText says the budget in words: "50 requests a second, 100 at once (97
// left)" or "No limit".
func rateText(r apitype.RateLimit) string {
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
