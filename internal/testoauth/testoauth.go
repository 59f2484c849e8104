// Package testoauth is a real OAuth2 token endpoint for tests (the client
// credentials grant of RFC 6749 §4.4) and a receiver that takes only the
// tokens it issued, both on 127.0.0.2.
package testoauth

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Server is a token endpoint and its receiver.
type Server struct {
	// Token is the token endpoint: POST any path.
	Token *httptest.Server
	// Receiver answers 200 to a request with a Bearer token Token issued
	// (and not revoked), 401 to anything else.
	Receiver *httptest.Server

	// Fetches counts token requests, Requests the receiver's requests and
	// Received the ones it accepted.
	Fetches, Requests, Received atomic.Int64
	// ExpiresIn is the expires_in of the tokens issued; -1 leaves it out.
	// Starts at 3600.
	ExpiresIn atomic.Int64
	// Down makes the token endpoint answer 503; RefuseAll makes the
	// receiver answer 401 whatever the token.
	Down, RefuseAll atomic.Bool

	clientID, clientSecret string

	mu    sync.Mutex
	valid map[string]bool
	forms []url.Values
}

// Start starts a token endpoint that issues tokens to clientID with
// clientSecret (given in an HTTP Basic header, form-urlencoded first, or in
// the form) and its receiver. They stop at the test's cleanup.
func Start(t testing.TB, clientID, clientSecret string) *Server {
	t.Helper()
	s := &Server{clientID: clientID, clientSecret: clientSecret, valid: map[string]bool{}}
	s.ExpiresIn.Store(3600)
	s.Token = serve(t, s.token)
	s.Receiver = serve(t, s.receive)
	return s
}

func serve(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	n := s.Fetches.Add(1)
	if s.Down.Load() {
		http.Error(w, "token service down for maintenance", http.StatusServiceUnavailable)
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
	if r.PostForm.Get("grant_type") != "client_credentials" || id != s.clientID || secret != s.clientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	token := fmt.Sprintf("token-%d", n)
	s.mu.Lock()
	s.valid[token] = true
	s.forms = append(s.forms, r.PostForm)
	s.mu.Unlock()
	answer := map[string]any{"access_token": token, "token_type": "Bearer"}
	if v := s.ExpiresIn.Load(); v >= 0 {
		answer["expires_in"] = v
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	ok := s.valid[token]
	s.mu.Unlock()
	if !ok || s.RefuseAll.Load() {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.Received.Add(1)
	_, _ = w.Write([]byte("ok"))
}

// Revoke makes every token issued so far invalid.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.valid)
}

// Forms are the forms of the token requests that got a token, in order.
func (s *Server) Forms() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.forms...)
}
