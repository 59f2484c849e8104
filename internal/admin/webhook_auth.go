package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// WebhookBodyLimit is the largest body of POST /v1/webhooks and PATCH
// /v1/webhooks/{id}: 256 KiB, room for a client certificate chain, its key
// and a CA bundle of a few dozen certificates in PEM.
const WebhookBodyLimit = 256 << 10

// webhookTLSRequest is a webhook's tls setting as a create or update
// gives it (apitype.WebhookTLSSetting).
type webhookTLSRequest = apitype.WebhookTLSSetting

// webhookTLS validates and encrypts the tls setting of a create or update
// request; nil when the request doesn't set it.
func (a *API) webhookTLS(webhookID string, given *webhookTLSRequest) (*store.WebhookTLS, *Error) {
	if given == nil {
		return nil, nil
	}
	m := &outbound.TLSMaterial{}
	if given.ClientCertificate != nil {
		m.CertificatePEM = []byte(*given.ClientCertificate)
	}
	if given.ClientKey != nil {
		m.KeyPEM = []byte(*given.ClientKey)
	}
	if given.CABundle != nil {
		m.CABundlePEM = []byte(*given.CABundle)
	}
	info, err := outbound.ValidateTLSMaterial(m, a.now())
	if err != nil {
		var fieldErr *outbound.TLSFieldError
		if errors.As(err, &fieldErr) {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Code: fieldErr.Code, Field: fieldErr.Field, Message: fieldErr.Message}
		}
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_tls", Field: "tls", Message: "tls is not valid"}
	}
	out := &store.WebhookTLS{}
	if len(info.CASubjects) > 0 {
		bundle := string(m.CABundlePEM)
		out.CABundle = &bundle
	}
	if info.Subject == "" && info.NotAfter.IsZero() {
		return out, nil
	}
	ct, keyID, err := webhookrule.EncryptTLS(a.keys, webhookID, m)
	if err != nil {
		a.logger.Error("error encrypting webhook client certificate", zap.Error(err))
		return nil, errInternal(err)
	}
	notAfter := info.NotAfter
	out.Ciphertext, out.KeyID = ct, keyID
	out.CertSubject, out.CertIssuer, out.CertSerial, out.CertNotAfter = &info.Subject, &info.Issuer, &info.Serial, &notAfter
	return out, nil
}

// renderTLS is a webhook's tls setting as the API shows it, nil when it
// has none.
func renderTLS(t *store.WebhookTLS, now time.Time) *apitype.WebhookTLS {
	if t.Empty() {
		return nil
	}
	out := &apitype.WebhookTLS{}
	if t.CertNotAfter != nil {
		info := &apitype.Certificate{NotAfter: t.CertNotAfter.UTC(), ExpiresSoon: t.CertNotAfter.Sub(now) < outbound.CertificateExpiryWarning}
		for dst, src := range map[*string]*string{&info.Subject: t.CertSubject, &info.Issuer: t.CertIssuer, &info.Serial: t.CertSerial} {
			if src != nil {
				*dst = *src
			}
		}
		out.ClientCertificate = info
	}
	if t.CABundle != nil {
		info, err := outbound.ValidateTLSMaterial(&outbound.TLSMaterial{CABundlePEM: []byte(*t.CABundle)}, now)
		out.CABundle = &apitype.CABundle{Subjects: []string{}}
		if err == nil {
			out.CABundle.Subjects = append(out.CABundle.Subjects, info.CASubjects...)
		}
	}
	return out
}

// webhookOAuthRequest is a webhook's OAuth2 setting as a create or update
// gives it (apitype.WebhookOAuthSetting).
type webhookOAuthRequest = apitype.WebhookOAuthSetting

// OAuth2 setting limits.
const (
	oauthClientIDMax = 256
	oauthSecretMax   = 1024
	oauthScopesMax   = 20
	oauthScopeMax    = 256
	oauthAudienceMax = 2048
)

