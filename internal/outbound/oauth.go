package outbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrorKindOAuthToken means the webhook's OAuth2 token endpoint did not
// give an access token (unreachable, refused, an answer without a token).
// Nothing was sent to the receiver; the message carries an excerpt of the
// token endpoint's answer.
const ErrorKindOAuthToken = "oauth_token"

// OAuth2 auth styles: how the client id and secret reach the token
// endpoint (RFC 6749 §2.3.1).
const (
	OAuthAuthStyleHeader = "header" // HTTP Basic
	OAuthAuthStyleBody   = "body"   // client_id and client_secret form fields
)

// Token lifetimes.
const (
	// OAuthDefaultLifetime caps a token whose answer has no expires_in.
	OAuthDefaultLifetime = 5 * time.Minute
	// oauthRefreshMargin: a token is refreshed this long before it
	// expires (or at half its life, if that is shorter).
	oauthRefreshMargin = 30 * time.Second
	// oauthFailureTTL is how long a failed fetch is remembered, so a
	// broken token endpoint isn't asked on every attempt.
	oauthFailureTTL = 10 * time.Second
	// oauthTokensMax bounds the cache: forgotten wholesale past it.
	oauthTokensMax = 10000
)

// OAuthConfig is a webhook's OAuth2 client credentials grant (RFC 6749
// §4.4).
type OAuthConfig struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	Audience     string
	// AuthStyle is OAuthAuthStyleHeader or OAuthAuthStyleBody.
	AuthStyle string
}

// key identifies the configuration of webhookID, so a changed setting
// never gets a token fetched with the old one.
func (o *OAuthConfig) key(webhookID string) string {
	h := sha256.New()
	for _, part := range append([]string{webhookID, o.TokenURL, o.ClientID, o.ClientSecret, o.Audience, o.AuthStyle}, o.Scopes...) {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return string(h.Sum(nil))
}

// oauthTokens caches access tokens per webhook configuration. One fetch at
// a time per entry (the others wait for it); a failure is kept
// oauthFailureTTL. Tokens live in memory only.
type oauthTokens struct {
	mu      sync.Mutex
	entries map[string]*oauthEntry
	now     func() time.Time
	// fetches counts token requests made, for tests.
	fetches int64
}

type oauthEntry struct {
	fetch sync.Mutex // held while fetching

	mu        sync.Mutex
	token     string
	refreshAt time.Time
	failure   *Result
	failedAt  time.Time
}

func (t *oauthTokens) entry(key string) *oauthEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil || len(t.entries) >= oauthTokensMax {
		t.entries = make(map[string]*oauthEntry)
	}
	e, ok := t.entries[key]
	if !ok {
		e = &oauthEntry{}
		t.entries[key] = e
	}
	return e
}

// cached returns the entry's usable token, or its recent failure.
func (e *oauthEntry) cached(now time.Time) (string, *Result) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token != "" && now.Before(e.refreshAt) {
		return e.token, nil
	}
	if e.failure != nil && now.Sub(e.failedAt) < oauthFailureTTL {
		res := *e.failure
		return "", &res
	}
	return "", nil
}

// Authorizer returns the PostOptions.Authorize of webhookID's OAuth2
// setting: it sets Authorization: Bearer with a cached token, fetching one
// when there is none (or it is about to expire); after a 401 it fetches a
// new one, once, if the token the receiver refused is still the cached
// one (another attempt may have refreshed it already).
func (c *Client) Authorizer(webhookID string, cfg *OAuthConfig) func(req *http.Request, retry bool) *Result {
	key := cfg.key(webhookID)
	return func(req *http.Request, retry bool) *Result {
		e := c.oauth.entry(key)
		if retry {
			refused := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
			e.mu.Lock()
			if e.token == refused {
				e.token = ""
			}
			e.mu.Unlock()
		}
		token, res := c.token(req.Context(), e, cfg)
		if res != nil {
			return res
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// token returns e's token, fetching it (one caller at a time) if needed.
func (c *Client) token(ctx context.Context, e *oauthEntry, cfg *OAuthConfig) (string, *Result) {
	if token, res := e.cached(c.oauth.now()); token != "" || res != nil {
		return token, res
	}
	e.fetch.Lock()
	defer e.fetch.Unlock()
	if token, res := e.cached(c.oauth.now()); token != "" || res != nil {
		return token, res // fetched while we waited
	}
	token, lifetime, res := c.fetchToken(ctx, cfg)
	now := c.oauth.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if res != nil {
		if ctx.Err() == nil { // our own cancellation is no failure of theirs
			e.failure, e.failedAt = res, now
		}
		return "", res
	}
	e.token, e.failure = token, nil
	e.refreshAt = now.Add(lifetime - min(oauthRefreshMargin, lifetime/2))
	return token, nil
}

// fetchToken asks the token endpoint for a token, through the client's
// guarded transport (the same URL rules and dial-time checks as webhooks,
// the egress proxy when set, no redirects).
func (c *Client) fetchToken(ctx context.Context, cfg *OAuthConfig) (string, time.Duration, *Result) {
	c.oauth.mu.Lock()
	c.oauth.fetches++
	c.oauth.mu.Unlock()
	fail := func(message string) (string, time.Duration, *Result) {
		return "", 0, &Result{ErrorKind: ErrorKindOAuthToken, ErrorMessage: "the OAuth2 token endpoint " + message}
	}
	normalized, err := c.validateURL(cfg.TokenURL)
	if err != nil {
		res := urlErrorResult(err)
		return fail("URL is refused: " + res.ErrorMessage)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(cfg.Scopes, " "))
	}
	if cfg.Audience != "" {
		form.Set("audience", cfg.Audience)
	}
	if cfg.AuthStyle == OAuthAuthStyleBody {
		form.Set("client_id", cfg.ClientID)
		form.Set("client_secret", cfg.ClientSecret)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, errAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, normalized, strings.NewReader(form.Encode()))
	if err != nil {
		return fail("URL is not valid")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if cfg.AuthStyle != OAuthAuthStyleBody {
		req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		if _, ok := dialBlockedReason(err); ok {
			return fail("address is not allowed: " + publicInternet)
		}
		_, message := c.classify(ctx, err, &attemptTrace{}, func(s string) string { return redact(s, cfg.TokenURL, normalized) })
		return fail("could not be reached: " + message)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseRead))
	excerpt := strings.ToValidUTF8(string(bytes.TrimSpace(data[:min(len(data), 512)])), "")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail(fmt.Sprintf("answered %s: %s", resp.Status, excerpt))
	}
	var body struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(data, &body); err != nil || body.AccessToken == "" {
		return fail("answered without an access_token: " + redactToken(excerpt))
	}
	if body.TokenType != "" && !strings.EqualFold(body.TokenType, "bearer") {
		return fail("gave a token of type " + body.TokenType + ", not Bearer")
	}
	lifetime := OAuthDefaultLifetime
	var secs float64
	if len(body.ExpiresIn) > 0 {
		raw := strings.Trim(string(body.ExpiresIn), `"`)
		if _, err := fmt.Sscan(raw, &secs); err == nil && secs > 0 {
			lifetime = time.Duration(secs * float64(time.Second))
		}
	}
	return body.AccessToken, lifetime, nil
}

// redactToken keeps an excerpt that may hold a token out of the message.
func redactToken(excerpt string) string {
	if strings.Contains(excerpt, "token") {
		return "(excerpt withheld: it may hold a token)"
	}
	return excerpt
}
