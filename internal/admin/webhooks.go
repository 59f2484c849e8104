package admin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/durations"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/metrics"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
	"github.com/mono/webhookd/signer"
)

// DescriptionMaxLen is the longest webhook description, in characters.
const DescriptionMaxLen = 500

// MaxWebhooksPerAccountDefault is Config.MaxWebhooksPerAccount's default:
// the most live webhooks one account may have (Stripe allows 16).
const MaxWebhooksPerAccountDefault = 20

type webhookRequest struct {
	AccountID   *string            `json:"account_id"`
	URL         *string            `json:"url"`
	Description *string            `json:"description"`
	Headers     *map[string]string `json:"headers"`
	EventTypes  *[]string          `json:"event_types"`
	// SignatureScheme is "mono" (the default) or "standard"; OnGone is
	// "retry" (the default) or "pause".
	SignatureScheme *string `json:"signature_scheme"`
	OnGone          *string `json:"on_gone"`
	// TLS is the client certificate and CA bundle (internal/admin/webhook_auth.go).
	TLS *webhookTLSRequest `json:"tls"`
	// OAuth is the OAuth2 client credentials setting (internal/admin/webhook_auth.go).
	OAuth *webhookOAuthRequest `json:"oauth"`
	// RateLimitPerSecond caps attempts started per second (1–100); null
	// or absent: no limit (internal/admin/throttle.go).
	RateLimitPerSecond webhookRateField `json:"rate_limit_per_second"`
	// Ordering is "none" (the default) or "fifo" (internal/admin/fifo.go).
	Ordering *string `json:"ordering"`
}

// newSecret returns a new webhook secret: whsec_ and the standard (padded)
// base64 of 32 random bytes, the form the Standard Webhooks libraries take
// (secrets issued before were base64url without padding; the Mono scheme
// keys its HMAC with the whole string, so both work with it).
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return signer.NewSecret(b)
}

// checkScheme and checkOnGone check a create or update's signature_scheme
// and on_gone, when given.
func checkScheme(scheme *string) *Error {
	if scheme != nil && *scheme != store.SchemeMono && *scheme != store.SchemeStandard {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_signature_scheme", Field: "signature_scheme", Message: `signature_scheme must be "mono" or "standard"`}
	}
	return nil
}

func checkOnGone(onGone *string) *Error {
	if onGone != nil && *onGone != store.OnGoneRetry && *onGone != store.OnGonePause {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_on_gone", Field: "on_gone", Message: `on_gone must be "retry" or "pause"`}
	}
	return nil
}

