package verify_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/signer"
)

// standardSnippets are the Standard Webhooks verifiers of
// docs/receivers.md: Go and Node with the official libraries (pinned in
// go.mod and node-standard/package-lock.json), Python with its standard
// library.
func standardSnippets() []snippet {
	return []snippet{
		{name: "Go", file: "go-standard/main.go", command: "go", pkg: "golang (or https://go.dev/dl)"},
		{name: "Node", file: "node-standard/verify.js", command: "node", pkg: "nodejs", args: []string{"node-standard/verify.js"}},
		{name: "Python", file: "python-standard/verify.py", command: "python3", pkg: "python3", args: []string{"python-standard/verify.py"}},
	}
}

// standardRequest is one request as a receiver got it: the Standard
// Webhooks headers and the raw body.
type standardRequest struct {
	id, timestamp, signature string
	mono                     string
	body                     []byte
}

func (r *standardRequest) header() http.Header {
	h := http.Header{}
	h.Set(signer.HeaderWebhookID, r.id)
	h.Set(signer.HeaderWebhookTimestamp, r.timestamp)
	h.Set(signer.HeaderWebhookSignature, r.signature)
	return h
}

// standardDeliveries starts webhookd and a receiver on 127.0.0.2, creates a
// webhook with signature_scheme standard and sends an event (first), then
// rotates its secret with an hour's overlap and sends another (rotated).
func standardDeliveries(t *testing.T) (first, rotated *standardRequest, oldSecret, newSecret string) {
	t.Helper()
	srv := testserver.Start(t, nil)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	call := poster(t, srv.BaseURL)
	var hook struct {
		ID              string `json:"id"`
		Secret          string `json:"secret"`
		SignatureScheme string `json:"signature_scheme"`
	}
	call("/v1/webhooks", `{"account_id":"acct_standard","url":"`+rcv.URL+`/hooks","signature_scheme":"standard"}`, http.StatusCreated, &hook)
	require.Equal(t, "standard", hook.SignatureScheme)
	send := func() *standardRequest {
		t.Helper()
		var ev struct {
			ID string `json:"id"`
		}
		n := rcv.Count()
		call("/v1/events", `{"account_id":"acct_standard","type":"bank_transfer_approved","data":{"amount":240000,"memo":"Bogotá <&> ✓"}}`, http.StatusAccepted, &ev)
		req := rcv.Wait(t, n+1, 15*time.Second)[n]
		require.Equal(t, ev.ID, req.Header.Get(signer.HeaderWebhookID), "webhook-id is the event id")
		require.Equal(t, ev.ID, req.Header.Get("Mono-Event-Id"))
		return &standardRequest{
			id: req.Header.Get(signer.HeaderWebhookID), timestamp: req.Header.Get(signer.HeaderWebhookTimestamp),
			signature: req.Header.Get(signer.HeaderWebhookSignature), mono: req.Header.Get(signer.Header), body: req.Body,
		}
	}
	first = send()
	var rot struct {
		Secret string `json:"secret"`
	}
	call("/v1/webhooks/"+hook.ID+"/rotate-secret", `{"expires_in":"1h"}`, http.StatusOK, &rot)
	rotated = send()
	return first, rotated, hook.Secret, rot.Secret
}

// requireNodeStandard makes sure the pinned standardwebhooks package is
// installed for the Node snippet (npm ci from package-lock.json when it is
// not); without npm or the network that is a failure under CI (CI=true)
// and a skip elsewhere.
func requireNodeStandard(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("node-standard/node_modules/standardwebhooks/package.json"); err == nil {
		return
	}
	fail := t.Skip
	if os.Getenv("CI") == "true" {
		fail = t.Fatal
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		fail("Node Standard Webhooks snippet: npm is not installed; run .ci/install-runtimes.sh")
		return
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = "node-standard"
	if out, err := cmd.CombinedOutput(); err != nil {
		fail("Node Standard Webhooks snippet: npm ci in examples/verify/node-standard failed (run .ci/install-runtimes.sh): " + err.Error() + "\n" + string(out))
	}
}

// runStandard runs a Standard Webhooks verifier (see result): whether it
// exited 0 (printing valid) and its output.
func runStandard(t *testing.T, argv []string, secret string, r *standardRequest) (bool, string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(r.body)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "WEBHOOK_ID="+r.id, "WEBHOOK_TIMESTAMP="+r.timestamp, "WEBHOOK_SIGNATURE="+r.signature, "VERIFY_NOW=")
	return result(t, cmd)
}

