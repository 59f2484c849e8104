package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/testoauth"
	"github.com/mono/webhookd/internal/testwait"
)

// A webhook with OAuth2 client credentials: one token fetch for 1,000
// deliveries in one process; a token the receiver refuses is refreshed
// once and the attempt retried; a token endpoint that is down fails the
// attempt with error_kind oauth_token, retried on the schedule; the
// setting is shown without its secret; bad settings are 422 naming the
// field.
func TestWebhookOAuth(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	s := testoauth.Start(t, "mono", "oauth-secret-never-shown")
	const account = "acct_oauth"
	oauth := map[string]any{"token_url": s.Token.URL + "/oauth/token", "client_id": "mono", "client_secret": "oauth-secret-never-shown",
		"scopes": []string{"webhooks:write"}, "auth_style": "body"}
	body, err := json.Marshal(map[string]any{"account_id": account, "url": s.Receiver.URL + "/hook", "oauth": oauth})
	require.NoError(t, err)
	resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: string(body)})
	require.Equal(t, http.StatusCreated, resp.status, "%s", resp.body)
	require.NotContains(t, string(resp.body), "oauth-secret-never-shown")
	var hook struct {
		ID    string `json:"id"`
		OAuth struct {
			TokenURL  string   `json:"token_url"`
			ClientID  string   `json:"client_id"`
			Scopes    []string `json:"scopes"`
			AuthStyle string   `json:"auth_style"`
		} `json:"oauth"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &hook))
	require.Equal(t, "mono", hook.OAuth.ClientID)
	require.Equal(t, []string{"webhooks:write"}, hook.OAuth.Scopes)

	send := func(t *testing.T, n int) []string {
		t.Helper()
		var ids []string
		for start := 0; start < n; start += 500 {
			events := make([]string, 0, 500)
			for i := start; i < min(n, start+500); i++ {
				events = append(events, fmt.Sprintf(`{"account_id":%q,"type":"oauth_test","data":{"n":%d}}`, account, i))
			}
			resp := b.do(t, request{method: http.MethodPost, path: "/v1/events/batch", body: `{"events":[` + strings.Join(events, ",") + `]}`})
			require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
			var out struct {
				Data []struct {
					Deliveries []struct {
						ID string `json:"id"`
					} `json:"deliveries"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal(resp.body, &out))
			for _, e := range out.Data {
				for _, d := range e.Deliveries {
					ids = append(ids, d.ID)
				}
			}
		}
		return ids
	}

	t.Run("OneFetchFor1000Deliveries", func(t *testing.T) {
		send(t, 1000)
		testwait.For(t, 30*time.Second, func() (bool, string) {
			n := s.Received.Load()
			return n >= 1000, fmt.Sprintf("%d of 1000 received", n)
		})
		require.Equal(t, int64(1), s.Fetches.Load())
		require.Equal(t, "webhooks:write", s.Forms()[0].Get("scope"))
		require.Equal(t, "mono", s.Forms()[0].Get("client_id"), "auth_style body")
	})

	t.Run("RefreshAfter401", func(t *testing.T) {
		s.Revoke()
		id := send(t, 1)[0]
		d := b.waitDeliveryState(t, id, "succeeded")
		require.Len(t, d.Attempts, 1, "refreshed and retried within the attempt")
		require.Equal(t, int64(2), s.Fetches.Load())
	})

	t.Run("TokenEndpointDown", func(t *testing.T) {
		s.Revoke()
		s.Down.Store(true)
		id := send(t, 1)[0]
		var d *apitype.Delivery
		testwait.For(t, 10*time.Second, func() (bool, string) {
			d = b.getDelivery(t, id)
			return len(d.Attempts) > 0 && d.Attempts[0].ErrorKind != nil, fmt.Sprintf("%d attempts", len(d.Attempts))
		})
		require.Equal(t, "oauth_token", *d.Attempts[0].ErrorKind)
		require.Contains(t, *d.Attempts[0].ErrorMessage, "503 Service Unavailable: token service down for maintenance")
		s.Down.Store(false)
		// Retried on the schedule; a failed fetch is remembered 10 s, so
		// the first attempt after that (the ninth at this scale) succeeds.
		testwait.For(t, 40*time.Second, func() (bool, string) {
			d = b.getDelivery(t, id)
			return d.State == "succeeded", "the delivery is " + d.State
		})
		require.Greater(t, len(d.Attempts), 1)
		require.Equal(t, "oauth_token", *d.Attempts[len(d.Attempts)-2].ErrorKind)
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			change map[string]any
			code   string
			field  string
		}{
			{"NoAuthStyle", map[string]any{"auth_style": nil}, "invalid_auth_style", "oauth.auth_style"},
			{"LocalhostTokenURL", map[string]any{"token_url": "http://localhost:9000/token"}, "forbidden_host", "oauth.token_url"},
			{"NoSecret", map[string]any{"client_secret": ""}, "invalid_client_secret", "oauth.client_secret"},
			{"ScopeWithSpace", map[string]any{"scopes": []string{"a b"}}, "invalid_scope", "oauth.scopes[0]"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				o := map[string]any{}
				for k, v := range oauth {
					o[k] = v
				}
				for k, v := range tt.change {
					o[k] = v
				}
				body, err := json.Marshal(map[string]any{"oauth": o})
				require.NoError(t, err)
				requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: string(body)}), http.StatusUnprocessableEntity, tt.code, tt.field)
			})
		}
	})

	t.Run("PatchRemoves", func(t *testing.T) {
		resp := b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + hook.ID, body: `{"oauth":{}}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.NotContains(t, string(resp.body), `"oauth"`)
		resp = b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID})
		require.NotContains(t, string(resp.body), `"oauth"`)
	})
}
