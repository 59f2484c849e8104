package engine

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/schedule"
)

// decideAttempt, outcome × attempt number × Retry-After → next state and
// time, on the production schedule: attempt 1 (next in 30 s, the one after
// in 90 s), 9 (the next is the last, in 15,330 s) and 10 (the last).
func TestDecideAttempt(t *testing.T) {
	t.Parallel()

	s, err := schedule.New(schedule.ScaleDefault)
	require.NoError(t, err)
	end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sec := func(n int) *time.Duration { d := time.Duration(n) * time.Second; return &d }

	failed := func(status int) *outbound.Result {
		return &outbound.Result{StatusCode: status, ErrorKind: outbound.ErrorKindHTTPStatus, ErrorMessage: "HTTP " + strconv.Itoa(status)}
	}
	// retryAfter is a 429 or 503 answer's Retry-After header read as the
	// client reads it, at end.
	retryAfter := func(status int, value string) *outbound.Result {
		res := failed(status)
		res.RetryAfter = outbound.ParseRetryAfter(value, end)
		return res
	}
	kind := func(kind string) *outbound.Result {
		return &outbound.Result{ErrorKind: kind, ErrorMessage: kind}
	}

	// want is the decision for one attempt number: state and the delay
	// after end of the next attempt (nil: none).
	type want struct {
		state string
		next  *time.Duration
	}
	// A failure that follows the plain schedule.
	scheduled := map[int]want{1: {store.StatePending, sec(30)}, 9: {store.StatePending, sec(15330)}, 10: {store.StateDead, nil}}
	succeeded := map[int]want{1: {store.StateSucceeded, nil}, 9: {store.StateSucceeded, nil}, 10: {store.StateSucceeded, nil}}

	tests := []struct {
		name     string
		res      *outbound.Result
		stopping bool   // the job's context cancelled by our shutdown
		onGone   string // the webhook's on_gone
		want     map[int]want
		// uncounted: recorded as interrupted, not counted.
		uncounted bool
		pause     bool
		errorKind string // recorded; "" means the result's
	}{
		{name: "200", res: &outbound.Result{StatusCode: 200}, want: succeeded},
		{name: "204", res: &outbound.Result{StatusCode: 204}, want: succeeded},
		{name: "2xx while stopping", res: &outbound.Result{StatusCode: 200}, stopping: true, want: succeeded},
		{name: "500", res: failed(500), want: scheduled},
		{name: "404", res: failed(404), want: scheduled},
		{name: "301", res: failed(301), want: scheduled},
		{name: "timeout", res: kind(outbound.ErrorKindTimeout), want: scheduled},
		{name: "network error", res: kind(outbound.ErrorKindNetwork), want: scheduled},
		{name: "connect error", res: kind(outbound.ErrorKindConnect), want: scheduled},
		{name: "dns error", res: kind(outbound.ErrorKindDNS), want: scheduled},
		{name: "blocked address", res: kind(outbound.ErrorKindBlockedAddress), want: scheduled},
		{name: "secret unavailable", res: kind(ErrorKindSecretUnavailable), want: scheduled},
		// A cancelled attempt the job's deadline cut short counts like
		// any failure; one our shutdown cut short does not count and is
		// due at once, even the last.
		{name: "cancelled by the job's deadline", res: kind(outbound.ErrorKindCanceled), want: scheduled},
		{name: "cancelled by our shutdown", res: kind(outbound.ErrorKindCanceled), stopping: true, uncounted: true, errorKind: ErrorKindInterrupted,
			want: map[int]want{1: {store.StatePending, sec(0)}, 9: {store.StatePending, sec(0)}, 10: {store.StatePending, sec(0)}}},
		{name: "timeout while stopping", res: kind(outbound.ErrorKindTimeout), stopping: true, want: scheduled},
		// 410 Gone follows the schedule; with on_gone pause the webhook
		// is paused as well.
		{name: "410 on_gone retry", res: failed(http.StatusGone), onGone: store.OnGoneRetry, want: scheduled},
		{name: "410 on_gone unset", res: failed(http.StatusGone), want: scheduled},
		{name: "410 on_gone pause", res: failed(http.StatusGone), onGone: store.OnGonePause, pause: true, want: scheduled},
		{name: "500 on_gone pause", res: failed(500), onGone: store.OnGonePause, want: scheduled},
		// Retry-After: never sooner than the schedule, never later than
		// the delay after the next attempt (90 s after attempt 1; after
		// attempt 9, whose next is the last, the next's own 15,330 s).
		{name: "429 Retry-After 60", res: retryAfter(429, "60"),
			want: map[int]want{1: {store.StatePending, sec(60)}, 9: {store.StatePending, sec(15330)}, 10: {store.StateDead, nil}}},
		{name: "503 Retry-After 60", res: retryAfter(503, "60"),
			want: map[int]want{1: {store.StatePending, sec(60)}, 9: {store.StatePending, sec(15330)}, 10: {store.StateDead, nil}}},
		{name: "429 Retry-After below the schedule", res: retryAfter(429, "10"), want: scheduled},
		{name: "429 Retry-After beyond the clamp", res: retryAfter(429, "86400"),
			want: map[int]want{1: {store.StatePending, sec(90)}, 9: {store.StatePending, sec(15330)}, 10: {store.StateDead, nil}}},
		{name: "503 Retry-After HTTP date", res: retryAfter(503, end.Add(75*time.Second).Format(http.TimeFormat)),
			want: map[int]want{1: {store.StatePending, sec(75)}, 9: {store.StatePending, sec(15330)}, 10: {store.StateDead, nil}}},
		{name: "429 Retry-After HTTP date beyond the clamp", res: retryAfter(429, end.Add(48*time.Hour).Format(http.TimeFormat)),
			want: map[int]want{1: {store.StatePending, sec(90)}, 9: {store.StatePending, sec(15330)}, 10: {store.StateDead, nil}}},
		{name: "429 Retry-After HTTP date past", res: retryAfter(429, end.Add(-time.Hour).Format(http.TimeFormat)), want: scheduled},
		{name: "429 Retry-After unreadable", res: retryAfter(429, "soon"), want: scheduled},
		{name: "429 without Retry-After", res: failed(429), want: scheduled},
		// The client reads Retry-After on 429 and 503 only; should another
		// status carry one, it is honoured the same way.
		{name: "500 with a Retry-After", res: &outbound.Result{StatusCode: 500, ErrorKind: outbound.ErrorKindHTTPStatus, RetryAfter: time.Minute},
			want: map[int]want{1: {store.StatePending, sec(60)}, 9: {store.StatePending, sec(15330)}, 10: {store.StateDead, nil}}},
		{name: "200 with a Retry-After", res: &outbound.Result{StatusCode: 200, RetryAfter: time.Minute}, want: succeeded},
	}
	for _, tt := range tests {
		for _, attempt := range []int{1, 9, 10} {
			w, ok := tt.want[attempt]
			require.True(t, ok, "%s: no want for attempt %d", tt.name, attempt)
			got := decideAttempt(s, attemptFacts{Result: tt.res, Attempt: attempt, End: end, Stopping: tt.stopping, OnGone: tt.onGone})
			msg := tt.name + ", attempt " + strconv.Itoa(attempt)
			require.Equal(t, w.state, got.State, msg)
			if w.next == nil {
				require.Nil(t, got.NextAttemptAt, msg)
			} else {
				require.NotNil(t, got.NextAttemptAt, msg)
				require.Equal(t, end.Add(*w.next), *got.NextAttemptAt, msg)
			}
			require.Equal(t, !tt.uncounted, got.Counted, msg)
			require.Equal(t, tt.pause, got.PauseWebhook, msg)
			wantKind := tt.res.ErrorKind
			if tt.errorKind != "" {
				wantKind = tt.errorKind
			}
			require.Equal(t, wantKind, got.ErrorKind, msg)
		}
	}
}

