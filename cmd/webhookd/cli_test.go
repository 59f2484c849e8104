package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/client"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

// cliBundle is an in-process webhookd (the retry schedule at 0.0001 scale:
// ten failed attempts take about 3 s) and an admin client of it.
type cliBundle struct {
	baseURL string
	pool    *pgxpool.Pool
	client  *client.Client
}

func cliSetup(t *testing.T) *cliBundle {
	t.Helper()
	srv := testserver.Start(t, func(c *server.Config) {
		c.BootstrapAdminKey = adminKey
		c.RetryScale = 0.0001
		c.DBMaxConns = 8
		c.MaxWorkers = 20
	})
	b := &cliBundle{baseURL: srv.BaseURL, pool: srv.Pool()}
	var err error
	b.client, err = client.New(b.baseURL, adminKey, nil)
	require.NoError(t, err)
	return b
}

// cliResult is one run of the webhookd binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the webhookd binary with env (besides PATH) and stdin.
func runCLI(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		res.code = exitErr.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return res
}

func (b *cliBundle) env(key string) []string {
	return []string{"WEBHOOKD_URL=" + b.baseURL, "WEBHOOKD_API_KEY=" + key}
}

// ok runs the CLI with the admin key and requires exit status 0.
func (b *cliBundle) ok(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, b.env(adminKey), stdin, args...)
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	return res
}

// fails runs the CLI with env and requires a non-zero exit with want on
// stderr.
func fails(t *testing.T, env []string, stdin, want string, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, env, stdin, args...)
	require.NotEqual(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, want)
	return res
}

func (b *cliBundle) send(t *testing.T, account string) *client.Enqueued {
	t.Helper()
	ev, err := b.client.SendEvent(context.Background(), &client.EventParams{AccountID: account, Type: "invoice.paid", Data: map[string]string{"invoice": "inv_1"}})
	require.NoError(t, err)
	require.Len(t, ev.Deliveries, 1)
	return ev
}

func (b *cliBundle) webhook(t *testing.T, account, url string) string {
	t.Helper()
	hook, err := b.client.CreateWebhook(context.Background(), &client.CreateWebhookParams{AccountID: account, URL: url})
	require.NoError(t, err)
	return hook.ID
}

// waitFor polls delivery id until cond holds.
func (b *cliBundle) waitFor(t *testing.T, id, what string, cond func(*client.Delivery) bool) *client.Delivery {
	t.Helper()
	var d *client.Delivery
	testwait.For(t, 20*time.Second, func() (bool, string) {
		var err error
		d, err = b.client.GetDelivery(context.Background(), id)
		require.NoError(t, err)
		return cond(d), fmt.Sprintf("delivery %s: still not %s (state %s)", id, what, d.State)
	})
	return d
}

func (b *cliBundle) waitDead(t *testing.T, id string) {
	t.Helper()
	b.waitFor(t, id, "dead", func(d *client.Delivery) bool { return d.State == client.StateDead })
}

func (b *cliBundle) replays(t *testing.T, id string) int {
	t.Helper()
	d, err := b.client.GetDelivery(context.Background(), id)
	require.NoError(t, err)
	return len(d.Replays)
}

func (b *cliBundle) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// tableRows returns a table's lines after its header line.
func tableRows(t *testing.T, out string, header *regexp.Regexp) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, line := range lines {
		if header.MatchString(line) {
			rows := lines[i+1:]
			for j, r := range rows {
				if strings.TrimSpace(r) == "" {
					return rows[:j]
				}
			}
			return rows
		}
	}
	require.Failf(t, "no table header", "%s in:\n%s", header, out)
	return nil
}

var (
	listHeader    = regexp.MustCompile(`^ID\s+STATE\s+ATTEMPTS\s+ACCOUNT\s+WEBHOOK\s+EVENT TYPE\s+CREATED\s+FINISHED$`)
	attemptHeader = regexp.MustCompile(`^#\s+GEN\s+STARTED\s+DURATION\s+STATUS\s+ERROR\s+RESPONSE$`)
)