// webhookOAuth validates and encrypts the oauth setting of a create or
// update request. set is false when the request doesn't give one; a nil
// setting with set true removes it.
func (a *API) webhookOAuth(webhookID string, given *webhookOAuthRequest) (o *store.WebhookOAuth, set bool, apiErr *Error) {
	if given == nil {
		return nil, false, nil
	}
	if given.TokenURL == nil && given.ClientID == nil && given.ClientSecret == nil &&
		given.Audience == nil && given.AuthStyle == nil && len(given.Scopes) == 0 {
		return nil, true, nil
	}
	invalid := func(field, code, message string) (*store.WebhookOAuth, bool, *Error) {
		return nil, false, &Error{Status: http.StatusUnprocessableEntity, Code: code, Field: "oauth." + field, Message: message}
	}
	if given.TokenURL == nil || strings.TrimSpace(*given.TokenURL) == "" {
		return invalid("token_url", "missing_field", "oauth.token_url is required")
	}
	tokenURL, err := a.policy.ValidateURL(*given.TokenURL)
	if err != nil {
		var urlErr *outbound.URLError
		if errors.As(err, &urlErr) {
			return invalid("token_url", urlErr.Code, urlErr.Message)
		}
		return invalid("token_url", "invalid_url", "oauth.token_url is not a valid URL")
	}
	if given.ClientID == nil || *given.ClientID == "" || len(*given.ClientID) > oauthClientIDMax {
		return invalid("client_id", "invalid_client_id", fmt.Sprintf("oauth.client_id is required, at most %d bytes", oauthClientIDMax))
	}
	if given.ClientSecret == nil || *given.ClientSecret == "" || len(*given.ClientSecret) > oauthSecretMax {
		return invalid("client_secret", "invalid_client_secret", fmt.Sprintf("oauth.client_secret is required, at most %d bytes (it is stored encrypted and never shown)", oauthSecretMax))
	}
	if given.AuthStyle == nil || (*given.AuthStyle != outbound.OAuthAuthStyleHeader && *given.AuthStyle != outbound.OAuthAuthStyleBody) {
		return invalid("auth_style", "invalid_auth_style", `oauth.auth_style must be "header" (HTTP Basic) or "body" (client_id and client_secret form fields): ask the token endpoint's owner which it takes`)
	}
	if len(given.Scopes) > oauthScopesMax {
		return invalid("scopes", "too_many_scopes", fmt.Sprintf("oauth.scopes may hold at most %d scopes", oauthScopesMax))
	}
	for i, scope := range given.Scopes {
		if scope == "" || len(scope) > oauthScopeMax || strings.ContainsAny(scope, " \t\r\n\"\\") {
			return invalid(fmt.Sprintf("scopes[%d]", i), "invalid_scope", "a scope is 1 to 256 printable characters without spaces, quotes or backslashes")
		}
	}
	audience := ""
	if given.Audience != nil {
		if audience = *given.Audience; len(audience) > oauthAudienceMax {
			return invalid("audience", "too_long", fmt.Sprintf("oauth.audience must be at most %d bytes", oauthAudienceMax))
		}
	}
	ct, keyID, err := webhookrule.EncryptOAuthSecret(a.keys, webhookID, *given.ClientSecret)
	if err != nil {
		a.logger.Error("error encrypting webhook OAuth2 client secret", zap.Error(err))
		return nil, false, errInternal(err)
	}
	return &store.WebhookOAuth{WebhookID: webhookID, TokenURL: tokenURL, ClientID: *given.ClientID, SecretCiphertext: ct, SecretKeyID: keyID,
		Scopes: given.Scopes, Audience: audience, AuthStyle: *given.AuthStyle, UpdatedAt: a.now().UTC().Truncate(time.Microsecond)}, true, nil
}

// saveOAuth stores (or removes) a webhook's OAuth2 setting and tells this
// process's worker, if it has one, so the change applies at once.
func (a *API) saveOAuth(ctx context.Context, webhookID string, o *store.WebhookOAuth) error {
	if err := store.SetWebhookOAuth(ctx, a.pool, webhookID, o); err != nil {
		return err
	}
	if w, ok := a.sender.(interface{ OAuthChanged() }); ok {
		w.OAuthChanged()
	}
	return nil
}

// withOAuth adds each webhook's OAuth2 setting to its answer (one query).
func (a *API) withOAuth(ctx context.Context, outs ...*apitype.Webhook) error {
	ids := make([]string, len(outs))
	for i, out := range outs {
		ids[i] = out.ID
	}
	settings, err := store.GetWebhookOAuth(ctx, a.pool, ids)
	if err != nil {
		return err
	}
	for _, out := range outs {
		if o := settings[out.ID]; o != nil {
			out.OAuth = renderOAuth(o)
		}
	}
	return nil
}

// renderOAuth is the API's view of a setting.
func renderOAuth(o *store.WebhookOAuth) *apitype.WebhookOAuth {
	scopes := o.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return &apitype.WebhookOAuth{TokenURL: o.TokenURL, ClientID: o.ClientID, Scopes: scopes, Audience: o.Audience, AuthStyle: o.AuthStyle}
}

// webhookAuth validates and encrypts the tls and oauth settings of a
// create or update request (see webhookTLS and webhookOAuth).
func (a *API) webhookAuth(webhookID string, tlsGiven *webhookTLSRequest, oauthGiven *webhookOAuthRequest) (*store.WebhookTLS, *store.WebhookOAuth, bool, *Error) {
	tlsSetting, apiErr := a.webhookTLS(webhookID, tlsGiven)
	if apiErr != nil {
		return nil, nil, false, apiErr
	}
	oauth, oauthSet, apiErr := a.webhookOAuth(webhookID, oauthGiven)
	if apiErr != nil {
		return nil, nil, false, apiErr
	}
	return tlsSetting, oauth, oauthSet, nil
}
