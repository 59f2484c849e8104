package engine

import (
	"context"
	"sync"
	"time"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// OAuthIndexTTL is how often a worker process re-reads which webhooks have
// an OAuth2 setting (one query), so a change made through another process
// applies within it. A change made through this process's API applies at
// once (Worker.OAuthChanged).
const OAuthIndexTTL = 30 * time.Second

// oauthSettings is a worker process's view of the webhooks' OAuth2
// settings: an index of the webhooks that have one (re-read every
// OAuthIndexTTL) and each one's setting, loaded when its updated_at
// changes. The zero value is ready.
type oauthSettings struct {
	mu      sync.Mutex
	index   map[string]time.Time
	indexAt time.Time
	loaded  map[string]*oauthLoaded
}

type oauthLoaded struct {
	updatedAt time.Time
	cfg       *outbound.OAuthConfig
}

// OAuthChanged makes the next attempt re-read the OAuth2 settings: the
// API calls it when it changes one, so the change applies at once in this
// process.
func (w *Worker) OAuthChanged() {
	w.oauth.mu.Lock()
	w.oauth.indexAt = time.Time{}
	w.oauth.mu.Unlock()
}

// oauthFor returns target's webhook's OAuth2 setting, nil when it has
// none. The secret is decrypted here; it is kept in memory only.
func (w *Worker) oauthFor(ctx context.Context, target *store.Target) (*outbound.OAuthConfig, error) {
	s := &w.oauth
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.indexAt) > OAuthIndexTTL {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		index, err := store.WebhookOAuthIndex(qctx, w.db)
		cancel()
		s.indexAt = time.Now() // a failure keeps the index it had, for a while
		if err == nil {
			s.index = index
		} else if s.index == nil {
			return nil, err
		}
	}
	updatedAt, ok := s.index[target.WebhookID]
	if !ok {
		return nil, nil
	}
	if l := s.loaded[target.WebhookID]; l != nil && l.updatedAt.Equal(updatedAt) {
		return l.cfg, nil
	}
	settings, err := store.GetWebhookOAuth(ctx, w.db, []string{target.WebhookID})
	if err != nil {
		return nil, err
	}
	o := settings[target.WebhookID]
	if o == nil {
		return nil, nil // removed since the index was read
	}
	secret, err := webhookrule.DecryptOAuthSecret(w.keys, target.WebhookID, o.SecretCiphertext, o.SecretKeyID)
	if err != nil {
		return nil, err
	}
	cfg := &outbound.OAuthConfig{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: secret,
		Scopes: o.Scopes, Audience: o.Audience, AuthStyle: o.AuthStyle}
	if s.loaded == nil || len(s.loaded) > 10000 {
		s.loaded = map[string]*oauthLoaded{}
	}
	s.loaded[target.WebhookID] = &oauthLoaded{updatedAt: o.UpdatedAt, cfg: cfg}
	return cfg, nil
}