// list, show, replay and events show, as tables and as JSON; the bulk
// replay's confirmation; an account key's view.
func TestCLIDeliveries(t *testing.T) {
	t.Parallel()

	b := cliSetup(t)
	ctx := context.Background()
	rcv := testreceiver.New(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("down for\tmaintenance\n"))
	})
	hookA := b.webhook(t, "acct_cli_a", rcv.URL+"/a")
	hookB := b.webhook(t, "acct_cli_b", rcv.URL+"/b")
	hookC := b.webhook(t, "acct_cli_c", rcv.URL+"/ok")
	hookEmpty := b.webhook(t, "acct_cli_d", rcv.URL+"/d")
	evA1, evA2, evB := b.send(t, "acct_cli_a"), b.send(t, "acct_cli_a"), b.send(t, "acct_cli_b")
	evC := b.send(t, "acct_cli_c")
	a1, a2, b1, c1 := evA1.Deliveries[0].ID, evA2.Deliveries[0].ID, evB.Deliveries[0].ID, evC.Deliveries[0].ID
	for _, id := range []string{a1, a2, b1} {
		b.waitDead(t, id)
	}
	b.waitFor(t, c1, "succeeded", func(d *client.Delivery) bool { return d.State == client.StateSucceeded })

	t.Run("ListTable", func(t *testing.T) {
		res := b.ok(t, "", "deliveries", "list", "--state", "dead")
		rows := tableRows(t, res.stdout, listHeader)
		require.Len(t, rows, 3, res.stdout)
		require.Contains(t, rows[0], b1, "newest first")
		require.Regexp(t, `^`+b1+`\s+dead\s+10\s+acct_cli_b\s+`+hookB+`\s+invoice\.paid\s+\d{4}-`, rows[0])
		require.Contains(t, rows[1], a2)
		require.Contains(t, rows[2], a1)
	})

	t.Run("ListFiltersAndLimit", func(t *testing.T) {
		res := b.ok(t, "", "deliveries", "list", "--state", "dead", "--webhook", hookA, "--account", "acct_cli_a", "--type", "invoice.paid", "--since", "1h", "--limit", "1")
		rows := tableRows(t, res.stdout, listHeader)
		require.Len(t, rows, 1, res.stdout)
		require.Contains(t, rows[0], a2)
		require.Contains(t, res.stderr, "More deliveries match: showing the newest 1")

		res = b.ok(t, "", "deliveries", "list", "-state", "dead", "-account", "acct_cli_a", "-type", "other.type")
		require.Equal(t, "no deliveries match\n", res.stdout)
	})

	t.Run("ListJSON", func(t *testing.T) {
		res := b.ok(t, "", "deliveries", "list", "--state", "dead", "--account", "acct_cli_a", "--json")
		var rows []client.Delivery
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &rows), res.stdout)
		require.Len(t, rows, 2)
		require.Equal(t, a2, rows[0].ID)
		require.Equal(t, 10, rows[0].AttemptCount)
		require.Equal(t, hookA, rows[1].WebhookID)
	})

	t.Run("ShowTable", func(t *testing.T) {
		res := b.ok(t, "", "deliveries", "show", a1)
		require.Regexp(t, `(?m)^Delivery:\s+`+a1+`$`, res.stdout)
		require.Regexp(t, `(?m)^State:\s+dead$`, res.stdout)
		require.Regexp(t, `(?m)^Event:\s+`+evA1.ID+` \(invoice\.paid\)$`, res.stdout)
		require.Contains(t, res.stdout, "Attempts (10):")
		rows := tableRows(t, res.stdout, attemptHeader)
		require.Len(t, rows, 10, res.stdout)
		for i, row := range rows {
			require.Regexp(t, `^`+strconv.Itoa(i+1)+`\s+1\s+\d{4}-\S+Z\s+\S+\s+500\s+\S.*down for maintenance$`, row)
		}
		require.NotContains(t, res.stdout, "Replays")
	})

	t.Run("ShowJSON", func(t *testing.T) {
		// Flags may follow the id.
		res := b.ok(t, "", "deliveries", "show", a1, "--json")
		var d client.Delivery
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &d), res.stdout)
		require.Equal(t, a1, d.ID)
		require.Len(t, d.Attempts, 10)
		require.Equal(t, 500, *d.Attempts[9].StatusCode)
	})

	t.Run("EventsShow", func(t *testing.T) {
		res := b.ok(t, "", "events", "show", evA1.ID)
		require.Regexp(t, `(?m)^Event:\s+`+evA1.ID+`$`, res.stdout)
		require.Regexp(t, `(?m)^Type:\s+invoice\.paid$`, res.stdout)
		require.Regexp(t, `(?m)^Idempotency key:\s+`+regexp.QuoteMeta(evA1.IdempotencyKey)+`$`, res.stdout)
		require.Contains(t, res.stdout, `"invoice": "inv_1"`)
		rows := tableRows(t, res.stdout, regexp.MustCompile(`^ID\s+WEBHOOK\s+STATE$`))
		require.Len(t, rows, 1)
		require.Regexp(t, `^`+a1+`\s+`+hookA+`\s+dead$`, rows[0])

		res = b.ok(t, "", "events", "show", "--json", evA1.ID)
		var ev client.Event
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &ev), res.stdout)
		require.Equal(t, evA1.ID, ev.ID)
		require.Equal(t, "dead", ev.Deliveries[0].State)
	})

	t.Run("AccountKey", func(t *testing.T) {
		key, err := b.client.CreateKey(ctx, &client.CreateKeyParams{Scope: client.ScopeAccount, AccountID: "acct_cli_a"})
		require.NoError(t, err)
		env := b.env(key.Key)
		res := runCLI(t, env, "", "deliveries", "list", "--state", "dead")
		require.Equal(t, 0, res.code, res.stderr)
		rows := tableRows(t, res.stdout, listHeader)
		require.Len(t, rows, 2, res.stdout)
		require.NotContains(t, res.stdout, "acct_cli_b")
		require.NotContains(t, res.stdout, b1)

		fails(t, env, "", "deliveries show: field id: delivery not found [404 not_found]", "deliveries", "show", b1)
		fails(t, env, "", "events show: field id: event not found [404 not_found]", "events", "show", evB.ID)
		fails(t, env, "", "field account_id (-account): this API key is bound to another account [403 account_not_allowed]",
			"deliveries", "list", "--state", "dead", "--account", "acct_cli_b")
		fails(t, env, "", "[404 not_found]", "deliveries", "replay", b1)
		fails(t, env, "", "deliveries replay: field webhook_id (-webhook): webhook not found [404 not_found]", "deliveries", "replay", "--webhook", hookB, "--yes")
		require.Equal(t, 0, b.replays(t, b1))
	})

	t.Run("ReplayOne", func(t *testing.T) {
		res := b.ok(t, "", "deliveries", "replay", b1)
		require.Equal(t, "Replayed delivery "+b1+": pending again, as generation 2 (10 attempts so far).\n", res.stdout)
		require.Equal(t, 1, b.replays(t, b1))
		// Pending now: a second replay is refused.
		fails(t, b.env(adminKey), "", "deliveries replay: the delivery is pending", "deliveries", "replay", b1)
		b.waitDead(t, b1)
		res = b.ok(t, "", "deliveries", "replay", "--json", b1)
		var d client.Delivery
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &d), res.stdout)
		require.Equal(t, 3, d.Generation)
		require.Len(t, d.Replays, 2)
	})

	t.Run("BulkReplayDeclined", func(t *testing.T) {
		for _, answer := range []string{"n\n", "", "maybe\n"} {
			res := fails(t, b.env(adminKey), answer, "not confirmed, nothing replayed", "deliveries", "replay", "--webhook", hookA, "--since", "1h")
			require.Contains(t, res.stderr, "Replay 2 dead deliveries of webhook "+hookA+" created in the last 1h? [y/N]")
			require.Empty(t, res.stdout)
		}
		require.Equal(t, 0, b.count(t, "replay_batches"))
		require.Equal(t, 0, b.replays(t, a1))
		require.Equal(t, 0, b.replays(t, a2))
	})

	t.Run("BulkReplayNothing", func(t *testing.T) {
		res := b.ok(t, "", "deliveries", "replay", "--webhook", hookEmpty, "--since", "24h")
		require.Contains(t, res.stderr, "No dead deliveries match webhook "+hookEmpty)
		require.Equal(t, 0, b.count(t, "replay_batches"))
	})

	t.Run("BulkReplayYes", func(t *testing.T) {
		res := b.ok(t, "", "deliveries", "replay", "--webhook", hookA, "--since", "1h", "--yes")
		require.Regexp(t, `^Bulk replay rpl_[0-9a-f]{32} started: 2 deliveries`, res.stdout)
		require.NotContains(t, res.stderr, "[y/N]")
		for _, id := range []string{a1, a2} {
			b.waitFor(t, id, "replayed", func(d *client.Delivery) bool { return len(d.Replays) == 1 })
		}
	})

	t.Run("BulkReplayConfirmed", func(t *testing.T) {
		res := b.ok(t, "y\n", "deliveries", "replay", "--account", "acct_cli_c", "--state", "succeeded", "--json")
		require.Contains(t, res.stderr, "Replay 1 succeeded deliveries of account acct_cli_c? [y/N]")
		var batch client.ReplayBatch
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &batch), res.stdout)
		require.Equal(t, 1, batch.Total)
		require.Equal(t, "acct_cli_c", batch.Filter.AccountID)
		require.Equal(t, "succeeded", batch.Filter.State)
		b.waitFor(t, c1, "replayed", func(d *client.Delivery) bool { return len(d.Replays) == 1 })
	})
	_ = hookC
}

