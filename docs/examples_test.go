package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testproc"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

// notRun is the allow-list: the shell blocks of docs/*.md that the test
// does not run, each named by its guide and the start of its first line,
// with the reason. Keep it short: a block that can run against a real
// webhookd should.
var notRun = []struct {
	guide, first, reason string
}{
	{"producers.md", "export WEBHOOKD=http://127.0.0.1:8080 KEY=whk_dev_…", "placeholders for what `webhookd dev` prints; the test sets these variables itself"},
	{"operators.md", "docker compose up --build", "needs Docker"},
	{"operators.md", "export WEBHOOKD=http://localhost:8080 KEY=whk_demo_admin_key_not_for_production", "needs the Docker Compose stack (its receiver is the host receiver:9000)"},
	{"operators.md", "WEBHOOK_SECRET=whsec_… RECEIVER_FAIL_FIRST=2 docker compose up -d receiver", "needs Docker"},
	{"operators.md", "webhookd serve --api", "starts servers that run until stopped; TestRoles in cmd/webhookd runs these roles"},
	{"receivers.md", "webhookd receiver -addr 127.0.0.2:9000", "starts a receiver that runs until stopped"},
	{"development.md", "make drill", "the full drills take 5-7 minutes; `go test ./drill` runs their short variants in make test"},
	{"development.md", "go test -run '^$' -fuzz", "fuzzes for five minutes; every go test replays the seed corpora"},
}

// runnable says whether a fenced block's language is a shell's.
func runnable(lang string) bool {
	switch lang {
	case "sh", "bash", "shell":
		return true
	}
	return false
}

// tools are what the shell examples call; the test needs each.
var tools = map[string]string{
	"bash":    "bash",
	"curl":    "curl",
	"jq":      "jq",
	"openssl": "openssl",
	"psql":    "postgresql-client",
	"pg_dump": "postgresql-client",
	"python3": "python3",
	"make":    "make",
	"go":      "golang",
}

var webhookdBinary string

