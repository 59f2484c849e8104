package server_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testproc"
	"github.com/mono/webhookd/internal/testserver"
)

// curlPath finds curl; missing, it fails the test in CI and skips it
// elsewhere.
func curlPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("curl is not installed: apt-get install -y curl")
	}
	t.Skip("curl is not installed: apt-get install -y curl")
	return ""
}

// curlResult is what curl printed: the status line and headers, and the
// body.
type curlResult struct {
	status  int
	headers string
	body    string
}

// curl runs curl with args against url and returns the answer.
func curl(t *testing.T, url string, args ...string) curlResult {
	t.Helper()
	headers := t.TempDir() + "/headers"
	cmd := exec.Command(curlPath(t), append([]string{"-sS", "--max-time", "10", "-D", headers, "-o", "-", "-w", "\n%{http_code}"}, append(args, url)...)...)
	cmd.Env = testproc.Env()
	out, err := cmd.Output()
	require.NoError(t, err, string(out))
	raw, err := os.ReadFile(headers)
	require.NoError(t, err)
	i := strings.LastIndex(string(out), "\n")
	body, code := string(out[:i]), string(out[i+1:])
	status, err := strconv.Atoi(code)
	require.NoError(t, err, code)
	return curlResult{status: status, headers: string(raw), body: body}
}

// River UI, driven with curl: a write from another origin is refused and
// changes nothing, one from River UI's own origin (or WEBHOOKD_PUBLIC_URL's)
// works, and no answer may be framed or sniffed.
func TestRiverUICrossOriginCurl(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, func(c *server.Config) {
		c.PublicURL = "https://webhooks.example.com"
		c.DBMaxConns = 6
		c.MaxWorkers = 4
	})
	ctx := context.Background()
	newJob := func() string {
		res, err := srv.River().Insert(ctx, engine.ReconcileArgs{}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		return strconv.FormatInt(res.Job.ID, 10)
	}
	jobExists := func(id string) bool {
		var n int
		require.NoError(t, srv.Pool().QueryRow(ctx, "SELECT count(*) FROM river_job WHERE id = $1", id).Scan(&n))
		return n == 1
	}
	auth := []string{"-u", "admin:" + testserver.AdminKey}
	write := func(id string, extra ...string) curlResult {
		args := append(append([]string{"-X", "POST", "-H", "Content-Type: text/plain", "--data", `{"ids":["` + id + `"]}`}, auth...), extra...)
		return curl(t, srv.BaseURL+"/riverui/api/jobs/delete", args...)
	}
	requireGuardHeaders := func(t *testing.T, r curlResult) {
		t.Helper()
		h := strings.ToLower(r.headers)
		require.Contains(t, h, "x-frame-options: deny\r\n")
		require.Contains(t, h, "content-security-policy: frame-ancestors 'none'\r\n")
		require.Contains(t, h, "x-content-type-options: nosniff\r\n")
	}

	t.Run("HeadersOnEveryAnswer", func(t *testing.T) {
		page := curl(t, srv.BaseURL+"/riverui/", auth...)
		require.Equal(t, 200, page.status)
		requireGuardHeaders(t, page)
		denied := curl(t, srv.BaseURL+"/riverui/")
		require.Equal(t, 401, denied.status)
		requireGuardHeaders(t, denied)
	})

	t.Run("CrossOriginRefused", func(t *testing.T) {
		id := newJob()
		for _, hdr := range [][]string{
			{"-H", "Origin: http://evil.example"},
			{"-H", "Origin: http://webhooks.example.com"}, // the public URL is https
			{"-H", "Sec-Fetch-Site: cross-site"},
			{"-H", "Sec-Fetch-Site: same-site"},
		} {
			r := write(id, hdr...)
			require.Equal(t, 403, r.status, "%v: %s", hdr, r.body)
			require.Contains(t, r.body, `"code":"cross_origin_request"`)
			requireGuardHeaders(t, r)
			require.True(t, jobExists(id), "%v deleted the job", hdr)
		}
		for _, path := range []string{"/riverui/api/jobs/cancel", "/riverui/api/jobs/retry"} {
			r := curl(t, srv.BaseURL+path, append([]string{"-X", "POST", "-H", "Origin: http://evil.example", "--data", `{"ids":["` + id + `"]}`}, auth...)...)
			require.Equal(t, 403, r.status, path)
		}
		var state string
		require.NoError(t, srv.Pool().QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", id).Scan(&state))
		require.Equal(t, "scheduled", state)
	})

	t.Run("SameOriginWorks", func(t *testing.T) {
		host := strings.TrimPrefix(srv.BaseURL, "http://")
		for _, hdr := range [][]string{
			{"-H", "Origin: " + srv.BaseURL, "-H", "Sec-Fetch-Site: same-origin"},
			{"-H", "Origin: " + srv.BaseURL},
			{"-H", "Origin: https://webhooks.example.com"}, // WEBHOOKD_PUBLIC_URL, as behind a proxy
			{}, // no browser headers: curl, scripts
		} {
			id := newJob()
			r := write(id, hdr...)
			require.Equal(t, 200, r.status, "%v (host %s): %s", hdr, host, r.body)
			require.False(t, jobExists(id), "%v", hdr)
		}
	})
}