// Bad flags, arguments and settings, and API errors: a message naming the
// flag or field, a non-zero exit.
func TestCLIErrors(t *testing.T) {
	t.Parallel()

	b := cliSetup(t)
	env := b.env(adminKey)
	dlv := "dlv_00000000000000000000000000000000"
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"UnknownFlag", env, []string{"deliveries", "list", "--stat", "dead"}, "flag provided but not defined: -stat"},
		{"BadSince", env, []string{"deliveries", "list", "--state", "dead", "--since", "yesterday"}, `-since: "yesterday" is not a positive duration`},
		{"NegativeSince", env, []string{"deliveries", "replay", "--webhook", "wh_x", "--since", "-1h"}, `-since: "-1h" is not a positive duration`},
		{"LimitZero", env, []string{"deliveries", "list", "--state", "dead", "--limit", "0"}, "-limit: 0 is not from 1 to 100000"},
		{"LimitNotNumber", env, []string{"deliveries", "list", "--limit", "many"}, `invalid value "many" for flag -limit`},
		{"ExtraArgument", env, []string{"deliveries", "list", "--state", "dead", "extra"}, `unexpected argument "extra"`},
		{"NoSubcommand", env, []string{"deliveries"}, "deliveries: a subcommand is required"},
		{"UnknownSubcommand", env, []string{"deliveries", "purge"}, `deliveries: unknown subcommand "purge"`},
		{"EventsNoSubcommand", env, []string{"events"}, "events: a subcommand is required"},
		{"EventsUnknownSubcommand", env, []string{"events", "list"}, `events: unknown subcommand "list"`},
		{"ShowNoID", env, []string{"deliveries", "show"}, "exactly one delivery id is required"},
		{"ShowTwoIDs", env, []string{"deliveries", "show", dlv, dlv}, "exactly one delivery id is required"},
		{"EventsShowNoID", env, []string{"events", "show"}, "exactly one event id is required"},
		{"ReplayNothing", env, []string{"deliveries", "replay"}, "a delivery id, or -webhook or -account for a bulk replay, is required"},
		{"ReplayIDAndFilter", env, []string{"deliveries", "replay", dlv, "--webhook", "wh_x"}, "not both"},
		{"ReplayBadState", env, []string{"deliveries", "replay", "--account", "acct_x", "--state", "pending"}, `-state: "pending" is not dead or succeeded`},
		{"NoAPIKey", []string{"WEBHOOKD_URL=" + b.baseURL}, []string{"deliveries", "list", "--state", "dead"}, "WEBHOOKD_API_KEY (-api-key) is required"},
		{"BadURL", []string{"WEBHOOKD_URL=localhost:8080", "WEBHOOKD_API_KEY=k"}, []string{"events", "show", "evt_x"}, `WEBHOOKD_URL (-url): "localhost:8080" is not an http(s) URL`},
		{"BadURLFlag", env, []string{"deliveries", "show", dlv, "-url", "ftp://h"}, `WEBHOOKD_URL (-url): "ftp://h" is not an http(s) URL`},
		{"APIMissingFilter", env, []string{"deliveries", "list"}, "deliveries list: field account_id (-account): account_id or webhook_id is required (only state=dead may list every account) [422 missing_filter]"},
		{"APIBadState", env, []string{"deliveries", "list", "--state", "lost"}, "field state (-state): state must be one of"},
		{"APIBadWebhook", env, []string{"deliveries", "list", "--webhook", "wh_123"}, "field webhook_id (-webhook): webhook_id must be an id"},
		{"APIBadType", env, []string{"deliveries", "list", "--state", "dead", "--type", "Bad Type"}, "field event_type (-type)"},
		{"APINotFound", env, []string{"deliveries", "show", dlv}, "deliveries show: field id: delivery not found [404 not_found]"},
		{"APIBulkNoWebhook", env, []string{"deliveries", "replay", "--webhook", "wh_00000000000000000000000000000000", "--yes"}, "field webhook_id (-webhook): webhook not found [404 not_found]"},
		{"APIBulkMalformedWebhook", env, []string{"deliveries", "replay", "--webhook", "wh_x", "--yes"}, "field webhook_id (-webhook): webhook not found"},
		{"APIWrongKey", b.env("not-a-key"), []string{"deliveries", "show", dlv}, "(-api-key (WEBHOOKD_API_KEY))"},
		{"APIKeyFlagOverridesEnv", env, []string{"events", "show", "evt_00000000000000000000000000000000", "-api-key", "wrong"}, "[401 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := fails(t, tc.env, "", tc.want, tc.args...)
			require.Empty(t, res.stdout)
		})
	}

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		res := fails(t, []string{"WEBHOOKD_URL=http://127.0.0.1:1", "WEBHOOKD_API_KEY=k"}, "", "connection refused", "events", "show", "evt_00000000000000000000000000000000")
		require.Equal(t, 1, res.code)
	})

	t.Run("Help", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "", "deliveries", "help")
		require.Equal(t, 0, res.code)
		require.Contains(t, res.stdout, "webhookd deliveries replay -webhook ID|-account ID")
		res = runCLI(t, nil, "", "deliveries", "list", "-h")
		require.Equal(t, 0, res.code)
		require.Contains(t, res.stderr, "WEBHOOKD_URL")
	})
}
