package admin

import (
	"sync"
	"time"

	"github.com/mono/webhookd/internal/store"
)

// Defaults and bounds of Config.APIKeyCacheTTL.
const (
	// APIKeyCacheTTLDefault is how long a verified API key is remembered
	// (WEBHOOKD_API_KEY_CACHE_TTL).
	APIKeyCacheTTLDefault = time.Second
	// APIKeyCacheTTLMax bounds it: a key revoked (or rotated) on another
	// process, or on the database, stops working here at most this long
	// later.
	APIKeyCacheTTLMax = 2 * time.Second
	// keyCacheMax bounds the keys remembered at once; when it is full a
	// newly verified key is not remembered until expired ones are swept.
	keyCacheMax = 10_000
)

// keyCache remembers the api_keys rows of keys that were valid when read,
// by their SHA-256, for at most ttl: an intake request with a key read
// less than ttl ago is authenticated without a query. Only keys found
// valid are remembered (an unknown, revoked or expired key is looked up
// every time). A key revoked or rotated through this process is forgotten
// at once; revoked anywhere else (another process, the CLI, the database)
// it works here for at most ttl more, since an entry's age counts from
// before the query that read it. No LISTEN/NOTIFY: it works the same
// through a transaction-mode pooler. Its clock is the monotonic one, not
// the API's (a test's frozen clock would keep entries for ever).
type keyCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[32]byte]cachedKey
	// forgotten is when each key forgotten less than ttl ago was: a read
	// from before then (racing the revocation) is not remembered.
	forgotten map[string]time.Time
}

type cachedKey struct {
	key *store.APIKey
	// read is when the query that read key was about to be sent.
	read time.Time
}

// newKeyCache returns a cache keeping keys for ttl; nil (no cache) when
// ttl is not positive.
func newKeyCache(ttl time.Duration) *keyCache {
	if ttl <= 0 {
		return nil
	}
	return &keyCache{ttl: min(ttl, APIKeyCacheTTLMax), m: map[[32]byte]cachedKey{}, forgotten: map[string]time.Time{}}
}

// get returns the key whose hash is hash if it was read less than ttl ago.
func (c *keyCache) get(hash []byte) *store.APIKey {
	if c == nil || len(hash) != 32 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[[32]byte(hash)]
	if !ok {
		return nil
	}
	if time.Since(e.read) >= c.ttl {
		delete(c.m, [32]byte(hash))
		return nil
	}
	return e.key
}

// put remembers k, read by a query sent after read.
func (c *keyCache) put(k *store.APIKey, read time.Time) {
	if c == nil || len(k.Hash) != 32 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, ok := c.forgotten[k.ID]; ok && !read.After(at) {
		return
	}
	if len(c.m) >= keyCacheMax {
		for h, e := range c.m {
			if time.Since(e.read) >= c.ttl {
				delete(c.m, h)
			}
		}
		if len(c.m) >= keyCacheMax {
			return
		}
	}
	c.m[[32]byte(k.Hash)] = cachedKey{key: k, read: read}
}

// forget drops key id, revoked or rotated through this process.
func (c *keyCache) forget(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.m {
		if e.key.ID == id {
			delete(c.m, h)
		}
	}
	for other, at := range c.forgotten {
		if time.Since(at) >= c.ttl {
			delete(c.forgotten, other)
		}
	}
	c.forgotten[id] = time.Now()
}
