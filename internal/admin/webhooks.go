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
	"github.com/mono/webhookd/internal/durations"
	"github.com/mono/webhookd/internal/engine"
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

// The webhooks family's operations: every /v1/webhooks route, for account
// and admin keys (an account key's own account only: another account's
// webhook is 404). The JSON API (routes) and the dashboard call them.
var (
	opCreateWebhook       = &opSpec{route: "POST /v1/webhooks", scopes: scopesAccount, budget: budgetManagement}
	opListWebhooks        = &opSpec{route: "GET /v1/webhooks", scopes: scopesAccount, budget: budgetManagement}
	opGetWebhook          = &opSpec{route: "GET /v1/webhooks/{id}", scopes: scopesAccount, budget: budgetManagement}
	opRevealWebhookSecret = &opSpec{route: "GET /v1/webhooks/{id}/secret", scopes: scopesAccount, budget: budgetManagement}
	opUpdateWebhook       = &opSpec{route: "PATCH /v1/webhooks/{id}", scopes: scopesAccount, budget: budgetManagement}
	opDeleteWebhook       = &opSpec{route: "DELETE /v1/webhooks/{id}", scopes: scopesAccount, budget: budgetManagement}
	opRotateWebhookSecret = &opSpec{route: "POST /v1/webhooks/{id}/rotate-secret", scopes: scopesAccount, budget: budgetManagement}
)

// CreateWebhook registers a webhook (POST /v1/webhooks) on the account
// req.AccountID resolves to (accountOf): the answer holds its secret, the
// only time it is given unasked.
func (a *API) CreateWebhook(ctx context.Context, p *Principal, req *apitype.WebhookCreate) (*apitype.Webhook, error) {
	if e := a.admit(ctx, p, opCreateWebhook); e != nil {
		return nil, e
	}
	given := ""
	if req.AccountID != nil {
		given = *req.AccountID
	}
	accountID, apiErr := accountOf(p, given)
	if apiErr != nil {
		return nil, apiErr
	}
	if req.URL == nil || strings.TrimSpace(*req.URL) == "" {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "url", Message: "url is required"}
	}
	normalized, err := a.policy.ValidateURL(*req.URL)
	if err != nil {
		var urlErr *outbound.URLError
		if errors.As(err, &urlErr) {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Code: urlErr.Code, Field: "url", Message: urlErr.Message}
		}
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_url", Field: "url", Message: "url is not a valid URL"}
	}
	description := ""
	if req.Description != nil {
		description = *req.Description
		if apiErr := checkDescription(description); apiErr != nil {
			return nil, apiErr
		}
	}
	if apiErr := firstError(checkScheme(req.SignatureScheme), checkOnGone(req.OnGone), checkRate(req.RateLimitPerSecond), checkOrdering(req.Ordering)); apiErr != nil {
		return nil, apiErr
	}

	id := ident.New(ident.Webhook)
	headers, apiErr := a.webhookHeaders(id, req.Headers)
	if apiErr != nil {
		return nil, apiErr
	}
	tlsSetting, oauth, oauthSet, apiErr := a.webhookAuth(id, req.TLS, req.OAuth)
	if apiErr != nil {
		return nil, apiErr
	}
	var eventTypes []string
	if req.EventTypes != nil {
		if eventTypes, err = webhookrule.ValidateEventTypeFilter(*req.EventTypes); err != nil {
			return nil, validationError(err)
		}
	}
	secret := newSecret()
	ciphertext, keyID, err := a.keys.Encrypt([]byte(secret), []byte(id))
	if err != nil {
		return nil, a.internal("error encrypting webhook secret", err)
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
	if err := store.InsertWebhookWithin(ctx, a.pool, hook, a.maxWebhooks); err != nil {
		if errors.Is(err, store.ErrDuplicateURL) {
			return nil, &Error{Status: http.StatusConflict, Code: "duplicate_url", Field: "url", Message: "this account already has a webhook with this URL; delete it first to create a new one (with a new secret)"}
		}
		if errors.Is(err, store.ErrWebhookLimit) {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "webhook_limit_reached", Message: fmt.Sprintf("an account may have at most %d webhooks and this one has reached the limit; delete a webhook to make room for another", a.maxWebhooks)}
		}
		return nil, a.internal("error inserting webhook", err)
	}
	if oauthSet && oauth != nil {
		if err := a.saveOAuth(ctx, id, oauth); err != nil {
			return nil, a.internal("error saving webhook OAuth2 setting", err, zap.String("webhook_id", id))
		}
	}
	a.logger.Info("webhook created", zap.String("webhook_id", id), zap.String("account_id", accountID))
	out := renderWebhook(hook)
	out.Secret = secret
	if oauth != nil {
		out.OAuth = renderOAuth(oauth)
	}
	return &out, nil
}

