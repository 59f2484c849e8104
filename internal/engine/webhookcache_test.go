package engine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/store"
)

// The webhook cache keeps its entries within its budget, replacing old
// ones, never keeps an account larger than an eighth of it, and returns
// what it holds with the versions to check.
func TestWebhookCacheBudget(t *testing.T) {
	t.Parallel()
	hook := func(id string, cipher int) store.LiveWebhook {
		return store.LiveWebhook{ID: id, Target: &store.Target{URL: "http://127.0.0.2/" + id, SecretCipher: make([]byte, cipher)}}
	}
	one := entrySize("acct_0000", []store.LiveWebhook{hook("wh_0000", 64)})
	c := newWebhookCache(20 * one)
	require.Nil(t, newWebhookCache(0), "0 is off")

	for i := range 30 {
		a := fmt.Sprintf("acct_%04d", i)
		c.put(map[string][]store.LiveWebhook{a: {hook(fmt.Sprintf("wh_%04d", i), 64)}}, map[string]int64{a: int64(i + 1)})
		require.LessOrEqual(t, c.used, c.budget)
	}
	require.Len(t, c.entries, 20, "as many as fit")
	var sum int64
	for _, e := range c.entries {
		sum += e.size
	}
	require.Equal(t, sum, c.used)

	// The last one put is there, with its version.
	got := map[string][]store.LiveWebhook{}
	versions, missing := c.lookup([]string{"acct_0029", "acct_none"}, got)
	require.Equal(t, []string{"acct_none"}, missing)
	require.Equal(t, []string{"acct_0029"}, versions.Accounts)
	require.Equal(t, []int64{30}, versions.Versions)
	require.Equal(t, "wh_0029", got["acct_0029"][0].ID)

	// An account with no webhook is kept too (its events go nowhere).
	c.put(map[string][]store.LiveWebhook{}, map[string]int64{"acct_empty": 0})
	versions, missing = c.lookup([]string{"acct_empty"}, got)
	require.Empty(t, missing)
	require.Equal(t, []int64{0}, versions.Versions)

	// Too large for an eighth of the budget: read every time.
	c.put(map[string][]store.LiveWebhook{"acct_big": {hook("wh_big", int(2*one))}}, map[string]int64{"acct_big": 7})
	_, missing = c.lookup([]string{"acct_big"}, got)
	require.Equal(t, []string{"acct_big"}, missing)

	// A new read of an account replaces its entry; forget drops it.
	c.put(map[string][]store.LiveWebhook{"acct_0029": {hook("wh_0029", 64), hook("wh_"+strings.Repeat("x", 4), 64)}}, map[string]int64{"acct_0029": 40})
	versions, _ = c.lookup([]string{"acct_0029"}, got)
	require.Equal(t, []int64{40}, versions.Versions)
	require.Len(t, got["acct_0029"], 2)
	c.forget([]string{"acct_0029"})
	_, missing = c.lookup([]string{"acct_0029"}, got)
	require.Equal(t, []string{"acct_0029"}, missing)
	require.LessOrEqual(t, c.used, c.budget)
}
