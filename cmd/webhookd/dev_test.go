package main

import (
	"bufio"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// `webhookd dev` with no DATABASE_URL: a throwaway cluster, the demo webhook
// and event delivered (a retry shown, every signature valid), a working API
// for more events, and Ctrl-C removes everything and exits 0.
func TestDev(t *testing.T) {
	t.Parallel()

	cmd := exec.Command(binary, "dev", "-addr", freeAddr(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill() //nolint:errcheck

	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out strings.Builder
	var pgURL string
	deadline := time.After(90 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops everything") {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("webhookd dev exited early:\n%s", out.String())
			}
			out.WriteString(line + "\n")
		case <-deadline:
			t.Fatalf("webhookd dev not ready after 90s:\n%s", out.String())
		}
	}
	text := out.String()
	require.Contains(t, text, "starting a throwaway PostgreSQL cluster")
	require.Contains(t, text, "succeeded after 2 attempts")
	require.Contains(t, text, "answering 500 on purpose")
	require.Equal(t, 2, strings.Count(text, "signature valid"), text)
	require.NotContains(t, text, "SIGNATURE INVALID")
	// The body arrives as produced: <, & and > not escaped.
	require.Contains(t, text, `"note":"café <&> ünïcode"`)
	if m := regexp.MustCompile(`PostgreSQL at (\S+)`).FindStringSubmatch(text); m != nil {
		pgURL = m[1]
	}
	require.NotEmpty(t, pgURL)

	// The printed curl command works.
	m := regexp.MustCompile(`API: (http://\S+)\s+admin key: (\S+)`).FindStringSubmatch(text)
	require.NotNil(t, m, text)
	req, err := http.NewRequest(http.MethodPost, m[1]+"/v1/events", strings.NewReader(`{"account_id":"acct_demo","type":"card_charged","data":{"amount":160}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+m[2])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))

	// Every address it points at answers, and the dashboard takes the
	// printed key.
	base, key := m[1], m[2]
	for name, path := range map[string]string{"Dashboard": "/dashboard/", "River UI": "/riverui/", "API reference": "/docs"} {
		require.Regexp(t, `(?m)^  `+name+`: +`+regexp.QuoteMeta(base+path)+`( |$)`, text)
	}
	requireDevPage(t, base+"/riverui/", key)
	requireDevPage(t, base+"/docs", "")
	metrics := regexp.MustCompile(`(?m)^  Metrics: +(http://\S+/metrics) `).FindStringSubmatch(text)
	require.NotNil(t, metrics, text)
	require.NotEqual(t, base+"/metrics", metrics[1], "metrics have a listener of their own")
	requireDevPage(t, metrics[1], "")
	requireDevSignIn(t, base, key)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	for line := range lines {
		out.WriteString(line + "\n")
	}
	require.NoError(t, cmd.Wait(), out.String())
	require.Contains(t, out.String(), "throwaway PostgreSQL cluster stopped and removed")
	// The API and the throwaway PostgreSQL are both gone.
	if resp, err := (&http.Client{Timeout: time.Second}).Get(m[1] + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("the API still answers after Ctrl-C")
	}
	u, err := url.Parse(pgURL)
	require.NoError(t, err)
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Fatalf("the throwaway PostgreSQL at %s still accepts connections", u.Host)
	}
}

// requireDevPage fails unless url answers 200, with key as Basic
// authentication's password when not empty.
func requireDevPage(t *testing.T, url, key string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if key != "" {
		req.SetBasicAuth("admin", key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
}

// requireDevSignIn signs in to the dashboard at base with key, as the
// printed instructions say, and fails unless it lands on a signed-in page.
func requireDevSignIn(t *testing.T, base, key string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := client.Get(base + "/dashboard/")
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	require.NotNil(t, m, "the dashboard did not show its sign-in form:\n%s", page)
	req, err := http.NewRequest(http.MethodPost, base+"/dashboard/signin", strings.NewReader(url.Values{"csrf": {html.UnescapeString(string(m[1]))}, "key": {key}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err = client.Do(req)
	require.NoError(t, err)
	page, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "Sign out", "signing in with the printed admin key did not work")
}