// errSecretRotationRequired answers a switch to the standard scheme while
// the webhook's secret is in the form from before it.
var errSecretRotationRequired = &Error{Status: http.StatusUnprocessableEntity, Code: "secret_rotation_required", Field: "signature_scheme",
	Message: "this webhook's secret predates the Standard Webhooks form (whsec_ and standard base64) that the standard scheme needs: rotate the secret (POST /v1/webhooks/{id}/rotate-secret), then switch"}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req webhookRequest
	if apiErr := decodeJSON(w, r, WebhookBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	accountID, apiErr := accountFor(r, req.AccountID)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if req.URL == nil || strings.TrimSpace(*req.URL) == "" {
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "url", Message: "url is required"})
		return
	}
	normalized, err := a.policy.ValidateURL(*req.URL)
	if err != nil {
		var urlErr *outbound.URLError
		if errors.As(err, &urlErr) {
			writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: urlErr.Code, Field: "url", Message: urlErr.Message})
			return
		}
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_url", Field: "url", Message: "url is not a valid URL"})
		return
	}
	description := ""
	if req.Description != nil {
		description = *req.Description
		if apiErr := checkDescription(description); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}
	if apiErr := firstError(checkScheme(req.SignatureScheme), checkOnGone(req.OnGone), req.RateLimitPerSecond.check(), checkOrdering(req.Ordering)); apiErr != nil {
		writeError(w, apiErr)
		return
	}

	id := ident.New(ident.Webhook)
	headers, apiErr := a.webhookHeaders(id, req.Headers)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	tlsSetting, oauth, oauthSet, apiErr := a.webhookAuth(id, req.TLS, req.OAuth)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var eventTypes []string
	if req.EventTypes != nil {
		if eventTypes, err = webhookrule.ValidateEventTypeFilter(*req.EventTypes); err != nil {
			writeError(w, validationError(err))
			return
		}
	}
	secret := newSecret()
	ciphertext, keyID, err := a.keys.Encrypt([]byte(secret), []byte(id))
	if err != nil {
		a.logger.Error("error encrypting webhook secret", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	hook := &store.Webhook{
		ID:                 id,
		AccountID:          accountID,
		URL:                *req.URL,
		URLNormalized:      normalized,
		Description:        description,
		SecretCiphertext:   ciphertext,
		SecretKeyID:        keyID,
		CreatedAt:          a.now().UTC().Truncate(time.Microsecond),
		EventTypes:         eventTypes,
		SignatureScheme:    store.SchemeMono,
		OnGone:             store.OnGoneRetry,
		RateLimitPerSecond: req.RateLimitPerSecond.Value,
		Ordering:           store.OrderingNone,
	}
	if req.Ordering != nil {
		hook.Ordering = *req.Ordering
	}
	if req.SignatureScheme != nil {
		hook.SignatureScheme = *req.SignatureScheme
	}
	if req.OnGone != nil {
		hook.OnGone = *req.OnGone
	}
	if headers != nil {
		hook.HeaderNames, hook.HeadersCiphertext, hook.HeadersKeyID = headers.Names, headers.Ciphertext, headers.KeyID
	}
	if tlsSetting != nil {
		hook.TLS = *tlsSetting
	}
	if err := store.InsertWebhookWithin(r.Context(), a.pool, hook, a.maxWebhooks); err != nil {
		if errors.Is(err, store.ErrDuplicateURL) {
			writeError(w, &Error{Status: http.StatusConflict, Code: "duplicate_url", Field: "url", Message: "this account already has a webhook with this URL; delete it first to create a new one (with a new secret)"})
			return
		}
		if errors.Is(err, store.ErrWebhookLimit) {
			writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "webhook_limit_reached", Message: fmt.Sprintf("an account may have at most %d webhooks and this one has reached the limit; delete a webhook to make room for another", a.maxWebhooks)})
			return
		}
		a.logger.Error("error inserting webhook", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	if oauthSet && oauth != nil {
		if err := a.saveOAuth(r.Context(), id, oauth); err != nil {
			a.logger.Error("error saving webhook OAuth2 setting", zap.String("webhook_id", id), zap.Error(err))
			writeError(w, errInternal(err))
			return
		}
	}
	a.logger.Info("webhook created", zap.String("webhook_id", id), zap.String("account_id", accountID))
	out := renderWebhook(hook)
	out.Secret = secret
	if oauth != nil {
		out.OAuth = renderOAuth(oauth)
	}
	writeJSON(w, http.StatusCreated, out)
}

// checkDescription applies the description rule of create and update.
func checkDescription(description string) *Error {
	if utf8.RuneCountInString(description) > DescriptionMaxLen {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "too_long", Field: "description", Message: fmt.Sprintf("description must be at most %d characters", DescriptionMaxLen)}
	}
	return nil
}

// renderWebhook is a webhook as the API shows it: the normalised URL, never
// the secret.
func renderWebhook(hook *store.Webhook) apitype.Webhook {
	out := apitype.Webhook{
		ID: hook.ID, AccountID: hook.AccountID, URL: hook.URLNormalized, Description: hook.Description, CreatedAt: hook.CreatedAt,
		HeaderNames: hook.HeaderNames, EventTypes: hook.EventTypes,
		Paused: hook.PausedAt != nil, PausedAt: hook.PausedAt, PauseReason: hook.PauseReason,
		SignatureScheme: hook.SignatureScheme, OnGone: hook.OnGone,
		TLS:                renderTLS(&hook.TLS, time.Now()),
		RateLimitPerSecond: hook.RateLimitPerSecond,
		Ordering:           hook.Ordering,
	}
	if out.Ordering == store.OrderingFIFO {
		out.FIFO = &apitype.WebhookFIFO{} // withFIFO fills it in
	}
	if out.HeaderNames == nil {
		out.HeaderNames = []string{}
	}
	if out.EventTypes == nil {
		out.EventTypes = []string{}
	}
	if hook.PreviousSecretExpiresAt != nil && hook.PreviousSecretExpiresAt.After(time.Now()) {
		out.PreviousSecretExpiresAt = hook.PreviousSecretExpiresAt
	}
	return out
}