func TestMain(m *testing.M) {
	binary, cleanup, err := testproc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	webhookdBinary = binary
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// Every fenced block of docs/*.md has a language, and a command never
// hides in a block that is not a shell's (so it can't escape
// TestExamples).
func TestFencesTagged(t *testing.T) {
	t.Parallel()

	for _, guide := range guides(t) {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", guide))
		require.NoError(t, err)
		_, fences := parse(string(raw))
		for _, f := range fences {
			where := fmt.Sprintf("docs/%s:%d", guide, f.line)
			if f.lang == "" {
				t.Errorf("%s: a fenced block without a language; tag it (sh for a command that runs, text, json, go, …)", where)
				continue
			}
			if runnable(f.lang) {
				continue
			}
			for _, l := range strings.Split(f.body, "\n") {
				l = strings.TrimSpace(l)
				if strings.HasPrefix(l, "curl ") || strings.HasPrefix(l, "webhookd ") || strings.HasPrefix(l, "$ ") {
					t.Errorf("%s: %q looks like a command in a %s block; put it in a sh block, which TestExamples runs", where, l, f.lang)
				}
			}
		}
	}
}

func guides(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	require.NoError(t, err)
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	sort.Strings(out)
	return out
}

// Every shell block of docs/*.md runs, in order, with bash against a real
// webhookd (one per guide, on its own database), except the allow-list's.
// Blocks share their variables as a reader's terminal would: a block that
// sets WEBHOOK_ID hands it to the blocks after it. curl fails on an HTTP
// error, so a request the API refuses fails its block.
func TestExamples(t *testing.T) {
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("the docs' examples need %s: apt-get install -y %s", tool, pkg)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	used := map[int]bool{}
	for _, guide := range guides(t) {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", guide))
		require.NoError(t, err)
		_, fences := parse(string(raw))
		var blocks []fence
		for _, f := range fences {
			if !runnable(f.lang) {
				continue
			}
			if i := allowed(guide, f); i >= 0 {
				used[i] = true
				continue
			}
			blocks = append(blocks, f)
		}
		if len(blocks) == 0 {
			continue
		}
		t.Run(strings.TrimSuffix(guide, ".md"), func(t *testing.T) {
			env := setup(t)
			for _, b := range blocks {
				runBlock(t, env, guide, b)
				if t.Failed() {
					return // later blocks depend on this one's variables
				}
			}
		})
	}
	for i, e := range notRun {
		if !used[i] {
			t.Errorf("allow-list: no sh block of docs/%s starts with %q; remove the entry", e.guide, e.first)
		}
	}
}

func allowed(guide string, f fence) int {
	for i, e := range notRun {
		if e.guide == guide && strings.HasPrefix(f.first, e.first) {
			return i
		}
	}
	return -1
}

// examplesEnv is where and with what the blocks of one guide run.
type examplesEnv struct {
	dir   string   // the working directory: the repository's entries, linked
	vars  []string // the environment
	state string   // the file that carries variables from block to block
}

// setup starts webhookd and a receiver on 127.0.0.2, makes the objects
// the guides' runbooks act on (a webhook, an event delivered to it, an
// account key), and returns the environment the guides describe.
func setup(t *testing.T) *examplesEnv {
	t.Helper()
	var cfg server.Config
	srv := testserver.Start(t, func(c *server.Config) { cfg = *c })
	rcv := testreceiver.New(t, testreceiver.Status(http.StatusOK))

	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req, err := http.NewRequest(method, srv.BaseURL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testserver.AdminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, raw)
		out := map[string]any{}
		require.NoError(t, json.Unmarshal(raw, &out))
		return out
	}
	hook := call(http.MethodPost, "/v1/webhooks", `{"account_id":"acct_docs","url":"`+rcv.URL+`/webhooks"}`, http.StatusCreated)
	event := call(http.MethodPost, "/v1/events", `{"account_id":"acct_docs","type":"bank_transfer_approved","data":{"amount":240000,"currency":"COP"}}`, http.StatusAccepted)
	deliveryID := event["deliveries"].([]any)[0].(map[string]any)["id"].(string)
	testwait.For(t, 30*time.Second, func() (bool, string) {
		state := call(http.MethodGet, "/v1/deliveries/"+deliveryID, "", http.StatusOK)["state"]
		return state == "succeeded", fmt.Sprintf("the fixture's delivery is %v", state)
	})
	key := call(http.MethodPost, "/v1/keys", `{"scope":"account","account_id":"acct_docs","description":"docs"}`, http.StatusCreated)

	dir := t.TempDir()
	entries, err := os.ReadDir(repoRoot)
	require.NoError(t, err)
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() == ".git" || e.Name() == "bin" {
			continue
		}
		require.NoError(t, os.Symlink(filepath.Join(root, e.Name()), filepath.Join(dir, e.Name())))
	}

	// curl as the guides call it, failing on an HTTP error.
	shims := t.TempDir()
	curl, err := exec.LookPath("curl")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(shims, "curl"),
		[]byte("#!/bin/sh\nexec "+curl+" --fail-with-body \"$@\"\n"), 0o755))

	var vars []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || name == "PATH" || strings.HasPrefix(name, "WEBHOOKD_") || name == "KEY" {
			continue
		}
		vars = append(vars, kv)
	}
	vars = append(vars,
		"PATH="+shims+string(os.PathListSeparator)+filepath.Dir(webhookdBinary)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"WEBHOOKD="+srv.BaseURL,
		"METRICS=http://"+srv.MetricsAddr(),
		"KEY="+testserver.AdminKey,
		"RECEIVER="+rcv.URL+"/webhooks",
		"DATABASE_URL="+cfg.DatabaseURL,
		"WEBHOOKD_ENCRYPTION_KEY="+cfg.EncryptionKey,
		"WEBHOOK_ID="+hook["id"].(string),
		"EVENT_ID="+event["id"].(string),
		"DELIVERY_ID="+deliveryID,
		"KEY_ID="+key["id"].(string),
	)
	state := filepath.Join(t.TempDir(), "state.sh")
	require.NoError(t, os.WriteFile(state, nil, 0o644))
	return &examplesEnv{dir: dir, vars: vars, state: state}
}

// wrapper runs a block with the variables of the blocks before it, and
// saves those it sets or changes (compared with bash's own at start, bash's
// bookkeeping variables left out) for the blocks after it.
const wrapper = `set -euo pipefail
__docs_before="$(declare -p)"
source "$DOCS_STATE"
%s
for __docs_v in $(compgen -v); do
  case "$__docs_v" in
    __docs_*|BASH*|FUNCNAME|LINENO|RANDOM|SRANDOM|SECONDS|EPOCHREALTIME|EPOCHSECONDS|PIPESTATUS|_|SHLVL|OLDPWD|PWD|GROUPS|DIRSTACK|HISTCMD|OPTIND|OPTARG|PPID|UID|EUID|SHELLOPTS|IFS|PS4|COLUMNS|LINES) continue;;
  esac
  __docs_d="$(declare -p "$__docs_v")"
  case $'\n'"$__docs_before"$'\n' in *$'\n'"$__docs_d"$'\n'*) continue;; esac
  printf '%%s\n' "$__docs_d"
done > "$DOCS_STATE.new"
mv "$DOCS_STATE.new" "$DOCS_STATE"
`

func runBlock(t *testing.T, env *examplesEnv, guide string, b fence) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", fmt.Sprintf(wrapper, b.body))
	cmd.Dir = env.dir
	cmd.Env = append(append([]string(nil), env.vars...), "DOCS_STATE="+env.state)
	cmd.Stdin = strings.NewReader("")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		t.Errorf("docs/%s:%d: the example failed (%v, after %s):\n%s\noutput:\n%s", guide, b.line, err, time.Since(start).Round(time.Millisecond), b.body, out.String())
		return
	}
	if testing.Verbose() {
		t.Logf("docs/%s:%d: ran in %s", guide, b.line, time.Since(start).Round(time.Millisecond))
	}
}