// decodeWebhookCreate reads POST /v1/webhooks's body (at most
// WebhookBodyLimit bytes).
func decodeWebhookCreate(w http.ResponseWriter, r *http.Request, req *apitype.WebhookCreate) *Error {
	return decodeJSON(w, r, WebhookBodyLimit, req)
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

// ListWebhooks is a page of the account's live webhooks (GET
// /v1/webhooks), newest first: req.AccountID's, resolved by accountOf.
func (a *API) ListWebhooks(ctx context.Context, p *Principal, req *apitype.WebhookList) (*apitype.Page[apitype.Webhook], error) {
	if e := a.admit(ctx, p, opListWebhooks); e != nil {
		return nil, e
	}
	pg, apiErr := pageOf(req.Limit, req.Cursor, ident.Webhook)
	if apiErr != nil {
		return nil, apiErr
	}
	accountID, apiErr := accountOf(p, req.AccountID)
	if apiErr != nil {
		return nil, apiErr
	}
	hooks, err := store.ListWebhooks(ctx, a.pool, accountID, pg.before, pg.limit+1)
	if err != nil {
		return nil, a.internal("error listing webhooks", err, zap.String("account_id", accountID))
	}
	rows := make([]apitype.Webhook, len(hooks))
	outs := make([]*apitype.Webhook, len(hooks))
	for i, hook := range hooks {
		rows[i] = renderWebhook(hook)
		outs[i] = &rows[i]
	}
	if err := a.withOAuth(ctx, outs...); err != nil {
		return nil, errInternal(err)
	}
	if err := a.withFIFO(ctx, outs...); err != nil {
		return nil, errInternal(err)
	}
	page := newPage(rows, pg, func(h apitype.Webhook) string { return h.ID })
	return &page, nil
}

// decodeWebhookList reads GET /v1/webhooks's query: limit, cursor,
// account_id.
func decodeWebhookList(_ http.ResponseWriter, r *http.Request, req *apitype.WebhookList) *Error {
	q, pg, e := listQuery(r, ident.Webhook, "account_id")
	if e != nil {
		return e
	}
	req.AccountID, req.Cursor, req.Limit = q.Get("account_id"), q.Get("cursor"), pg.limit
	return nil
}

// decodeWebhookGet reads the path's {id} of the routes that take nothing
// else (GET /v1/webhooks/{id}, its secret and health, DELETE).
func decodeWebhookGet(_ http.ResponseWriter, r *http.Request, req *apitype.WebhookGet) *Error {
	id, e := pathID(r, ident.Webhook, "webhook")
	req.ID = id
	return e
}

// webhookOf is p's live webhook id, or the error to answer: 404 when it
// does not exist, is deleted or is another account's.
func (a *API) webhookOf(ctx context.Context, p *Principal, id string) (*store.Webhook, *Error) {
	if e := checkID(id, ident.Webhook, "webhook"); e != nil {
		return nil, e
	}
	hook, err := store.GetWebhook(ctx, a.pool, id)
	if e := a.loadedFor(p, "webhook", id, err, func() string { return hook.AccountID }); e != nil {
		return nil, e
	}
	return hook, nil
}

// GetWebhook is one webhook (GET /v1/webhooks/{id}), without its secret.
func (a *API) GetWebhook(ctx context.Context, p *Principal, req *apitype.WebhookGet) (*apitype.Webhook, error) {
	if e := a.admit(ctx, p, opGetWebhook); e != nil {
		return nil, e
	}
	hook, apiErr := a.webhookOf(ctx, p, req.ID)
	if apiErr != nil {
		return nil, apiErr
	}
	out := renderWebhook(hook)
	if err := a.withOAuth(ctx, &out); err != nil {
		return nil, errInternal(err)
	}
	if err := a.withFIFO(ctx, &out); err != nil {
		return nil, errInternal(err)
	}
	return &out, nil
}

// RevealWebhookSecret answers the webhook's signing secret (GET
// /v1/webhooks/{id}/secret, the dashboard's eye), recording which key saw
// it; the value itself is neither stored nor logged.
func (a *API) RevealWebhookSecret(ctx context.Context, p *Principal, req *apitype.WebhookGet) (*apitype.WebhookSecret, error) {
	if e := a.admit(ctx, p, opRevealWebhookSecret); e != nil {
		return nil, e
	}
	hook, apiErr := a.webhookOf(ctx, p, req.ID)
	if apiErr != nil {
		return nil, apiErr
	}
	secret, err := a.keys.Decrypt(hook.SecretCiphertext, hook.SecretKeyID, []byte(hook.ID))
	if err != nil {
		return nil, a.internal("error decrypting webhook secret", err, zap.String("webhook_id", hook.ID), zap.String("secret_key_id", hook.SecretKeyID))
	}
	var keyID *string
	if !p.Bootstrap() {
		keyID = &p.KeyID
	}
	if err := store.RecordSecretReveal(ctx, a.pool, hook.ID, keyID, a.now().UTC()); err != nil {
		return nil, a.internal("error recording secret reveal", err, zap.String("webhook_id", hook.ID))
	}
	a.logger.Info("webhook secret revealed", zap.String("webhook_id", hook.ID), zap.String("account_id", hook.AccountID), zap.String("key_id", keyName(p)))
	return &apitype.WebhookSecret{Secret: string(secret)}, nil
}

// UpdateWebhook changes the fields req gives of webhook req.ID (PATCH
// /v1/webhooks/{id}) and answers it as it is afterwards.
func (a *API) UpdateWebhook(ctx context.Context, p *Principal, req *apitype.WebhookPatch) (*apitype.Webhook, error) {
	if e := a.admit(ctx, p, opUpdateWebhook); e != nil {
		return nil, e
	}
	id := req.ID
	if apiErr := checkID(id, ident.Webhook, "webhook"); apiErr != nil {
		return nil, apiErr
	}
	if req.Description != nil {
		if apiErr := checkDescription(*req.Description); apiErr != nil {
			return nil, apiErr
		}
	}
	headers, apiErr := a.webhookHeaders(id, req.Headers)
	if apiErr != nil {
		return nil, apiErr
	}
	tlsSetting, oauth, oauthSet, apiErr := a.webhookAuth(id, req.TLS, req.OAuth)
	if apiErr != nil {
		return nil, apiErr
	}
	var eventTypes *[]string
	if req.EventTypes != nil {
		filter, err := webhookrule.ValidateEventTypeFilter(*req.EventTypes)
		if err != nil {
			return nil, validationError(err)
		}
		eventTypes = &filter
	}
	if apiErr := firstError(checkScheme(req.SignatureScheme), checkOnGone(req.OnGone), checkRate(req.RateLimitPerSecond), checkOrdering(req.Ordering)); apiErr != nil {
		return nil, apiErr
	}
	if req.SignatureScheme != nil && *req.SignatureScheme == store.SchemeStandard {
		if apiErr := a.checkStandardSecret(ctx, id, p.AccountID); apiErr != nil {
			return nil, apiErr
		}
	}
	hook, err := store.UpdateWebhook(ctx, a.pool, id, p.AccountID, &store.WebhookUpdate{Description: req.Description, Headers: headers, EventTypes: eventTypes,
		SignatureScheme: req.SignatureScheme, OnGone: req.OnGone, TLS: tlsSetting, RateLimitPerSecond: rateUpdate(req.RateLimitPerSecond)})
	if err == nil && req.Paused != nil {
		hook, err = a.setPaused(ctx, hook, *req.Paused, p)
	}
	if err == nil && req.Ordering != nil {
		hook, err = a.setOrdering(ctx, hook, *req.Ordering)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("webhook")
	}
	if err != nil {
		return nil, a.internal("error updating webhook", err, zap.String("webhook_id", id))
	}
	if oauthSet {
		if err := a.saveOAuth(ctx, id, oauth); err != nil {
			return nil, a.internal("error saving webhook OAuth2 setting", err, zap.String("webhook_id", id))
		}
	}
	a.logger.Info("webhook updated", zap.String("webhook_id", id), zap.String("account_id", hook.AccountID))
	out := renderWebhook(hook)
	if err := a.withOAuth(ctx, &out); err != nil {
		return nil, errInternal(err)
	}
	if err := a.withFIFO(ctx, &out); err != nil {
		return nil, errInternal(err)
	}
	return &out, nil
}

// decodeWebhookPatch reads PATCH /v1/webhooks/{id}: the path's id, then
// the body (at most WebhookBodyLimit bytes).
func decodeWebhookPatch(w http.ResponseWriter, r *http.Request, req *apitype.WebhookPatch) *Error {
	return decodeWebhookBody(w, r, WebhookBodyLimit, false, req, &req.ID)
}

// decodeWebhookBody reads the request of a route under /v1/webhooks/{id}
// that has a body: the path's id into *id (404 when it is no webhook id),
// then the body into req (decodeJSON, at most limit bytes), in that
// order; with optional, an empty body leaves req as it is.
func decodeWebhookBody(w http.ResponseWriter, r *http.Request, limit int64, optional bool, req any, id *string) *Error {
	given, e := pathID(r, ident.Webhook, "webhook")
	if e != nil {
		return e
	}
	if !optional || r.ContentLength != 0 {
		if e := decodeJSON(w, r, limit, req); e != nil {
			return e
		}
	}
	*id = given
	return nil
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
		return a.enqueuer.Notify(ctx, tx, &engine.Notification{Type: webhookrule.NotifyWebhookResumed, AccountID: hook.AccountID, WebhookID: hook.ID,
			Data: &engine.WebhookResumedData{WebhookID: hook.ID, AccountID: hook.AccountID, URL: hook.URLNormalized, ResumedAt: now.UTC().Truncate(time.Microsecond), Deliveries: resumed}})
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

// Rotation overlap bounds.
const (
	RotationOverlapDefault = 24 * time.Hour
	RotationOverlapMax     = 7 * 24 * time.Hour
)

// RotateWebhookSecret gives webhook req.ID a new secret now (POST
// /v1/webhooks/{id}/rotate-secret), the old one signing too (a second
// v1=) until req.ExpiresIn has passed; the answer holds the new secret.
func (a *API) RotateWebhookSecret(ctx context.Context, p *Principal, req *apitype.WebhookRotateSecret) (*apitype.Webhook, error) {
	if e := a.admit(ctx, p, opRotateWebhookSecret); e != nil {
		return nil, e
	}
	id := req.ID
	if apiErr := checkID(id, ident.Webhook, "webhook"); apiErr != nil {
		return nil, apiErr
	}
	overlap := RotationOverlapDefault
	if req.ExpiresIn != nil {
		d, err := durations.Parse(*req.ExpiresIn)
		if err != nil || d < 0 || d > RotationOverlapMax {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_duration", Field: "expires_in", Message: "expires_in must be a duration from 0 to 7 days, such as 24h, 90m or 2d"}
		}
		overlap = d
	}
	secret := newSecret()
	ciphertext, keyID, err := a.keys.Encrypt([]byte(secret), []byte(id))
	if err != nil {
		return nil, a.internal("error encrypting webhook secret", err)
	}
	var expires *time.Time
	if overlap > 0 {
		t := a.now().Add(overlap).UTC().Truncate(time.Microsecond)
		expires = &t
	}
	hook, err := store.RotateSecret(ctx, a.pool, id, p.AccountID, ciphertext, keyID, expires)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("webhook")
	}
	if err != nil {
		return nil, a.internal("error rotating webhook secret", err, zap.String("webhook_id", id))
	}
	a.logger.Info("webhook secret rotated", zap.String("webhook_id", id), zap.String("account_id", hook.AccountID), zap.Duration("overlap", overlap), zap.String("key_id", keyName(p)))
	out := renderWebhook(hook)
	out.Secret = secret
	return &out, nil
}

// decodeWebhookRotateSecret reads POST /v1/webhooks/{id}/rotate-secret:
// the path's id, then the body, which may be empty.
func decodeWebhookRotateSecret(w http.ResponseWriter, r *http.Request, req *apitype.WebhookRotateSecret) *Error {
	return decodeWebhookBody(w, r, SmallBodyLimit, true, req, &req.ID)
}

// DeleteWebhook deletes webhook req.ID (DELETE /v1/webhooks/{id}),
// cancelling its pending and paused deliveries.
func (a *API) DeleteWebhook(ctx context.Context, p *Principal, req *apitype.WebhookGet) (*NoContent, error) {
	if e := a.admit(ctx, p, opDeleteWebhook); e != nil {
		return nil, e
	}
	id := req.ID
	if apiErr := checkID(id, ident.Webhook, "webhook"); apiErr != nil {
		return nil, apiErr
	}
	cancelled, err := store.DeleteWebhook(ctx, a.pool, id, p.AccountID, a.now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("webhook")
	}
	if err != nil {
		return nil, a.internal("error deleting webhook", err)
	}
	a.metrics.DeliveriesFinished(metrics.OutcomeCancelled, "", int(cancelled))
	a.logger.Info("webhook deleted", zap.String("webhook_id", id), zap.Int64("cancelled_deliveries", cancelled))
	return &NoContent{}, nil
}

// validationError maps a engine.ValidationError to the API: a data that
// is not an object is a wrong JSON type (400); the rest are 422.
func validationError(err error) *Error {
	var v *engine.ValidationError
	if !errors.As(err, &v) {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Message: err.Error()}
	}
	status := http.StatusUnprocessableEntity
	if v.Code == "invalid_data" {
		status = http.StatusBadRequest
	}
	return &Error{Status: status, Code: v.Code, Field: v.Field, Message: v.Message}
}

