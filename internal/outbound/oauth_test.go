package outbound

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testoauth"
)

func TestClientOAuth(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		server *testoauth.Server
		client *Client
		cfg    *OAuthConfig
		mu     sync.Mutex
		now    time.Time
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		b := &testBundle{server: testoauth.Start(t, "webhookd", "s3cret:&"), now: time.Now()}
		b.client = newTestClient(t, &Policy{AllowPrivate: true}, nil)
		b.client.oauth.now = func() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now }
		b.cfg = &OAuthConfig{TokenURL: b.server.Token.URL + "/oauth/token", ClientID: "webhookd", ClientSecret: "s3cret:&",
			Scopes: []string{"webhooks.write", "events"}, Audience: "https://api.acme.example", AuthStyle: OAuthAuthStyleHeader}
		return b
	}
	post := func(b *testBundle, webhookID string) *Result {
		return b.client.PostWith(t.Context(), b.server.Receiver.URL+"/hook", nil, []byte(`{}`),
			&PostOptions{Authorize: b.client.Authorizer(webhookID, b.cfg)})
	}
	advance := func(b *testBundle, d time.Duration) { b.mu.Lock(); b.now = b.now.Add(d); b.mu.Unlock() }

	t.Run("OneFetchPerExpiryUnder1000Posts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50)
		var failed atomic.Int64
		for range 1000 {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if !post(b, "wh_a").Succeeded() {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		require.Zero(t, failed.Load())
		require.Equal(t, int64(1), b.server.Fetches.Load(), "one fetch, shared by every concurrent attempt")
		require.Equal(t, "audience=https%3A%2F%2Fapi.acme.example&grant_type=client_credentials&scope=webhooks.write+events", b.server.Forms()[0].Encode())

		// Refreshed shortly before it expires: 30 s before, with an hour.
		advance(b, time.Hour-31*time.Second)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(1), b.server.Fetches.Load())
		advance(b, 2*time.Second)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(2), b.server.Fetches.Load())

		// Another webhook has a token of its own.
		require.True(t, post(b, "wh_b").Succeeded())
		require.Equal(t, int64(3), b.server.Fetches.Load())
	})

	t.Run("MissingExpiresInCapsAtFiveMinutes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.ExpiresIn.Store(-1)
		res := post(b, "wh_a")
		require.True(t, res.Succeeded(), "%+v", res)
		advance(b, 4*time.Minute)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(1), b.server.Fetches.Load())
		advance(b, time.Minute)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(2), b.server.Fetches.Load())
	})

	t.Run("RefreshOnceAfter401", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.True(t, post(b, "wh_a").Succeeded())
		b.server.Revoke()
		res := post(b, "wh_a")
		require.True(t, res.Succeeded(), "%+v", res)
		require.Equal(t, int64(2), b.server.Fetches.Load())
		require.Equal(t, int64(3), b.server.Requests.Load(), "the refused request and its retry in the same attempt")

		// A receiver that refuses every token: one refresh, then the 401
		// is the attempt's answer.
		b.server.RefuseAll.Store(true)
		res = post(b, "wh_a")
		require.Equal(t, ErrorKindHTTPStatus, res.ErrorKind)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.Equal(t, int64(3), b.server.Fetches.Load())
	})

	t.Run("BodyAuthStyle", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.cfg.AuthStyle = OAuthAuthStyleBody
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, "webhookd", b.server.Forms()[0].Get("client_id"))
	})

	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.cfg.ClientSecret = "nope"
		res := post(b, "wh_a")
		require.Equal(t, ErrorKindOAuthToken, res.ErrorKind)
		require.Equal(t, `the OAuth2 token endpoint answered 401 Unauthorized: {"error":"invalid_client"}`, res.ErrorMessage)
		require.Zero(t, b.server.Requests.Load())
	})

	t.Run("EndpointDownCachedBriefly", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.Down.Store(true)
		for range 5 {
			res := post(b, "wh_a")
			require.Equal(t, ErrorKindOAuthToken, res.ErrorKind)
			require.Contains(t, res.ErrorMessage, "503 Service Unavailable: token service down for maintenance")
		}
		require.Equal(t, int64(1), b.server.Fetches.Load(), "a failed fetch is remembered for a while")
		require.Zero(t, b.server.Requests.Load())
		b.server.Down.Store(false)
		advance(b, 11*time.Second)
		require.True(t, post(b, "wh_a").Succeeded())
	})

	t.Run("TokenURLGuarded", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		strict := newTestClient(t, nil, nil)
		res := strict.PostWith(t.Context(), "https://hooks.example.com/", nil, nil,
			&PostOptions{Authorize: strict.Authorizer("wh_a", b.cfg)})
		require.Equal(t, ErrorKindOAuthToken, res.ErrorKind)
		require.Contains(t, res.ErrorMessage, "not allowed")
		require.Zero(t, b.server.Fetches.Load())
	})
}
