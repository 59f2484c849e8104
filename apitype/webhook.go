package apitype

import (
	"encoding/json"
	"time"
)

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

// Why a webhook is paused (Webhook.PauseReason): PauseManual by a
// request; PauseAuto by webhookd, its endpoint failing for too long;
// PauseGone by a 410 Gone answer when its OnGone is OnGonePause.
const (
	PauseManual = "manual"
	PauseAuto   = "auto"
	PauseGone   = "gone"
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

// TestSendRequest is POST /v1/webhooks/{id}/test: Type nil (or
// the body absent) sends webhook.test; a catalogue type sends its example.
type TestSendRequest struct {
	// ID is the path's {id}.
	ID   string  `json:"-"`
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

// WebhookCreate is the body of POST /v1/webhooks. A field absent (nil)
// takes its default; AccountID may be left out by a key bound to an
// account (its own).
type WebhookCreate struct {
	AccountID   *string            `json:"account_id"`
	URL         *string            `json:"url"`
	Description *string            `json:"description"`
	Headers     *map[string]string `json:"headers"`
	EventTypes  *[]string          `json:"event_types"`
	// SignatureScheme is SchemeMono (the default) or SchemeStandard;
	// OnGone is OnGoneRetry (the default) or OnGonePause.
	SignatureScheme *string `json:"signature_scheme"`
	OnGone          *string `json:"on_gone"`
	// TLS is the client certificate and CA bundle; OAuth the OAuth2
	// client credentials setting.
	TLS   *WebhookTLSSetting   `json:"tls"`
	OAuth *WebhookOAuthSetting `json:"oauth"`
	// RateLimitPerSecond caps attempts started per second (1–100); null
	// or absent: no limit.
	RateLimitPerSecond NullableInt `json:"rate_limit_per_second"`
	// Ordering is OrderingNone (the default) or OrderingFIFO.
	Ordering *string `json:"ordering"`
}

// WebhookPatch is PATCH /v1/webhooks/{id}: ID is the path's {id}, the
// rest the body's fields to change; absent (nil) ones stay as they are.
type WebhookPatch struct {
	ID          string  `json:"-"`
	Description *string `json:"description"`
	// Headers replaces the custom headers; {} removes them.
	Headers *map[string]string `json:"headers"`
	// EventTypes replaces the event-type filter; [] takes every type.
	EventTypes *[]string `json:"event_types"`
	// Paused pauses (true) or resumes (false) the webhook.
	Paused *bool `json:"paused"`
	// SignatureScheme switches the scheme (SchemeStandard needs a secret
	// in the standard form); OnGone sets what a 410 does.
	SignatureScheme *string `json:"signature_scheme"`
	OnGone          *string `json:"on_gone"`
	// TLS replaces the client certificate and CA bundle; {} removes them.
	TLS *WebhookTLSSetting `json:"tls"`
	// OAuth replaces the OAuth2 setting; {} removes it.
	OAuth *WebhookOAuthSetting `json:"oauth"`
	// RateLimitPerSecond sets the rate limit (1–100); null removes it.
	RateLimitPerSecond NullableInt `json:"rate_limit_per_second"`
	// Ordering switches the ordering (OrderingNone or OrderingFIFO).
	Ordering *string `json:"ordering"`
}

// WebhookTLSSetting is a webhook's tls setting as a create or update
// gives it, in PEM. On update it replaces the whole setting; {} removes
// it.
type WebhookTLSSetting struct {
	// ClientCertificate is the chain presented to the receiver, leaf
	// first; ClientKey its private key, unencrypted. Stored encrypted,
	// never returned.
	ClientCertificate *string `json:"client_certificate"`
	ClientKey         *string `json:"client_key"`
	// CABundle is CA certificates trusted for this webhook besides the
	// system roots (a receiver with a certificate from a private CA).
	CABundle *string `json:"ca_bundle"`
}

// WebhookOAuthSetting is a webhook's OAuth2 client credentials setting as
// a create or update gives it. On update it replaces the whole setting
// (the client secret included); {} removes it.
type WebhookOAuthSetting struct {
	TokenURL     *string  `json:"token_url"`
	ClientID     *string  `json:"client_id"`
	ClientSecret *string  `json:"client_secret"`
	Scopes       []string `json:"scopes"`
	Audience     *string  `json:"audience"`
	// AuthStyle is header (HTTP Basic) or body, set explicitly.
	AuthStyle *string `json:"auth_style"`
}

// NullableInt is a whole number a body may give, give as null, or leave
// out: Set says the field was there (null included), Value its number
// (nil for null).
type NullableInt struct {
	Set   bool
	Value *int
}

// UnmarshalJSON implements json.Unmarshaler: a whole number or null.
func (f *NullableInt) UnmarshalJSON(b []byte) error {
	f.Set = true
	if string(b) == "null" {
		f.Value = nil
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return err // a *json.UnmarshalTypeError: the decoder names the field
	}
	f.Value = &n
	return nil
}

// MarshalJSON implements json.Marshaler: the number, or null (when not
// Set too: a body that must leave the field out uses another type).
func (f NullableInt) MarshalJSON() ([]byte, error) {
	if f.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(*f.Value)
}

// WebhookGet names the webhook of GET /v1/webhooks/{id} and of the
// routes under it that take nothing else (secret, health, DELETE): the
// path's {id}.
type WebhookGet struct {
	ID string `json:"id"`
}

// WebhookList is the query of GET /v1/webhooks: the account (a key bound
// to one: its own by default), a page of Limit (0: the default) from
// Cursor (a previous page's next_cursor).
type WebhookList struct {
	AccountID string `json:"account_id,omitempty"`
	Cursor    string `json:"cursor,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

// WebhookRotateSecret is POST /v1/webhooks/{id}/rotate-secret: ID the
// path's {id}; ExpiresIn how long the secret being replaced keeps
// signing, a duration from 0 to 7 days (24h, 90m, 2d; default 24h).
type WebhookRotateSecret struct {
	ID        string  `json:"-"`
	ExpiresIn *string `json:"expires_in"`
}

// FIFOSkip is POST /v1/webhooks/{id}/fifo/skip: ID the path's {id},
// DeliveryID the dead head to skip (so a stale request can't skip a
// newer head).
type FIFOSkip struct {
	ID         string  `json:"-"`
	DeliveryID *string `json:"delivery_id"`
}
