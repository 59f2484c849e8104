package outbound

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tokenServer is a real OAuth2 token endpoint (client credentials grant)
// on 127.0.0.2 and the receiver that checks its tokens.
type tokenServer struct {
	endpoint *httptest.Server
	receiver *receiver

	fetches   atomic.Int64
	expiresIn atomic.Int64 // what expires_in says; -1: left out
	broken    atomic.Bool

	mu    sync.Mutex
	valid map[string]bool
	seen  []string // the form of each fetch
}

func startTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	s := &tokenServer{valid: map[string]bool{}}
	s.expiresIn.Store(3600)
	s.endpoint = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.fetches.Add(1)
		if s.broken.Load() {
			http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		_ = r.ParseForm()
		id, secret, basic := r.BasicAuth()
		if basic { // RFC 6749 §2.3.1: form-urlencoded, then Basic
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		} else {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || id != "webhookd" || secret != "s3cret:&" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		token := fmt.Sprintf("tok-%d", n)
		s.mu.Lock()
		s.valid[token] = true
		s.seen = append(s.seen, r.PostForm.Encode())
		s.mu.Unlock()
		answer := map[string]any{"access_token": token, "token_type": "Bearer"}
		if v := s.expiresIn.Load(); v >= 0 {
			answer["expires_in"] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	}))
	s.endpoint.Listener.Close()
	s.endpoint.Listener = listen(t, testHost4)
	s.endpoint.Start()
	t.Cleanup(s.endpoint.Close)
	s.receiver = startReceiver(t, testHost4, func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		ok := s.valid[token]
		s.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return s
}

func (s *tokenServer) revokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.valid)
}

func TestClientOAuth(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		server *tokenServer
		client *Client
		cfg    *OAuthConfig
		now    time.Time
		mu     sync.Mutex
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		b := &testBundle{server: startTokenServer(t), now: time.Now()}
		b.client = newTestClient(t, &Policy{AllowPrivate: true}, nil)
		b.client.oauth.now = func() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now }
		b.cfg = &OAuthConfig{TokenURL: b.server.endpoint.URL + "/oauth/token", ClientID: "webhookd", ClientSecret: "s3cret:&",
			Scopes: []string{"webhooks.write", "events"}, Audience: "https://api.acme.example", AuthStyle: OAuthAuthStyleHeader}
		return b
	}
	post := func(b *testBundle, webhookID string) *Result {
		return b.client.PostWith(t.Context(), b.server.receiver.URL()+"/hook", nil, []byte(`{}`),
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
		require.Equal(t, int64(1), b.server.fetches.Load(), "one fetch, shared by every concurrent attempt")
		require.Equal(t, "audience=https%3A%2F%2Fapi.acme.example&grant_type=client_credentials&scope=webhooks.write+events", b.server.seen[0])

		// Refreshed shortly before it expires: 30 s before, with an hour.
		advance(b, time.Hour-31*time.Second)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(1), b.server.fetches.Load())
		advance(b, 2*time.Second)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(2), b.server.fetches.Load())

		// Another webhook has a token of its own.
		require.True(t, post(b, "wh_b").Succeeded())
		require.Equal(t, int64(3), b.server.fetches.Load())
	})

	t.Run("MissingExpiresInCapsAtFiveMinutes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.expiresIn.Store(-1)
		res := post(b, "wh_a")
		require.True(t, res.Succeeded(), "%+v", res)
		advance(b, 4*time.Minute)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(1), b.server.fetches.Load())
		advance(b, time.Minute)
		require.True(t, post(b, "wh_a").Succeeded())
		require.Equal(t, int64(2), b.server.fetches.Load())
	})

	t.Run("RefreshOnceAfter401", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.True(t, post(b, "wh_a").Succeeded())
		b.server.revokeAll()
		res := post(b, "wh_a")
		require.True(t, res.Succeeded(), "%+v", res)
		require.Equal(t, int64(2), b.server.fetches.Load())
		require.Len(t, b.server.receiver.Requests(), 3, "the refused request and its retry in the same attempt")

		// A receiver that refuses every token: one refresh, then the 401
		// is the attempt's answer.
		b.server.receiver.server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
		res = post(b, "wh_a")
		require.Equal(t, ErrorKindHTTPStatus, res.ErrorKind)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		require.Equal(t, int64(3), b.server.fetches.Load())
	})

	t.Run("BodyAuthStyle", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.cfg.AuthStyle = OAuthAuthStyleBody
		require.True(t, post(b, "wh_a").Succeeded())
		require.Contains(t, b.server.seen[0], "client_id=webhookd")
	})

	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.cfg.ClientSecret = "nope"
		res := post(b, "wh_a")
		require.Equal(t, ErrorKindOAuthToken, res.ErrorKind)
		require.Equal(t, `the OAuth2 token endpoint answered 401 Unauthorized: {"error":"invalid_client"}`, res.ErrorMessage)
		require.Empty(t, b.server.receiver.Requests())
	})

	t.Run("EndpointDownCachedBriefly", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.broken.Store(true)
		for range 5 {
			res := post(b, "wh_a")
			require.Equal(t, ErrorKindOAuthToken, res.ErrorKind)
			require.Contains(t, res.ErrorMessage, "503 Service Unavailable")
			require.Contains(t, res.ErrorMessage, "temporarily_unavailable")
		}
		require.Equal(t, int64(1), b.server.fetches.Load(), "a failed fetch is remembered for a while")
		require.Empty(t, b.server.receiver.Requests())
		b.server.broken.Store(false)
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
		require.Zero(t, b.server.fetches.Load())
	})
}