// webhookHeaders validates and encrypts the custom headers of a create or
// update request; nil when the request doesn't set them.
func (a *API) webhookHeaders(webhookID string, given *map[string]string) (*store.WebhookHeaders, *Error) {
	if given == nil {
		return nil, nil
	}
	names, err := webhookrule.ValidateHeaders(*given)
	if err != nil {
		return nil, validationError(err)
	}
	ct, keyID, err := webhookrule.EncryptHeaders(a.keys, webhookID, *given)
	if err != nil {
		a.logger.Error("error encrypting webhook headers", zap.Error(err))
		return nil, errInternal(err)
	}
	return &store.WebhookHeaders{Names: names, Ciphertext: ct, KeyID: keyID}, nil
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request) {
	q, pg, apiErr := listQuery(r, ident.Webhook, "account_id")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	accountID, apiErr := queryAccount(r, q)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	hooks, err := store.ListWebhooks(r.Context(), a.pool, accountID, pg.before, pg.limit+1)
	if err != nil {
		a.logger.Error("error listing webhooks", zap.String("account_id", accountID), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	rows := make([]apitype.Webhook, len(hooks))
	outs := make([]*apitype.Webhook, len(hooks))
	for i, hook := range hooks {
		rows[i] = renderWebhook(hook)
		outs[i] = &rows[i]
	}
	if err := a.withOAuth(r.Context(), outs...); err != nil {
		writeError(w, errInternal(err))
		return
	}
	if err := a.withFIFO(r.Context(), outs...); err != nil {
		writeError(w, errInternal(err))
		return
	}
	writeJSON(w, http.StatusOK, newPage(rows, pg, func(h apitype.Webhook) string { return h.ID }))
}

// loadWebhook returns the live webhook named by the path, or the error to
// answer: 404 when it does not exist, is deleted or is another account's.
func (a *API) loadWebhook(r *http.Request) (*store.Webhook, *Error) {
	id, apiErr := pathID(r, ident.Webhook, "webhook")
	if apiErr != nil {
		return nil, apiErr
	}
	hook, err := store.GetWebhook(r.Context(), a.pool, id)
	if apiErr := a.checkLoaded(r, "webhook", err, func() string { return hook.AccountID }); apiErr != nil {
		return nil, apiErr
	}
	return hook, nil
}

func (a *API) getWebhook(w http.ResponseWriter, r *http.Request) {
	hook, apiErr := a.loadWebhook(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	out := renderWebhook(hook)
	if err := a.withOAuth(r.Context(), &out); err != nil {
		writeError(w, errInternal(err))
		return
	}
	if err := a.withFIFO(r.Context(), &out); err != nil {
		writeError(w, errInternal(err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// revealSecret answers the webhook's signing secret (the dashboard's eye),
// recording which key saw it; the value itself is neither stored nor logged.
func (a *API) revealSecret(w http.ResponseWriter, r *http.Request) {
	hook, apiErr := a.loadWebhook(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	secret, err := a.keys.Decrypt(hook.SecretCiphertext, hook.SecretKeyID, []byte(hook.ID))
	if err != nil {
		a.logger.Error("error decrypting webhook secret", zap.String("webhook_id", hook.ID), zap.String("secret_key_id", hook.SecretKeyID), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	p := principalFrom(r.Context())
	var keyID *string
	if !p.Bootstrap() {
		keyID = &p.KeyID
	}
	if err := store.RecordSecretReveal(r.Context(), a.pool, hook.ID, keyID, a.now().UTC()); err != nil {
		a.logger.Error("error recording secret reveal", zap.String("webhook_id", hook.ID), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.logger.Info("webhook secret revealed", zap.String("webhook_id", hook.ID), zap.String("account_id", hook.AccountID), zap.String("key_id", keyName(p)))
	writeJSON(w, http.StatusOK, apitype.WebhookSecret{Secret: string(secret)})
}

// webhookPatch is the body of PATCH /v1/webhooks/{id}: the fields to
// change; absent (or null) ones stay as they are.
type webhookPatch struct {
	Description *string `json:"description"`
	// Headers replaces the custom headers; {} removes them.
	Headers *map[string]string `json:"headers"`
	// EventTypes replaces the event-type filter; [] takes every type.
	EventTypes *[]string `json:"event_types"`
	// Paused pauses (true) or resumes (false) the webhook.
	Paused *bool `json:"paused"`
	// SignatureScheme switches the scheme ("standard" needs a secret in
	// the standard form); OnGone sets what a 410 does.
	SignatureScheme *string `json:"signature_scheme"`
	OnGone          *string `json:"on_gone"`
	// TLS replaces the client certificate and CA bundle; {} removes them.
	TLS *webhookTLSRequest `json:"tls"`
	// OAuth replaces the OAuth2 setting; {} removes it.
	OAuth *webhookOAuthRequest `json:"oauth"`
	// RateLimitPerSecond sets the rate limit (1–100); null removes it.
	RateLimitPerSecond webhookRateField `json:"rate_limit_per_second"`
	// Ordering switches the ordering ("none" or "fifo", internal/admin/fifo.go).
	Ordering *string `json:"ordering"`
}

func (a *API) updateWebhook(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Webhook, "webhook")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var req webhookPatch
	if apiErr := decodeJSON(w, r, WebhookBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if req.Description != nil {
		if apiErr := checkDescription(*req.Description); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}
	headers, apiErr := a.webhookHeaders(id, req.Headers)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	tlsSetting, oauth, oauthSet, apiErr := a.webhookAuth(id, req.TLS, req.OAuth)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var eventTypes *[]string
	if req.EventTypes != nil {
		filter, err := webhookrule.ValidateEventTypeFilter(*req.EventTypes)
		if err != nil {
			writeError(w, validationError(err))
			return
		}
		eventTypes = &filter
	}
	if apiErr := firstError(checkScheme(req.SignatureScheme), checkOnGone(req.OnGone), req.RateLimitPerSecond.check(), checkOrdering(req.Ordering)); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	p := principalFrom(r.Context())
	if req.SignatureScheme != nil && *req.SignatureScheme == store.SchemeStandard {
		if apiErr := a.checkStandardSecret(r.Context(), id, p.AccountID); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}
	hook, err := store.UpdateWebhook(r.Context(), a.pool, id, p.AccountID, &store.WebhookUpdate{Description: req.Description, Headers: headers, EventTypes: eventTypes,
		SignatureScheme: req.SignatureScheme, OnGone: req.OnGone, TLS: tlsSetting, RateLimitPerSecond: req.RateLimitPerSecond.update()})
	if err == nil && req.Paused != nil {
		hook, err = a.setPaused(r.Context(), hook, *req.Paused, p)
	}
	if err == nil && req.Ordering != nil {
		hook, err = a.setOrdering(r.Context(), hook, *req.Ordering)
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errNotFound("webhook"))
		return
	}
	if err != nil {
		a.logger.Error("error updating webhook", zap.String("webhook_id", id), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	if oauthSet {
		if err := a.saveOAuth(r.Context(), id, oauth); err != nil {
			a.logger.Error("error saving webhook OAuth2 setting", zap.String("webhook_id", id), zap.Error(err))
			writeError(w, errInternal(err))
			return
		}
	}
	a.logger.Info("webhook updated", zap.String("webhook_id", id), zap.String("account_id", hook.AccountID))
	out := renderWebhook(hook)
	if err := a.withOAuth(r.Context(), &out); err != nil {
		writeError(w, errInternal(err))
		return
	}
	if err := a.withFIFO(r.Context(), &out); err != nil {
		writeError(w, errInternal(err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// checkStandardSecret refuses a switch to the standard scheme while the
// webhook's current secret is not in the standard form
// (secret_rotation_required; 404 when there is no such webhook).
func (a *API) checkStandardSecret(ctx context.Context, id, accountID string) *Error {
	hook, err := store.GetWebhookOf(ctx, a.pool, id, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("webhook")
	}
	if err != nil {
		a.logger.Error("error loading webhook", zap.String("webhook_id", id), zap.Error(err))
		return errInternal(err)
	}
	if hook.SignatureScheme == store.SchemeStandard {
		return nil
	}
	secret, err := a.keys.Decrypt(hook.SecretCiphertext, hook.SecretKeyID, []byte(hook.ID))
	if err != nil {
		a.logger.Error("error decrypting webhook secret", zap.String("webhook_id", hook.ID), zap.String("secret_key_id", hook.SecretKeyID), zap.Error(err))
		return errInternal(err)
	}
	if _, ok := signer.StandardKey(string(secret)); !ok {
		return errSecretRotationRequired
	}
	return nil
}

// firstError is the first of errs that is not nil.
func firstError(errs ...*Error) *Error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// setPaused pauses or resumes hook (nothing when it is so already) and
// returns it as it is afterwards. Resuming puts every paused delivery back
// on its schedule in the same transaction.
func (a *API) setPaused(ctx context.Context, hook *store.Webhook, paused bool, p *Principal) (*store.Webhook, error) {
	var keyID *string
	if !p.Bootstrap() {
		keyID = &p.KeyID
	}
	now := a.now()
	if paused {
		err := a.enqueuer.Pause(ctx, a.pool, hook.ID, p.AccountID, store.PauseManual, keyID, now)
		if errors.Is(err, store.ErrAlreadyPaused) {
			return hook, nil
		}
		if err != nil {
			return nil, err
		}
		a.metrics.WebhookPause("pause", store.PauseManual)
		a.logger.Info("webhook paused", zap.String("webhook_id", hook.ID), zap.String("account_id", hook.AccountID), zap.String("key_id", keyName(p)))
		return store.GetWebhook(ctx, a.pool, hook.ID)
	}
	resumed := 0
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if err := store.UnpauseWebhook(ctx, tx, hook.ID, p.AccountID); err != nil {
			return err
		}
		var err error
		if resumed, err = a.enqueuer.Resume(ctx, tx, hook.ID); err != nil {
			return err
		}
		if err := store.RecordResume(ctx, tx, hook.ID, store.PauseManual, keyID, resumed, now); err != nil {
			return err
		}
		return a.enqueuer.Notify(ctx, tx, &dispatcher.Notification{Type: webhookrule.NotifyWebhookResumed, AccountID: hook.AccountID, WebhookID: hook.ID,
			Data: &dispatcher.WebhookResumedData{WebhookID: hook.ID, AccountID: hook.AccountID, URL: hook.URLNormalized, ResumedAt: now.UTC().Truncate(time.Microsecond), Deliveries: resumed}})
	})
	if errors.Is(err, store.ErrNotPaused) {
		return hook, nil
	}
	if err != nil {
		return nil, err
	}
	a.metrics.WebhookPause("resume", store.PauseManual)
	a.logger.Info("webhook resumed", zap.String("webhook_id", hook.ID), zap.String("account_id", hook.AccountID), zap.Int("deliveries", resumed), zap.String("key_id", keyName(p)))
	return store.GetWebhook(ctx, a.pool, hook.ID)
}

// rotateSecretRequest is the body of POST /v1/webhooks/{id}/rotate-secret.
type rotateSecretRequest struct {
	// ExpiresIn is how long the secret being replaced keeps signing: a
	// duration from 0 to 7 days (24h, 90m, 2d). Defaults to 24h.
	ExpiresIn *string `json:"expires_in"`
}

// Rotation overlap bounds.
const (
	RotationOverlapDefault = 24 * time.Hour
	RotationOverlapMax     = 7 * 24 * time.Hour
)

// rotateSecret is POST /v1/webhooks/{id}/rotate-secret: a new secret now,
// the old one signing too (a second v1=) until expires_in has passed.
func (a *API) rotateSecret(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Webhook, "webhook")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var req rotateSecretRequest
	if r.ContentLength != 0 {
		if apiErr := decodeJSON(w, r, SmallBodyLimit, &req); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}
	overlap := RotationOverlapDefault
	if req.ExpiresIn != nil {
		d, err := durations.Parse(*req.ExpiresIn)
		if err != nil || d < 0 || d > RotationOverlapMax {
			writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_duration", Field: "expires_in", Message: "expires_in must be a duration from 0 to 7 days, such as 24h, 90m or 2d"})
			return
		}
		overlap = d
	}
	secret := newSecret()
	ciphertext, keyID, err := a.keys.Encrypt([]byte(secret), []byte(id))
	if err != nil {
		a.logger.Error("error encrypting webhook secret", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	var expires *time.Time
	if overlap > 0 {
		t := a.now().Add(overlap).UTC().Truncate(time.Microsecond)
		expires = &t
	}
	p := principalFrom(r.Context())
	hook, err := store.RotateSecret(r.Context(), a.pool, id, p.AccountID, ciphertext, keyID, expires)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errNotFound("webhook"))
		return
	}
	if err != nil {
		a.logger.Error("error rotating webhook secret", zap.String("webhook_id", id), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.logger.Info("webhook secret rotated", zap.String("webhook_id", id), zap.String("account_id", hook.AccountID), zap.Duration("overlap", overlap), zap.String("key_id", keyName(p)))
	out := renderWebhook(hook)
	out.Secret = secret
	writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Webhook, "webhook")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	cancelled, err := store.DeleteWebhook(r.Context(), a.pool, id, principalFrom(r.Context()).AccountID, a.now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errNotFound("webhook"))
		return
	}
	if err != nil {
		a.logger.Error("error deleting webhook", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.metrics.DeliveriesFinished(metrics.OutcomeCancelled, "", int(cancelled))
	a.logger.Info("webhook deleted", zap.String("webhook_id", id), zap.Int64("cancelled_deliveries", cancelled))
	w.WriteHeader(http.StatusNoContent)
}

// validationError maps a dispatcher.ValidationError to the API: a data that
// is not an object is a wrong JSON type (400); the rest are 422.
func validationError(err error) *Error {
	var v *dispatcher.ValidationError
	if !errors.As(err, &v) {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Message: err.Error()}
	}
	status := http.StatusUnprocessableEntity
	if v.Code == "invalid_data" {
		status = http.StatusBadRequest
	}
	return &Error{Status: status, Code: v.Code, Field: v.Field, Message: v.Message}
}

// accountFor resolves the account a request acts on: the body's account_id,
// or for a key bound to an account, that account when the body names none.
// A bound key naming another account gets 403.
func accountFor(r *http.Request, given *string) (string, *Error) {
	p := principalFrom(r.Context())
	accountID := ""
	if given != nil {
		accountID = *given
	}
	if accountID == "" && p.AccountID != "" {
		return p.AccountID, nil
	}
	if err := webhookrule.ValidateAccountID(accountID); err != nil {
		return "", validationError(err)
	}
	if accountID == dispatcher.NotifyAccount {
		// webhookd's own notifications: not written or listed through the
		// account routes (their deliveries are listed by id and replayable).
		return "", &Error{Status: http.StatusUnprocessableEntity, Code: "reserved_account", Field: "account_id", Message: "account " + dispatcher.NotifyAccount + " is webhookd's own (its notifications)"}
	}
	if !p.CanAccess(accountID) {
		return "", &Error{Status: http.StatusForbidden, Code: "account_not_allowed", Field: "account_id", Message: "this API key is bound to another account"}
	}
	return accountID, nil
}
