// Package durations parses the durations webhookd's settings and API take:
// Go durations (10s, 1m30s, 720h) and whole days (30d).
package durations

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse reads a Go duration or a whole number of days, "30d".
func Parse(raw string) (time.Duration, error) {
	raw = strings.TrimSpace(raw)
	if days, ok := strings.CutSuffix(raw, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("bad number of days %q", days)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(raw)
}