// accountFor is accountOf for the request's Principal: the body's
// account_id (given, nil for none).
func accountFor(r *http.Request, given *string) (string, *Error) {
	accountID := ""
	if given != nil {
		accountID = *given
	}
	return accountOf(principalFrom(r.Context()), accountID)
}

// accountOf resolves the account an operation acts on for p: given, or
// for a key bound to an account, that account when given is "". A bound
// key naming another account gets 403 account_not_allowed.
func accountOf(p *Principal, accountID string) (string, *Error) {
	if accountID == "" && p.AccountID != "" {
		return p.AccountID, nil
	}
	if err := webhookrule.ValidateAccountID(accountID); err != nil {
		return "", validationError(err)
	}
	if accountID == engine.NotifyAccount {
		// webhookd's own notifications: not written or listed through the
		// account routes (their deliveries are listed by id and replayable).
		return "", &Error{Status: http.StatusUnprocessableEntity, Code: "reserved_account", Field: "account_id", Message: "account " + engine.NotifyAccount + " is webhookd's own (its notifications)"}
	}
	if !p.CanAccess(accountID) {
		return "", &Error{Status: http.StatusForbidden, Code: "account_not_allowed", Field: "account_id", Message: "this API key is bound to another account"}
	}
	return accountID, nil
}
