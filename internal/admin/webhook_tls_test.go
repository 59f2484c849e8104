package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/testcert"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/internal/webhookrule"
)

// webhookTLSView is a webhook as the API shows it, with its tls setting.
type webhookTLSView struct {
	ID  string `json:"id"`
	TLS *struct {
		ClientCertificate *struct {
			Subject     string    `json:"subject"`
			Issuer      string    `json:"issuer"`
			Serial      string    `json:"serial"`
			NotAfter    time.Time `json:"not_after"`
			ExpiresSoon bool      `json:"expires_soon"`
		} `json:"client_certificate"`
		CABundle *struct {
			Subjects []string `json:"subjects"`
		} `json:"ca_bundle"`
	} `json:"tls"`
}

// Two webhooks with different client certificates on one receiver host
// that requires them, its own certificate from a private CA: each
// delivery and test send arrives with its own webhook's certificate; the
// API shows the certificates' subject, issuer, serial and expiry, never
// the key or the PEM; bad settings are 422 naming the field.
// waitTLSRequests waits until receiver has had n requests.
func waitTLSRequests(t *testing.T, receiver *testcert.Receiver, n int) {
	t.Helper()
	testwait.For(t, 15*time.Second, func() (bool, string) {
		got := len(receiver.Requests())
		return got >= n, fmt.Sprintf("%d of %d requests", got, n)
	})
}

