// Package verify_test runs the receiver-side verification snippets of
// docs/receivers.md (one standalone program per language under
// examples/verify/)
// against a real signed delivery from an in-process webhookd and against the
// published test vector, so a snippet that drifts from the signer fails the
// build.
package verify_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/signer"
)

// The test vector of DESIGN.md and docs/receivers.md.
const (
	vectorSecret = "whsec_example"
	vectorT      = 1672774221
	vectorBody   = `{"respose_body": "example"}`
	vectorDigest = "e5f32494f098b1675866ad976dc6f6f29ff664be72ecec58ced6eb86c4cbd2d8"
	// seedDigest is what the seed document prints for the same inputs; it
	// does not match them, and every snippet must say so.
	seedDigest = "652fdc1742906b4b23ce2a5f4ac417b52c264fea0207920a5e76330a87239924"
)

// snippet is one language's verifier: the file docs/receivers.md shows, the
// command that runs it and the Debian package that provides the command.
type snippet struct {
	name    string
	file    string // relative to examples/verify
	command string
	pkg     string
	// args are the command's arguments; the Go snippet is built first.
	args []string
}

func snippets() []snippet {
	return []snippet{
		{name: "Go", file: "go/main.go", command: "go", pkg: "golang (or https://go.dev/dl)"},
		{name: "Node", file: "node/verify.js", command: "node", pkg: "nodejs", args: []string{"node/verify.js"}},
		{name: "Python", file: "python/verify.py", command: "python3", pkg: "python3", args: []string{"python/verify.py"}},
		{name: "Ruby", file: "ruby/verify.rb", command: "ruby", pkg: "ruby", args: []string{"ruby/verify.rb"}},
		{name: "PHP", file: "php/verify.php", command: "php", pkg: "php-cli", args: []string{"php/verify.php"}},
	}
}

// requireRuntime returns the path of s's command. A missing one fails the
// test under CI (CI=true) and skips it elsewhere, naming the package.
func requireRuntime(t *testing.T, s snippet) string {
	t.Helper()
	path, err := exec.LookPath(s.command)
	if err == nil {
		return path
	}
	msg := s.name + " snippet: " + s.command + " is not installed; install it with `apt-get install -y " + s.pkg + "` (or run .ci/install-runtimes.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// run runs the verifier with the secret, header and body (and now, when not
// zero, as VERIFY_NOW) and returns whether it exited 0, and its output.
func run(t *testing.T, argv []string, secret, header string, body []byte, now int64) (bool, string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "."
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "MONO_SIGNATURE="+header)
	if now != 0 {
		cmd.Env = append(cmd.Env, "VERIFY_NOW="+strconv.FormatInt(now, 10))
	} else {
		cmd.Env = append(cmd.Env, "VERIFY_NOW=")
	}
	return result(t, cmd)
}

// result runs a verifier's cmd and returns whether it exited 0 printing
// valid, and its output; any other exit than 1 with "invalid: <why>"
// fails the test.
func result(t *testing.T, cmd *exec.Cmd) (bool, string) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		require.Equal(t, "valid\n", out.String(), "a valid request prints valid")
		return true, out.String()
	}
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr, "the verifier did not run: %s", out.String())
	require.Equal(t, 1, exitErr.ExitCode(), "output: %s", out.String())
	require.True(t, strings.HasPrefix(out.String(), "invalid: "), "a rejection says why: %q", out.String())
	return false, out.String()
}

// poster returns a function that POSTs a JSON body to the API at baseURL
// with the admin key, requires status and decodes the answer into dst.
func poster(t *testing.T, baseURL string) func(path, body string, status int, dst any) {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(path, body string, status int, dst any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, baseURL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testserver.AdminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, status, resp.StatusCode, "POST %s: %s", path, raw)
		require.NoError(t, json.Unmarshal(raw, dst))
	}
}

// delivery is one signed request as a receiver got it.
type delivery struct {
	secret string
	header string
	body   []byte
}

// realDelivery starts webhookd and a receiver on 127.0.0.2, creates a
// webhook and sends an event through the API, and returns the request the
// receiver got.
func realDelivery(t *testing.T) *delivery {
	t.Helper()
	srv := testserver.Start(t, nil)
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))
	call := poster(t, srv.BaseURL)

	var hook struct {
		Secret string `json:"secret"`
	}
	call("/v1/webhooks", `{"account_id":"acct_verify","url":"`+rcv.URL+`/hooks"}`, http.StatusCreated, &hook)
	require.True(t, strings.HasPrefix(hook.Secret, "whsec_"))
	var ev struct {
		ID string `json:"id"`
	}
	// Non-ASCII text and <&> check that every snippet signs the raw bytes.
	call("/v1/events", `{"account_id":"acct_verify","type":"bank_transfer_approved","data":{"amount":240000,"currency":"COP","fx_rates":"4002.24","memo":"Bogotá <&> ✓"}}`, http.StatusAccepted, &ev)

	req := rcv.Wait(t, 1, 15*time.Second)[0]
	require.Equal(t, ev.ID, req.Header.Get("Mono-Event-Id"))
	require.Contains(t, string(req.Body), `"memo":"Bogotá <&> ✓"`)
	header := req.Header.Get(signer.Header)
	// The Go signer agrees, so the snippets are checked against a request
	// that is certainly valid.
	require.NoError(t, signer.Verify(header, req.Body, hook.Secret, time.Now(), 0))
	return &delivery{secret: hook.Secret, header: header, body: req.Body}
}

