package apitype

import "time"

// Signature schemes: SchemeMono sends Mono-Signature; SchemeStandard sends
// the Standard Webhooks headers (webhook-id, webhook-timestamp,
// webhook-signature) too.
const (
	SchemeMono     = "mono"
	SchemeStandard = "standard"
)

// What a 410 Gone answer does: OnGoneRetry retries it like any failure;
// OnGonePause pauses the webhook (PauseReason "gone").
const (
	OnGoneRetry = "retry"
	OnGonePause = "pause"
)

// Webhook is a registered endpoint as the API shows it. Secret is set only
// in the answer of POST /v1/webhooks (GET /v1/webhooks/{id}/secret reads
// it later); custom header values and credentials are never shown.
type Webhook struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	// URL is the normalised URL deliveries go to.
	URL         string `json:"url"`
	Description string `json:"description"`
	// HeaderNames are the custom headers sent on every attempt; their
	// values, stored encrypted, are never shown.
	HeaderNames []string `json:"header_names"`
	// EventTypes filters the events it receives (empty: all).
	EventTypes []string `json:"event_types"`
	// Paused is true while nothing is sent to it (PausedAt, PauseReason say
	// since when and why: manual, auto or gone).
	Paused      bool       `json:"paused"`
	PausedAt    *time.Time `json:"paused_at"`
	PauseReason *string    `json:"pause_reason"`
	// PreviousSecretExpiresAt is when the secret rotated out stops signing;
	// nil when only the current secret signs.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	// SignatureScheme is SchemeMono or SchemeStandard.
	SignatureScheme string `json:"signature_scheme"`
	// OnGone is what a 410 answer does: OnGoneRetry or OnGonePause.
	OnGone string `json:"on_gone"`
	// OAuth is the OAuth2 client credentials setting, never its secret;
	// absent when none.
	OAuth *WebhookOAuth `json:"oauth,omitempty"`
	// TLS describes the client certificate and CA bundle; absent when none.
	TLS *WebhookTLS `json:"tls,omitempty"`
	// RateLimitPerSecond is the most attempts started per second, nil when
	// there is no limit.
	RateLimitPerSecond *int `json:"rate_limit_per_second"`
	// Ordering is OrderingNone or OrderingFIFO; FIFO, for a FIFO webhook
	// only, its line.
	Ordering  string       `json:"ordering"`
	FIFO      *WebhookFIFO `json:"fifo,omitempty"`
	Secret    string       `json:"secret,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
}

// Delivery orderings: OrderingNone sends deliveries unordered (the
// default); OrderingFIFO strictly in order, one at a time.
const (
	OrderingNone = "none"
	OrderingFIFO = "fifo"
)

// WebhookFIFO is a FIFO webhook's line: the dead head blocking it (nil
// when none) and how many deliveries wait behind the head.
type WebhookFIFO struct {
	BlockedBy *string `json:"blocked_by"`
	Waiting   int64   `json:"waiting"`
}

// WebhookTLS is a webhook's tls setting as the API shows it: never the
// key, nor the certificate itself.
type WebhookTLS struct {
	ClientCertificate *Certificate `json:"client_certificate"`
	CABundle          *CABundle    `json:"ca_bundle"`
}

// Certificate describes a client certificate.
type Certificate struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	// ExpiresSoon is true within 14 days of NotAfter, and once it has
	// passed.
	ExpiresSoon bool `json:"expires_soon"`
}

// CABundle describes the CA certificates a webhook trusts besides the
// system roots.
type CABundle struct {
	Subjects []string `json:"subjects"`
}

// WebhookOAuth is a webhook's OAuth2 client credentials setting as the API
// shows it, never the client secret.
type WebhookOAuth struct {
	TokenURL  string   `json:"token_url"`
	ClientID  string   `json:"client_id"`
	Scopes    []string `json:"scopes"`
	Audience  string   `json:"audience"`
	AuthStyle string   `json:"auth_style"`
}

// WebhookSecret is the answer of GET /v1/webhooks/{id}/secret.
type WebhookSecret struct {
	Secret string `json:"secret"`
}

// WebhookHealth is a webhook endpoint's health, as the worker processes
// write it every few seconds: GET /v1/webhooks/{id}/health.
type WebhookHealth struct {
	WebhookID string `json:"webhook_id"`
	// ConsecutiveFailures counts the failed attempts since the last
	// successful one (approximate with several worker processes).
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	LastFailureAt       *time.Time `json:"last_failure_at"`
	// LastFailureKind is the error kind of the last failed attempt
	// (http_status, timeout, connect, ...).
	LastFailureKind *string            `json:"last_failure_kind"`
	LastHour        WebhookHealthCount `json:"last_hour"`
	// ClientCertificate is the client certificate's expiry, when the
	// webhook has one: expires_soon within 14 days of it (and after).
	ClientCertificate *CertificateExpiry `json:"client_certificate,omitempty"`
}

// WebhookHealthCount counts a webhook's attempts of the last hour.
type WebhookHealthCount struct {
	Attempts  int `json:"attempts"`
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
	// SuccessRate is Successes / Attempts, from 0 to 1; nil without
	// attempts.
	SuccessRate *float64 `json:"success_rate"`
}

// CertificateExpiry is when a client certificate expires.
type CertificateExpiry struct {
	NotAfter    time.Time `json:"not_after"`
	ExpiresSoon bool      `json:"expires_soon"`
}

// TestSendRequest is the body of POST /v1/webhooks/{id}/test: Type nil (or
// the body absent) sends webhook.test; a catalogue type sends its example.
type TestSendRequest struct {
	Type *string `json:"type,omitempty"`
}

// TestSend is the answer of POST /v1/webhooks/{id}/test: the one attempt
// of a test event.
type TestSend struct {
	DeliveryID string  `json:"delivery_id"`
	EventID    string  `json:"event_id"`
	Type       string  `json:"type"`
	Succeeded  bool    `json:"succeeded"`
	Attempt    Attempt `json:"attempt"`
}
