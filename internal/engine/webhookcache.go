package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/mono/webhookd/internal/store"
)

// WebhookCacheDefault is the default of EnqueuerConfig.WebhookCache (and
// WEBHOOKD_INTAKE_WEBHOOK_CACHE): the accounts whose live webhooks one
// process keeps for the intake.
const WebhookCacheDefault = 10000

// webhookCache keeps accounts' live webhooks (with their targets) as the
// intake read them, with the version (webhook_versions, migration 29) they
// had then. It is only a hint: an insert fanned out from it carries the
// versions it used, and PostgreSQL refuses it when one is no longer
// current (store.InsertEventsChecked), so a stale entry costs a retry,
// never a wrong fan-out. At most max accounts are kept; a new one past
// that replaces an arbitrary one.
type webhookCache struct {
	max int

	mu      sync.Mutex
	entries map[string]cachedWebhooks

	hits, misses, changed atomic.Int64
}

type cachedWebhooks struct {
	version int64
	hooks   []store.LiveWebhook // read only: shared by every insert that uses them
}

// newWebhookCache keeps up to size accounts; nil (no cache) when size is 0.
func newWebhookCache(size int) *webhookCache {
	if size <= 0 {
		return nil
	}
	return &webhookCache{max: size, entries: make(map[string]cachedWebhooks)}
}

// lookup returns the cached webhooks of accounts (distinct), with the
// versions to check, and the accounts it doesn't hold.
func (c *webhookCache) lookup(accounts []string, into map[string][]store.LiveWebhook) (versions *store.WebhookVersions, missing []string) {
	versions = &store.WebhookVersions{}
	c.mu.Lock()
	for _, a := range accounts {
		e, ok := c.entries[a]
		if !ok {
			missing = append(missing, a)
			continue
		}
		into[a] = e.hooks
		versions.Accounts = append(versions.Accounts, a)
		versions.Versions = append(versions.Versions, e.version)
	}
	c.mu.Unlock()
	c.hits.Add(int64(len(versions.Accounts)))
	c.misses.Add(int64(len(missing)))
	return versions, missing
}

// put keeps what a read found for accounts.
func (c *webhookCache) put(hooks map[string][]store.LiveWebhook, versions map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, v := range versions {
		if _, ok := c.entries[a]; !ok && len(c.entries) >= c.max {
			for old := range c.entries {
				delete(c.entries, old)
				break
			}
		}
		c.entries[a] = cachedWebhooks{version: v, hooks: hooks[a]}
	}
}

// forget drops accounts' entries.
func (c *webhookCache) forget(accounts []string) {
	c.mu.Lock()
	for _, a := range accounts {
		delete(c.entries, a)
	}
	c.mu.Unlock()
}

// WebhookCacheStats counts the intake's uses of its webhook cache, per
// account of a transaction: Hits fanned out from memory, Misses read the
// webhooks, Changed found an entry stale at the insert (its transaction
// was retried).
type WebhookCacheStats struct {
	Hits, Misses, Changed int64
}

// WebhookCacheStats returns the counts so far (zero when the cache is off).
func (e *Enqueuer) WebhookCacheStats() WebhookCacheStats {
	c := e.webhooks
	if c == nil {
		return WebhookCacheStats{}
	}
	return WebhookCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Changed: c.changed.Load()}
}

// WebhooksChanged says whether err is an intake transaction's failure
// because an account's webhooks changed after this process cached them
// (store.IsWebhooksChanged): nothing of it was stored, and the caller
// retries it, once, in a new transaction. It forgets the cached webhooks
// of events' accounts, so the retry reads them.
func (e *Enqueuer) WebhooksChanged(err error, events []*Event) bool {
	if err == nil || e.webhooks == nil || !store.IsWebhooksChanged(err) {
		return false
	}
	accounts := make([]string, 0, len(events))
	for _, ev := range events {
		if ev != nil {
			accounts = append(accounts, ev.AccountID)
		}
	}
	e.webhooks.forget(accounts)
	e.webhooks.changed.Add(1)
	return true
}

type freshWebhooksKey struct{}

// WithFreshWebhooks makes EnqueueEach and EnqueueManyHandoff with ctx read
// the accounts' webhooks in their transaction, as without a cache: the
// retry after WebhooksChanged, which must not meet a stale entry again.
func WithFreshWebhooks(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshWebhooksKey{}, true)
}
