package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/mono/webhookd/internal/store"
)

// WebhookCacheDefault is the default of EnqueuerConfig.WebhookCache (and
// WEBHOOKD_INTAKE_WEBHOOK_CACHE): the bytes of accounts' live webhooks one
// process keeps for the intake, 16 MiB (~1 KB an account with two plain
// webhooks: some 16,000 such accounts).
const WebhookCacheDefault = 16 << 20

// webhookCache keeps accounts' live webhooks (with their targets) as the
// intake read them, with the version (webhook_versions, migration 29) they
// had then. It is only a hint: an insert fanned out from it carries the
// versions it used, and PostgreSQL refuses it when one is no longer
// current (store.InsertEventsChecked), so a stale entry costs a retry,
// never a wrong fan-out. Its entries take at most budget bytes (as
// entrySize counts them); a new one past that replaces arbitrary ones, and
// an account whose webhooks take more than an eighth of it is not kept.
type webhookCache struct {
	budget int64

	mu      sync.Mutex
	entries map[string]cachedWebhooks
	used    int64 // bytes of entries

	hits, misses, changed atomic.Int64
}

type cachedWebhooks struct {
	version int64
	size    int64
	hooks   []store.LiveWebhook // read only: shared by every insert that uses them
}

// newWebhookCache keeps up to budget bytes; nil (no cache) when budget is
// 0.
func newWebhookCache(budget int64) *webhookCache {
	if budget <= 0 {
		return nil
	}
	return &webhookCache{budget: budget, entries: make(map[string]cachedWebhooks)}
}

// entrySize is about what an account's entry holds in memory: a fixed
// overhead per account and per webhook, and the bytes of its strings and
// ciphertexts.
func entrySize(account string, hooks []store.LiveWebhook) int64 {
	n := int64(128 + len(account))
	for _, w := range hooks {
		n += int64(256 + len(w.ID))
		for _, t := range w.EventTypes {
			n += int64(16 + len(t))
		}
		if t := w.Target; t != nil {
			n += int64(len(t.URL) + len(t.SecretCipher) + len(t.SecretKeyID) + len(t.HeadersCipher) +
				len(t.PreviousSecretCipher) + len(t.TLSCipher) + len(t.SignatureScheme) + len(t.OnGone))
			for _, p := range []*string{t.HeadersKeyID, t.PreviousSecretKeyID, t.TLSKeyID, t.TLSCABundle} {
				if p != nil {
					n += int64(len(*p))
				}
			}
		}
	}
	return n
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
		c.drop(a)
		size := entrySize(a, hooks[a])
		if size > c.budget/8 {
			continue // read every time
		}
		for old := range c.entries {
			if c.used+size <= c.budget {
				break
			}
			c.drop(old)
		}
		c.entries[a] = cachedWebhooks{version: v, size: size, hooks: hooks[a]}
		c.used += size
	}
}

// drop removes account's entry; c.mu is held.
func (c *webhookCache) drop(account string) {
	if e, ok := c.entries[account]; ok {
		c.used -= e.size
		delete(c.entries, account)
	}
}

// forget drops accounts' entries.
func (c *webhookCache) forget(accounts []string) {
	c.mu.Lock()
	for _, a := range accounts {
		c.drop(a)
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
