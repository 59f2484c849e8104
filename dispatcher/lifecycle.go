package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/mono/webhookd/internal/store"
)

// EventTypesMax is how many entries a webhook's event-type filter may have.
const EventTypesMax = 100

// MatchEventType reports whether a webhook with filter receives events of
// type eventType: an empty filter takes every type; an entry ending in *
// takes every type that starts with what comes before it; any other entry
// takes that exact type.
func MatchEventType(filter []string, eventType string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if prefix, ok := strings.CutSuffix(f, "*"); ok {
			if strings.HasPrefix(eventType, prefix) {
				return true
			}
		} else if f == eventType {
			return true
		}
	}
	return false
}

// ValidateEventTypeFilter checks a webhook's event-type filter: at most
// EventTypesMax entries, each an event type (ValidateType's grammar), or
// the start of one followed by a single * at the end. It returns the
// entries sorted, without repeats.
func ValidateEventTypeFilter(filter []string) ([]string, error) {
	if len(filter) > EventTypesMax {
		return nil, &ValidationError{Field: "event_types", Code: "too_many_event_types", Message: fmt.Sprintf("event_types may have at most %d entries (got %d)", EventTypesMax, len(filter))}
	}
	out := make([]string, 0, len(filter))
	for i, f := range filter {
		name, wildcard := strings.CutSuffix(f, "*")
		if !typePattern.MatchString(name) || strings.Contains(name, "*") {
			what := "an event type such as bank_transfer_approved"
			if wildcard {
				what = "the start of an event type followed by one *, such as bank_transfer_*"
			}
			return nil, &ValidationError{Field: fmt.Sprintf("event_types[%d]", i), Code: "invalid_event_type", Message: "each entry must be " + what + " (lowercase letters, digits, _ and ., starting with a letter)"}
		}
		if !wildcard && notificationNamespace(name) && !IsNotificationType(name) {
			return nil, &ValidationError{Field: fmt.Sprintf("event_types[%d]", i), Code: "unknown_notification_type",
				Message: "webhook.*, delivery.* and endpoint.* names are webhookd's notification types: " + strings.Join(NotificationTypes, ", ") + " (and webhook.test)"}
		}
		out = append(out, f)
	}
	if err := checkNotificationsOnly(out); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// resumeBatch is how many paused deliveries one statement resumes.
const resumeBatch = 1000

// ResumePaused puts every paused delivery of webhook id back on its
// schedule, in tx: each gets a new job due when the delivery was due (due
// ones at once), inserted in the order they were due, so they are worked in
// that order. The webhook must no longer be paused (store.UnpauseWebhook
// in the same tx). It returns how many it resumed.
func ResumePaused(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, webhookID string, now time.Time) (int, error) {
	total := 0
	for {
		batch, err := store.PausedDeliveries(ctx, tx, webhookID, resumeBatch)
		if err != nil {
			return total, fmt.Errorf("error loading paused deliveries: %w", err)
		}
		if len(batch) == 0 {
			return total, nil
		}
		params := make([]river.InsertManyParams, len(batch))
		for i, d := range batch {
			params[i] = river.InsertManyParams{Args: DeliveryArgs{DeliveryID: d.ID}, InsertOpts: &river.InsertOpts{ScheduledAt: d.DueAt, Priority: PriorityBulk}}
		}
		jobOf, err := insertDeliveryJobs(ctx, client, tx, params)
		if err != nil {
			return total, fmt.Errorf("error resuming paused deliveries: %w", err)
		}
		ids, days, jobs := make([]string, len(batch)), make([]time.Time, len(batch)), make([]int64, len(batch))
		for i, d := range batch {
			ids[i], days[i], jobs[i] = d.ID, d.PartDay, jobOf[d.ID]
		}
		n, err := store.UnparkDeliveries(ctx, tx, ids, days, jobs, now)
		if err != nil {
			return total, fmt.Errorf("error resuming paused deliveries: %w", err)
		}
		total += int(n)
		if len(batch) < resumeBatch {
			return total, nil
		}
	}
}
