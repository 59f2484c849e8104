package dashboard_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A session opened with a key that is then rotated with no grace ends on
// its next request, like one whose key is revoked.
func TestRotatedKeyEndsSession(t *testing.T) {
	t.Parallel()
	b := start(t)
	k := b.createKey(t, "account", "acct_rotated")
	br := b.browser(t)
	br.signIn(t, k.Key)
	p := br.get(t, "/dashboard/settings/personal/api")
	require.Equal(t, http.StatusOK, p.status)

	b.api(t, http.MethodPost, "/v1/keys/"+k.ID+"/rotate", "", `{"grace":"0s"}`, http.StatusCreated, nil)
	p = br.get(t, "/dashboard/settings/personal/api")
	require.Equal(t, http.StatusSeeOther, p.status)
	require.True(t, strings.HasPrefix(p.location, "/dashboard/signin?ended=1&next="), p.location)
	require.Zero(t, b.count(t, "SELECT count(*) FROM dashboard_sessions WHERE key_id = $1", k.ID))
}