func TestWebhookMutualTLS(t *testing.T) {
	t.Parallel()
	b := startServer(t, true)
	serverCA, clientCA := testcert.NewCA(t, "receiver private CA"), testcert.NewCA(t, "client CA")
	receiver := testcert.StartReceiver(t, serverCA, clientCA)
	const account = "acct_mtls"

	create := func(t *testing.T, path string, tls map[string]string) *response {
		t.Helper()
		body, err := json.Marshal(map[string]any{"account_id": account, "url": receiver.Server.URL + path, "tls": tls})
		require.NoError(t, err)
		return b.do(t, request{method: http.MethodPost, path: "/v1/webhooks", body: string(body)})
	}
	soon := time.Now().Add(7 * 24 * time.Hour)
	certA, keyA := clientCA.Client(t, "webhook-a", time.Now().Add(60*24*time.Hour))
	certB, keyB := clientCA.Client(t, "webhook-b", soon)
	// A CA bundle beyond the other routes' 64 KiB: the webhook routes take
	// 256 KiB.
	bundle := strings.Repeat(string(serverCA.PEM), 120)
	require.Greater(t, len(bundle), 64<<10)

	resp := create(t, "/a", map[string]string{"client_certificate": string(certA), "client_key": string(keyA), "ca_bundle": bundle})
	require.Equal(t, http.StatusCreated, resp.status, "%s", resp.body)
	require.NotContains(t, string(resp.body), "PRIVATE KEY")
	require.NotContains(t, string(resp.body), "BEGIN CERTIFICATE")
	var a webhookTLSView
	require.NoError(t, json.Unmarshal(resp.body, &a))
	require.Equal(t, "CN=webhook-a,O=Mono test", a.TLS.ClientCertificate.Subject)
	require.Equal(t, "CN=client CA", a.TLS.ClientCertificate.Issuer)
	require.NotEmpty(t, a.TLS.ClientCertificate.Serial)
	require.False(t, a.TLS.ClientCertificate.ExpiresSoon)
	require.Len(t, a.TLS.CABundle.Subjects, 120)

	resp = create(t, "/b", map[string]string{"client_certificate": string(certB), "client_key": string(keyB), "ca_bundle": string(serverCA.PEM)})
	require.Equal(t, http.StatusCreated, resp.status, "%s", resp.body)
	var hookB webhookTLSView
	require.NoError(t, json.Unmarshal(resp.body, &hookB))
	require.True(t, hookB.TLS.ClientCertificate.ExpiresSoon, "expires within 14 days")

	t.Run("EachDeliveryWithItsOwnCertificate", func(t *testing.T) {
		for i := range 5 {
			resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: fmt.Sprintf(`{"account_id":%q,"type":"mtls_test","data":{"n":%d}}`, account, i)})
			require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
		}
		waitTLSRequests(t, receiver, 10)
		for _, r := range receiver.Requests() {
			require.Equal(t, map[string]string{"/a": "webhook-a", "/b": "webhook-b"}[r.Path], r.CommonName, "request to %s", r.Path)
		}
	})

	t.Run("TestSend", func(t *testing.T) {
		before := len(receiver.Requests())
		resp := b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hookB.ID + "/test", body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Contains(t, string(resp.body), `"succeeded":true`)
		reqs := receiver.Requests()
		require.Equal(t, testcert.Request{Path: "/b", CommonName: "webhook-b"}, reqs[before])
	})

	t.Run("ExpiryInHealthAndMetric", func(t *testing.T) {
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hookB.ID + "/health"})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Contains(t, string(resp.body), `"client_certificate":{"not_after":"`)
		require.Contains(t, string(resp.body), `"expires_soon":true`)
		resp = b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + a.ID + "/health"})
		require.Contains(t, string(resp.body), `"expires_soon":false`)

		metrics, err := http.Get("http://" + b.srv.MetricsAddr() + "/metrics")
		require.NoError(t, err)
		defer metrics.Body.Close()
		text, err := io.ReadAll(metrics.Body)
		require.NoError(t, err)
		require.Contains(t, string(text), "\nwebhookd_webhook_client_certificates_expiring 1\n")
	})

	t.Run("ExpiredCertificate", func(t *testing.T) {
		// The API refuses an expired certificate; one that expired since
		// (written here straight to the table) fails attempts before
		// anything is dialled.
		resp := create(t, "/expired", map[string]string{"client_certificate": string(certA), "client_key": string(keyA), "ca_bundle": string(serverCA.PEM)})
		require.Equal(t, http.StatusCreated, resp.status, "%s", resp.body)
		var hook webhookTLSView
		require.NoError(t, json.Unmarshal(resp.body, &hook))
		oldCert, oldKey := clientCA.Client(t, "webhook-expired", time.Now().Add(-time.Hour))
		ct, keyID, err := webhookrule.EncryptTLS(b.keys, hook.ID, &outbound.TLSMaterial{CertificatePEM: oldCert, KeyPEM: oldKey})
		require.NoError(t, err)
		_, err = b.pool.Exec(t.Context(), "UPDATE webhooks SET tls_ciphertext = $2, tls_key_id = $3, tls_cert_not_after = $4 WHERE id = $1",
			hook.ID, ct, keyID, time.Now().Add(-time.Hour))
		require.NoError(t, err)

		conns := receiver.Conns.Load()
		resp = b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + hook.ID + "/test", body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Contains(t, string(resp.body), `"error_kind":"client_certificate_expired"`)
		require.Equal(t, conns, receiver.Conns.Load(), "nothing dialled")
		resp = b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + hook.ID + "/health"})
		require.Contains(t, string(resp.body), `"expires_soon":true`)
		resp = b.do(t, request{method: http.MethodDelete, path: "/v1/webhooks/" + hook.ID})
		require.Equal(t, http.StatusNoContent, resp.status)
	})

	t.Run("Get", func(t *testing.T) {
		resp := b.do(t, request{method: http.MethodGet, path: "/v1/webhooks/" + a.ID})
		require.Equal(t, http.StatusOK, resp.status)
		require.NotContains(t, string(resp.body), "PRIVATE KEY")
		var got webhookTLSView
		require.NoError(t, json.Unmarshal(resp.body, &got))
		require.Equal(t, a.TLS.ClientCertificate.Serial, got.TLS.ClientCertificate.Serial)
	})

	t.Run("Invalid", func(t *testing.T) {
		_, otherKey := clientCA.Client(t, "other", time.Now().Add(time.Hour))
		for _, tt := range []struct {
			name  string
			tls   map[string]string
			code  string
			field string
		}{
			{"GarbageCertificate", map[string]string{"client_certificate": "garbage", "client_key": string(keyA)}, "invalid_certificate", "tls.client_certificate"},
			{"GarbageKey", map[string]string{"client_certificate": string(certA), "client_key": "garbage"}, "invalid_key", "tls.client_key"},
			{"KeyMismatch", map[string]string{"client_certificate": string(certA), "client_key": string(otherKey)}, "key_mismatch", "tls.client_key"},
			{"EncryptedKey", map[string]string{"client_certificate": string(certA), "client_key": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"}, "encrypted_key", "tls.client_key"},
			{"KeyWithoutCertificate", map[string]string{"client_key": string(keyA)}, "missing_field", "tls.client_certificate"},
			{"GarbageCABundle", map[string]string{"ca_bundle": "nope"}, "invalid_certificate", "tls.ca_bundle"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				requireError(t, create(t, "/invalid", tt.tls), http.StatusUnprocessableEntity, tt.code, tt.field)
				body, err := json.Marshal(map[string]any{"tls": tt.tls})
				require.NoError(t, err)
				requireError(t, b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + a.ID, body: string(body)}), http.StatusUnprocessableEntity, tt.code, tt.field)
			})
		}
	})

	// The workers keep each webhook's transport by a digest of its stored
	// setting: a new certificate through PATCH is presented from the next
	// attempt on, by deliveries and test sends, and the other webhook
	// still presents its own.
	t.Run("PatchReplacesCertificate", func(t *testing.T) {
		certA2, keyA2 := clientCA.Client(t, "webhook-a2", time.Now().Add(60*24*time.Hour))
		body, err := json.Marshal(map[string]any{"tls": map[string]string{"client_certificate": string(certA2), "client_key": string(keyA2), "ca_bundle": string(serverCA.PEM)}})
		require.NoError(t, err)
		resp := b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + a.ID, body: string(body)})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		var got webhookTLSView
		require.NoError(t, json.Unmarshal(resp.body, &got))
		require.Equal(t, "CN=webhook-a2,O=Mono test", got.TLS.ClientCertificate.Subject)

		before := len(receiver.Requests())
		for i := range 3 {
			resp := b.do(t, request{method: http.MethodPost, path: "/v1/events", body: fmt.Sprintf(`{"account_id":%q,"type":"mtls_test","data":{"patched":%d}}`, account, i)})
			require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
		}
		waitTLSRequests(t, receiver, before+6)
		for _, r := range receiver.Requests()[before:] {
			require.Equal(t, map[string]string{"/a": "webhook-a2", "/b": "webhook-b"}[r.Path], r.CommonName, "request to %s", r.Path)
		}
		resp = b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + a.ID + "/test", body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		reqs := receiver.Requests()
		require.Equal(t, testcert.Request{Path: "/a", CommonName: "webhook-a2"}, reqs[len(reqs)-1])
	})

	t.Run("PatchRemoves", func(t *testing.T) {
		resp := b.do(t, request{method: http.MethodPatch, path: "/v1/webhooks/" + a.ID, body: `{"tls":{}}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		var got webhookTLSView
		require.NoError(t, json.Unmarshal(resp.body, &got))
		require.Nil(t, got.TLS)
		// Without its certificate the receiver refuses the test send.
		resp = b.do(t, request{method: http.MethodPost, path: "/v1/webhooks/" + a.ID + "/test", body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Contains(t, string(resp.body), `"succeeded":false`)
	})
}