// Between the first and the last: attempt 8's next is due in 7,650 s and
// the one after in 15,330 s, the most a Retry-After can ask for.
func TestDecideAttemptRetryAfterClampBeforeTheLast(t *testing.T) {
	t.Parallel()

	s, err := schedule.New(schedule.ScaleDefault)
	require.NoError(t, err)
	end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for retryAfter, want := range map[time.Duration]time.Duration{
		0:              7650 * time.Second,
		time.Hour:      7650 * time.Second,
		3 * time.Hour:  3 * time.Hour,
		24 * time.Hour: 15330 * time.Second,
	} {
		got := decideAttempt(s, attemptFacts{Result: &outbound.Result{StatusCode: 503, ErrorKind: outbound.ErrorKindHTTPStatus, RetryAfter: retryAfter}, Attempt: 8, End: end})
		require.Equal(t, store.StatePending, got.State)
		require.Equal(t, end.Add(want), *got.NextAttemptAt, "Retry-After %v", retryAfter)
	}
}

// A scaled schedule (staging, tests) scales the delays and the clamp alike;
// a Retry-After is taken as it is.
func TestDecideAttemptScaled(t *testing.T) {
	t.Parallel()

	s, err := schedule.New(0.001)
	require.NoError(t, err)
	end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 0, 30 * time.Millisecond},
		{1, 60 * time.Millisecond, 60 * time.Millisecond},
		{1, time.Minute, 90 * time.Millisecond},
		{9, time.Minute, 15330 * time.Millisecond},
	} {
		got := decideAttempt(s, attemptFacts{Result: &outbound.Result{StatusCode: 429, ErrorKind: outbound.ErrorKindHTTPStatus, RetryAfter: tc.retryAfter}, Attempt: tc.attempt, End: end})
		require.Equal(t, store.StatePending, got.State)
		require.Equal(t, end.Add(tc.want), *got.NextAttemptAt, "attempt %d, Retry-After %v", tc.attempt, tc.retryAfter)
	}
	got := decideAttempt(s, attemptFacts{Result: &outbound.Result{StatusCode: 429, ErrorKind: outbound.ErrorKindHTTPStatus, RetryAfter: time.Minute}, Attempt: 10, End: end})
	require.Equal(t, store.StateDead, got.State)
	require.Nil(t, got.NextAttemptAt)
}
