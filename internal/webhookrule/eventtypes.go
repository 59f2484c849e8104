package webhookrule

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
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

// Notification types: webhookd's own events, listed in the event
// catalogue with their JSON Schemas.
const (
	NotifyWebhookPaused   = "webhook.paused"
	NotifyWebhookResumed  = "webhook.resumed"
	NotifyDeliveryDead    = "delivery.dead"
	NotifyEndpointFailing = "endpoint.failing"
)

// NotificationTypes are the types a webhook may subscribe to by naming
// them in its event_types.
var NotificationTypes = []string{NotifyDeliveryDead, NotifyEndpointFailing, NotifyWebhookPaused, NotifyWebhookResumed}

// notificationPrefixes are the namespaces of the notification types:
// another name in them (webhook.test aside) is a notification type that
// doesn't exist.
var notificationPrefixes = []string{"delivery.", "endpoint.", "webhook."}

// IsNotificationType reports whether eventType is one of webhookd's own.
func IsNotificationType(eventType string) bool { return slices.Contains(NotificationTypes, eventType) }

// notificationNamespace reports whether name is in a notification type's
// namespace without being webhook.test, the test send's type.
func notificationNamespace(name string) bool {
	if name == "webhook.test" {
		return false
	}
	for _, p := range notificationPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// checkNotificationsOnly refuses a filter that names notification types
// beside other event types: a webhook that takes webhookd's notifications
// takes only them (and webhook.test), so that it is never the subject of
// the notifications it subscribes to: its deliveries are all
// notifications, whose failures never make one (engine.Notify). A webhook that
// also received events would be subscribing to notifications about its
// own trouble, which would have to go to the endpoint in trouble.
func checkNotificationsOnly(filter []string) error {
	var notification, other string
	for _, f := range filter {
		switch {
		case IsNotificationType(f):
			notification = cmp.Or(notification, f)
		case f != "webhook.test":
			other = cmp.Or(other, f)
		}
	}
	if notification == "" || other == "" {
		return nil
	}
	return &ValidationError{Field: "event_types", Code: "notification_self_subscription",
		Message: "event_types names the notification type " + notification + " beside the event type " + other +
			": a webhook that receives events would be subscribing to notifications about itself; subscribe a second webhook that names only notification types"}
}