// Every snippet accepts a real signed delivery and the test vector, and
// rejects a tampered body, a wrong secret, a stale or future timestamp, the
// seed's wrong digest and a malformed header.
func TestSnippets(t *testing.T) {
	t.Parallel()

	got := realDelivery(t)
	sig, err := signer.Parse(got.header)
	require.NoError(t, err)
	sentAt := sig.Timestamp.Unix()
	// During a secret rotation a header carries one v1 per active secret.
	rotated := "t=" + strconv.FormatInt(sentAt, 10) + ",v1=" + signer.Compute("whsec_retired", sentAt, got.body) + ",v1=" + signer.Compute(got.secret, sentAt, got.body)
	tampered := bytes.Replace(got.body, []byte("240000"), []byte("940000"), 1)
	require.NotEqual(t, got.body, tampered)
	vector := "t=" + strconv.Itoa(vectorT) + ",v1=" + vectorDigest
	require.Equal(t, vector, signer.Sign(time.Unix(vectorT, 0), []byte(vectorBody), vectorSecret), "the published vector is the signer's")

	// What each rejection must say, in every language: a signature
	// mismatch, a timestamp outside the tolerance, a malformed header.
	const (
		mismatch  = "v1 signature"
		tooOld    = "tolerance"
		malformed = "malformed"
	)
	goBinary := filepath.Join(t.TempDir(), "verify-go")
	for _, s := range snippets() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			path := requireRuntime(t, s)
			argv := append([]string{path}, s.args...)
			if s.name == "Go" {
				build := exec.Command(path, "build", "-o", goBinary, "./go")
				out, err := build.CombinedOutput()
				require.NoError(t, err, "go build: %s", out)
				argv = []string{goBinary}
			}
			accept := func(header string, body []byte, secret string, now int64) {
				t.Helper()
				ok, out := run(t, argv, secret, header, body, now)
				require.True(t, ok, "rejected: %s", out)
			}
			reject := func(header string, body []byte, secret string, now int64, why string) {
				t.Helper()
				ok, out := run(t, argv, secret, header, body, now)
				require.False(t, ok, "accepted")
				require.Contains(t, out, why)
			}

			// Signed 6 minutes ago and an hour ahead (by the real clock).
			stale := signer.Sign(time.Now().Add(-6*time.Minute), got.body, got.secret)
			future := signer.Sign(time.Now().Add(time.Hour), got.body, got.secret)

			// The real delivery, now and with the clock at the edges of
			// the five-minute tolerance.
			accept(got.header, got.body, got.secret, 0)
			accept(got.header, got.body, got.secret, sentAt+300)
			accept(got.header, got.body, got.secret, sentAt-300)
			accept(rotated, got.body, got.secret, 0)
			reject(got.header, tampered, got.secret, 0, mismatch)
			reject(got.header, got.body, got.secret+"x", 0, mismatch)
			reject(got.header, got.body, "whsec_example", 0, mismatch)
			reject(got.header, got.body, got.secret, sentAt+301, tooOld)
			reject(got.header, got.body, got.secret, sentAt-301, tooOld)
			reject(stale, got.body, got.secret, 0, tooOld)
			reject(future, got.body, got.secret, 0, tooOld)
			reject("", got.body, got.secret, 0, malformed)
			reject("v1="+signer.Compute(got.secret, sentAt, got.body), got.body, got.secret, 0, malformed)
			reject("t="+strconv.FormatInt(sentAt, 10), got.body, got.secret, 0, "") // no v1 at all

			// The test vector, with the clock set near its t.
			accept(vector, []byte(vectorBody), vectorSecret, vectorT+60)
			reject(vector, []byte(vectorBody), vectorSecret, vectorT+301, tooOld)
			reject(vector, []byte(vectorBody), vectorSecret, 0, tooOld) // years old by the real clock
			reject("t="+strconv.Itoa(vectorT)+",v1="+seedDigest, []byte(vectorBody), vectorSecret, vectorT+60, mismatch)
			reject(vector, []byte(vectorBody+" "), vectorSecret, vectorT+60, mismatch)
		})
	}
}

// requireShown requires guide to show s's file verbatim in a fenced
// block, and returns the file.
func requireShown(t *testing.T, guide string, s snippet) string {
	t.Helper()
	code, err := os.ReadFile(s.file)
	require.NoError(t, err)
	require.Contains(t, guide, "\n"+string(code)+"```\n",
		"docs/receivers.md must show examples/verify/%s verbatim in a fenced block; copy the file into it again", s.file)
	return string(code)
}

// docs/receivers.md shows every snippet exactly as CI runs it, and the test
// vector.
func TestReceiversGuideShowsSnippets(t *testing.T) {
	t.Parallel()

	guide, err := os.ReadFile("../../docs/receivers.md")
	require.NoError(t, err)
	for _, s := range snippets() {
		code := requireShown(t, string(guide), s)
		require.Contains(t, code, "VERIFY_NOW", "%s: the clock must be injectable for the test vector", s.file)
	}
	require.Contains(t, string(guide), "t="+strconv.Itoa(vectorT)+",v1="+vectorDigest)
	require.Contains(t, string(guide), vectorDigest[:8]+"…` is the correct one", "the guide says the seed's digest is wrong")
}