// Real deliveries of a webhook with signature_scheme standard verify with
// the official Go library and the official npm package (and the Python
// snippet), the secret exactly as the API shows it: a valid request is
// accepted; a tampered body, a wrong secret and a timestamp older than the
// five-minute tolerance are refused; during a rotation's overlap the
// request carries a signature for each secret and verifies with either.
// Mono-Signature is still sent and still verifies.
func TestStandardWebhooks(t *testing.T) {
	t.Parallel()

	first, rotated, oldSecret, newSecret := standardDeliveries(t)
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, oldSecret, "a new secret is whsec_ and the padded standard base64 of 32 bytes")
	require.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, first.signature, "one secret, one entry")
	require.Len(t, strings.Split(rotated.signature, " "), 2, "during the overlap one entry per secret: %q", rotated.signature)
	require.NoError(t, signer.Verify(first.mono, first.body, oldSecret, time.Now(), 0), "Mono-Signature keeps verifying")
	require.NoError(t, signer.Verify(rotated.mono, rotated.body, oldSecret, time.Now(), 0))
	require.NoError(t, signer.Verify(rotated.mono, rotated.body, newSecret, time.Now(), 0))

	// The library, in process.
	lib := func(secret string) *standardwebhooks.Webhook {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err, "the library takes the secret as shown")
		return wh
	}
	require.NoError(t, lib(oldSecret).Verify(first.body, first.header()))
	require.NoError(t, lib(oldSecret).Verify(rotated.body, rotated.header()))
	require.NoError(t, lib(newSecret).Verify(rotated.body, rotated.header()))
	require.ErrorIs(t, lib(newSecret).Verify(first.body, first.header()), standardwebhooks.ErrNoMatchingSignature)

	// The variants every verifier must refuse.
	tampered := *first
	tampered.body = bytes.Replace(first.body, []byte("240000"), []byte("940000"), 1)
	require.NotEqual(t, first.body, tampered.body)
	wrongSecret := signer.NewSecret(bytes.Repeat([]byte{7}, 32))
	key, ok := signer.StandardKey(oldSecret)
	require.True(t, ok)
	old := *first // validly signed, six minutes ago
	sixAgo := time.Now().Add(-6 * time.Minute)
	old.timestamp = strconv.FormatInt(sixAgo.Unix(), 10)
	old.signature = signer.SignStandard(sixAgo, first.id, first.body, key)
	require.NoError(t, lib(oldSecret).VerifyIgnoringTimestamp(old.body, old.header()), "signed right, only too old")
	require.ErrorIs(t, lib(oldSecret).Verify(old.body, old.header()), standardwebhooks.ErrMessageTooOld)
	require.ErrorIs(t, lib(oldSecret).Verify(tampered.body, tampered.header()), standardwebhooks.ErrNoMatchingSignature)
	require.ErrorIs(t, lib(wrongSecret).Verify(first.body, first.header()), standardwebhooks.ErrNoMatchingSignature)

	requireNodeStandard(t)
	goBinary := filepath.Join(t.TempDir(), "verify-go-standard")
	for _, s := range standardSnippets() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			path := requireRuntime(t, s)
			argv := append([]string{path}, s.args...)
			if s.name == "Go" {
				out, err := exec.Command(path, "build", "-o", goBinary, "./go-standard").CombinedOutput()
				require.NoError(t, err, "go build: %s", out)
				argv = []string{goBinary}
			}
			accept := func(secret string, r *standardRequest) {
				t.Helper()
				ok, out := runStandard(t, argv, secret, r)
				require.True(t, ok, "rejected: %s", out)
			}
			reject := func(secret string, r *standardRequest) {
				t.Helper()
				ok, _ := runStandard(t, argv, secret, r)
				require.False(t, ok, "accepted")
			}
			accept(oldSecret, first)
			reject(oldSecret, &tampered)
			reject(wrongSecret, first)
			reject(oldSecret, &old)
			// The rotation's overlap: either secret verifies.
			accept(oldSecret, rotated)
			accept(newSecret, rotated)
			reject(newSecret, first)
		})
	}
}

// docs/receivers.md shows every Standard Webhooks snippet exactly as CI
// runs it, and the pinned npm version.
func TestReceiversGuideShowsStandardSnippets(t *testing.T) {
	t.Parallel()

	guide, err := os.ReadFile("../../docs/receivers.md")
	require.NoError(t, err)
	for _, s := range standardSnippets() {
		requireShown(t, string(guide), s)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile("node-standard/package.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &pkg))
	require.Contains(t, string(guide), "standardwebhooks@"+pkg.Dependencies["standardwebhooks"])
}

// The secret form the libraries take: whsec_ and padded standard base64.
// A secret issued before it (base64url without padding) is refused by the
// library, so webhookd signs webhook-signature only with decodable ones.
func TestStandardSecretForm(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xfb}, 32)
	oldForm := "whsec_" + base64.RawURLEncoding.EncodeToString(key)
	_, err := standardwebhooks.NewWebhook(oldForm)
	require.Error(t, err)
	_, ok := signer.StandardKey(oldForm)
	require.False(t, ok)

	newForm := signer.NewSecret(key)
	wh, err := standardwebhooks.NewWebhook(newForm)
	require.NoError(t, err)
	got, ok := signer.StandardKey(newForm)
	require.True(t, ok)
	require.Equal(t, key, got)
	at := time.Now()
	want, err := wh.Sign("evt_1", at, []byte(`{"a":1}`))
	require.NoError(t, err)
	require.Equal(t, want, signer.SignStandard(at, "evt_1", []byte(`{"a":1}`), got))
}
