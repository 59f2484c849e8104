package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testproc"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// binary is the webhookd built once for these tests.
var binary string

func TestMain(m *testing.M) {
	var cleanup func()
	var err error
	binary, cleanup, err = testproc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

const adminKey = "e2e-admin-key-0123456789"

type process struct {
	cmd     *exec.Cmd
	out     *testproc.Buffer
	base    string
	metrics string // http://WEBHOOKD_METRICS_ADDR
	done    chan struct{}
}

// env is a serve environment on databaseURL with a fast schedule.
func serveEnv(databaseURL, encryptionKey string, extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + databaseURL,
		"WEBHOOKD_ENCRYPTION_KEY=" + encryptionKey,
		"WEBHOOKD_BOOTSTRAP_ADMIN_KEY=" + adminKey,
		"WEBHOOKD_ALLOW_PRIVATE_NETWORKS=true",
		"WEBHOOKD_LOG_LEVEL=debug",
		"WEBHOOKD_DB_MAX_CONNS=10",
		"PATH=" + os.Getenv("PATH"),
	}, extra...)
}

func freeAddr(t *testing.T) string { return testproc.FreeAddr(t) }

// startServe runs `webhookd serve` and waits until /healthz answers.
func startServe(t *testing.T, env []string) *process {
	t.Helper()
	return newProcess(testproc.Start(t, "webhookd serve", binary, env, &testproc.Buffer{}, 30*time.Second, testproc.Healthy, "serve"))
}

func newProcess(p *testproc.Proc) *process {
	return &process{cmd: p.Cmd, out: p.Out, base: p.Base, metrics: p.Metrics, done: p.Done}
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

func (p *process) call(t *testing.T, method, path string, in any, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(t, err)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.base+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, out), string(b))
	}
	return resp.StatusCode
}

type deliveryView struct {
	State         string     `json:"state"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	Attempts      []struct {
		ScheduledAt time.Time `json:"scheduled_at"`
		StartedAt   time.Time `json:"started_at"`
		Number      int       `json:"number"`
		Counted     bool      `json:"counted"`
		StatusCode  *int      `json:"status_code"`
		ErrorKind   *string   `json:"error_kind"`
	} `json:"attempts"`
}

// waitState polls GET /v1/deliveries/{id} until it leaves pending.
func waitState(t *testing.T, procs func() *process, id string, timeout time.Duration) deliveryView {
	t.Helper()
	var d deliveryView
	testwait.For(t, timeout, func() (bool, string) {
		d = deliveryView{}
		require.Equal(t, http.StatusOK, procs().call(t, http.MethodGet, "/v1/deliveries/"+id, nil, &d))
		return d.State != "pending", fmt.Sprintf("delivery %s still pending with %d attempts", id, len(d.Attempts))
	})
	return d
}

func createWebhookAndEvent(t *testing.T, p *process, account, url string) string {
	t.Helper()
	var hook struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, p.call(t, http.MethodPost, "/v1/webhooks", map[string]string{"account_id": account, "url": url}, &hook))
	var ev struct {
		Deliveries []struct {
			ID string `json:"id"`
		} `json:"deliveries"`
	}
	require.Equal(t, http.StatusAccepted, p.call(t, http.MethodPost, "/v1/events", map[string]any{
		"account_id": account, "type": "bank_transfer_approved", "data": map[string]int{"amount": 240000},
	}, &ev))
	require.Len(t, ev.Deliveries, 1)
	return ev.Deliveries[0].ID
}

// Through a running `webhookd serve` in real time at scale 0.001: ten
// attempts, no gap shorter than scale × table and none more than a second
// longer, then dead.
func TestServeRealTimeSchedule(t *testing.T) {
	t.Parallel()

	recv := testreceiver.New(t, testreceiver.Status(500))
	p := startServe(t, serveEnv(testdb.NewURL(t), keyring.Generate(), "WEBHOOKD_RETRY_SCALE=0.001", "WEBHOOKD_HTTP_TIMEOUT=2s"))
	id := createWebhookAndEvent(t, p, "acct_e2e", recv.URL+"/hook")

	d := waitState(t, func() *process { return p }, id, 90*time.Second)
	require.Equal(t, "dead", d.State)
	require.Nil(t, d.NextAttemptAt)
	require.Len(t, d.Attempts, 10)
	for i, a := range d.Attempts {
		require.Equal(t, i+1, a.Number)
		require.Equal(t, 500, *a.StatusCode)
		require.Equal(t, "http_status", *a.ErrorKind)
	}

	reqs := recv.Requests()
	require.Len(t, reqs, 10)
	table := []int64{30, 90, 210, 450, 930, 1890, 3810, 7650, 15330}
	for i := 1; i < len(reqs); i++ {
		want := time.Duration(table[i-1]) * time.Second / 1000
		gap := reqs[i].At.Sub(reqs[i-1].At)
		require.GreaterOrEqual(t, gap, want, "gap before attempt %d is early", i+1)
		require.LessOrEqual(t, gap, want+time.Second, "gap before attempt %d is more than a second late", i+1)
		a := d.Attempts[i]
		t.Logf("attempt %d: gap %v (schedule %v, late by %v; started %v after scheduled)", i+1, gap.Round(time.Millisecond), want,
			(gap - want).Round(time.Millisecond), a.StartedAt.Sub(a.ScheduledAt).Round(time.Millisecond))
	}
}

// A webhookd killed with SIGKILL mid-attempt and restarted delivers the
// delivery within the bounded recovery time, and the crashed attempt does
// not use up one of the ten.
func TestServeCrashMidAttempt(t *testing.T) {
	t.Parallel()

	gotFirst := make(chan struct{})
	recv := testreceiver.New(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			close(gotFirst)
			<-r.Context().Done() // hangs until the sender dies
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	dbURL, key := testdb.NewURL(t), keyring.Generate()
	env := serveEnv(dbURL, key, "WEBHOOKD_RETRY_SCALE=0.001", "WEBHOOKD_HTTP_TIMEOUT=1s", "WEBHOOKD_RECONCILE_INTERVAL=2s")
	first := startServe(t, env)
	id := createWebhookAndEvent(t, first, "acct_crash", recv.URL+"/hook")

	select {
	case <-gotFirst:
	case <-time.After(30 * time.Second):
		t.Fatal("the first attempt never arrived")
	}
	first.kill(t)
	killedAt := time.Now()

	second := startServe(t, env)
	d := waitState(t, func() *process { return second }, id, 90*time.Second)
	t.Logf("recovered %v after the crash", time.Since(killedAt).Round(time.Second))
	require.Equal(t, "succeeded", d.State)
	require.Len(t, d.Attempts, 1, "the crashed attempt was never recorded")
	require.Equal(t, 1, d.Attempts[0].Number, "the crash used none of the ten attempts")
	require.Equal(t, 200, *d.Attempts[0].StatusCode)
	require.Equal(t, 2, recv.Count())
}

// A crash during the tenth attempt, on a job River will not run again (its
// last allowed run): the rescuer discards the job, the reconciler re-queues
// the delivery, and it ends dead — never stuck pending.
func TestServeCrashOnLastAttempt(t *testing.T) {
	t.Parallel()

	gotFirst := make(chan struct{})
	recv := testreceiver.New(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			close(gotFirst)
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	dbURL, key := testdb.NewURL(t), keyring.Generate()
	env := serveEnv(dbURL, key, "WEBHOOKD_RETRY_SCALE=0.001", "WEBHOOKD_HTTP_TIMEOUT=1s", "WEBHOOKD_RECONCILE_INTERVAL=2s")
	first := startServe(t, env)

	// Create the webhook with the workers busy elsewhere: the event is
	// inserted by SQL as if nine attempts had failed already, on a job
	// that River allows only this one run.
	var hook struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, first.call(t, http.MethodPost, "/v1/webhooks", map[string]string{"account_id": "acct_last", "url": recv.URL + "/hook"}, &hook))
	id := insertNinthFailure(t, dbURL, "acct_last")

	select {
	case <-gotFirst:
	case <-time.After(30 * time.Second):
		t.Fatal("the tenth attempt never arrived")
	}
	first.kill(t)

	second := startServe(t, env)
	d := waitState(t, func() *process { return second }, id, 90*time.Second)
	require.Equal(t, "dead", d.State)
	require.Len(t, d.Attempts, 1)
	require.Equal(t, 10, d.Attempts[0].Number)
	require.Equal(t, 503, *d.Attempts[0].StatusCode)
	require.Equal(t, 2, recv.Count())
}

// Bad configuration fails at start with a message naming the variable.
func TestServeBadConfig(t *testing.T) {
	t.Parallel()

	dbURL := testdb.NewURL(t)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"NoEncryptionKey", []string{"DATABASE_URL=" + dbURL}, "WEBHOOKD_ENCRYPTION_KEY"},
		{"BadEndpointFailingAfter", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_ENDPOINT_FAILING_AFTER=-3"}, `WEBHOOKD_ENDPOINT_FAILING_AFTER (-endpoint-failing-after): "-3" is not a whole number`},
		{"NotifyURLWithoutSecret", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_NOTIFY_URL=https://alerts.internal/webhookd"}, "WEBHOOKD_NOTIFY_URL needs WEBHOOKD_NOTIFY_SECRET"},
		{"NotifySecretWithoutURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_NOTIFY_SECRET=whsec_0123456789abcdef"}, "WEBHOOKD_NOTIFY_SECRET is set without WEBHOOKD_NOTIFY_URL"},
		{"ShortNotifySecret", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_NOTIFY_URL=https://alerts.internal/webhookd", "WEBHOOKD_NOTIFY_SECRET=short"}, "WEBHOOKD_NOTIFY_SECRET must be at least 16 characters"},
		{"BadNotifyURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_NOTIFY_URL=ftp://alerts.internal/", "WEBHOOKD_NOTIFY_SECRET=whsec_0123456789abcdef"}, "WEBHOOKD_NOTIFY_URL"},
		{"LocalhostNotifyURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_NOTIFY_URL=http://localhost:9000/", "WEBHOOKD_NOTIFY_SECRET=whsec_0123456789abcdef"}, "WEBHOOKD_NOTIFY_URL"},
		{"BadEncryptionKey", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=short"}, "WEBHOOKD_ENCRYPTION_KEY"},
		{"BadDBPooler", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_DB_POOLER=statement"}, `WEBHOOKD_DB_POOLER (-db-pooler): "statement" is neither none`},
		{"TransactionPoolerWithoutDirectURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_DB_POOLER=transaction"}, "WEBHOOKD_DB_POOLER=transaction needs WEBHOOKD_DIRECT_DATABASE_URL"},
		{"BadDirectDatabaseURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_DB_POOLER=transaction", "WEBHOOKD_DIRECT_DATABASE_URL=postgres://127.0.0.1:notaport/x"}, "WEBHOOKD_DIRECT_DATABASE_URL"},
		{"NoDatabase", []string{"WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate()}, "DATABASE_URL"},
		{"BadScale", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RETRY_SCALE=fast"}, "WEBHOOKD_RETRY_SCALE"},
		{"ZeroScale", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RETRY_SCALE=-1"}, "WEBHOOKD_RETRY_SCALE"},
		{"BadTimeout", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_HTTP_TIMEOUT=10"}, "WEBHOOKD_HTTP_TIMEOUT"},
		{"BadBool", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_ALLOW_PRIVATE_NETWORKS=maybe"}, "WEBHOOKD_ALLOW_PRIVATE_NETWORKS"},
		{"BadKeepFinishedJobs", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_KEEP_FINISHED_JOBS=sometimes"}, "WEBHOOKD_KEEP_FINISHED_JOBS (-keep-finished-jobs)"},
		{"BadRecordLinger", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RECORD_LINGER=soon"}, `WEBHOOKD_RECORD_LINGER (-record-linger): "soon" is not a duration from 0 (never) to 1s`},
		{"LongRecordLinger", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RECORD_LINGER=5s"}, `WEBHOOKD_RECORD_LINGER (-record-linger): "5s" is not a duration from 0 (never) to 1s`},
		{"LongIntakeLinger", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_INTAKE_LINGER=2s"}, `WEBHOOKD_INTAKE_LINGER (-intake-linger): "2s" is not a duration from 0 (never) to 1s`},
		{"BadAdaptiveProcs", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_ADAPTIVE_PROCS=auto"}, `WEBHOOKD_ADAPTIVE_PROCS (-adaptive-procs): "auto" is not true or false`},
		{"HTTPSEgressProxy", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_EGRESS_PROXY=https://squid.internal:3128"}, "WEBHOOKD_EGRESS_PROXY (-egress-proxy): must be http://host:port"},
		{"EgressProxyWithoutPort", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_EGRESS_PROXY=http://squid.internal"}, "WEBHOOKD_EGRESS_PROXY (-egress-proxy): must name a host and a port"},
		{"BadMaxIdleConnsPerHost", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_MAX_IDLE_CONNS_PER_HOST=many"}, `WEBHOOKD_MAX_IDLE_CONNS_PER_HOST (-max-idle-conns-per-host): "many" is not a whole number >= 0`},
		{"BadAddr", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_ADDR=nonsense"}, "WEBHOOKD_ADDR"},
		{"BadRetention", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RETENTION=thirty"}, "WEBHOOKD_RETENTION"},
		{"ShortRetention", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RETENTION=12h"}, "WEBHOOKD_RETENTION"},
		{"ShortDeadRetention", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_DEAD_RETENTION=0d"}, "WEBHOOKD_DEAD_RETENTION"},
		{"LongReplaySpacing", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_REPLAY_SPACING=2h"}, "WEBHOOKD_REPLAY_SPACING must be more than 0 and at most 1h (got 2h0m0s)"},
		{"BadBulkWhileLive", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_BULK_WHILE_LIVE=-5"}, `WEBHOOKD_BULK_WHILE_LIVE (-bulk-while-live): "-5" is neither off nor a whole number >= 0`},
		{"RelativePublicURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_PUBLIC_URL=webhooks.example.com"}, `WEBHOOKD_PUBLIC_URL (-public-url): "webhooks.example.com" is not an absolute http or https URL`},
		{"FTPPublicURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_PUBLIC_URL=ftp://webhooks.example.com"}, `WEBHOOKD_PUBLIC_URL (-public-url): "ftp://webhooks.example.com" is not an absolute http or https URL`},
		{"BadFrameAncestor", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_PUBLIC_URL=https://webhooks.example.com", "WEBHOOKD_PORTAL_FRAME_ANCESTORS=https://app.example.com,app.example.com"}, `WEBHOOKD_PORTAL_FRAME_ANCESTORS (-portal-frame-ancestors): "app.example.com" is not an origin such as https://app.example.com`},
		{"FrameAncestorWithPath", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_PUBLIC_URL=https://webhooks.example.com", "WEBHOOKD_PORTAL_FRAME_ANCESTORS=https://app.example.com/settings"}, `WEBHOOKD_PORTAL_FRAME_ANCESTORS (-portal-frame-ancestors): "https://app.example.com/settings" is not an origin`},
		{"FrameAncestorWildcard", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_PUBLIC_URL=https://webhooks.example.com", "WEBHOOKD_PORTAL_FRAME_ANCESTORS=https://*.example.com"}, `WEBHOOKD_PORTAL_FRAME_ANCESTORS (-portal-frame-ancestors): "https://*.example.com" is not an origin`},
		{"FrameAncestorsWithoutPublicURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_PORTAL_FRAME_ANCESTORS=https://app.example.com"}, "WEBHOOKD_PORTAL_FRAME_ANCESTORS needs an https WEBHOOKD_PUBLIC_URL"},
		{"FrameAncestorsHTTPPublicURL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_PUBLIC_URL=http://webhooks.example.com", "WEBHOOKD_PORTAL_FRAME_ANCESTORS=https://app.example.com"}, "WEBHOOKD_PORTAL_FRAME_ANCESTORS needs an https WEBHOOKD_PUBLIC_URL"},
		{"BadTrustedProxies", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_TRUSTED_PROXIES=10.0.0.0/8,10.1.0.0/99"}, `WEBHOOKD_TRUSTED_PROXIES (-trusted-proxies): "10.1.0.0/99" is not a CIDR`},
		{"BadRateLimitManagement", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RATE_LIMIT_MANAGEMENT=50/s,burst=lots"}, `WEBHOOKD_RATE_LIMIT_MANAGEMENT (-rate-limit-management): "50/s,burst=lots" is not off or a rate such as 50/s or 50/s,burst=100`},
		{"BadRateLimitManagementAdmin", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RATE_LIMIT_MANAGEMENT_ADMIN=unlimited"}, `WEBHOOKD_RATE_LIMIT_MANAGEMENT_ADMIN (-rate-limit-management-admin): "unlimited" is not off or a rate`},
		{"BadRateLimitIntakeAccount", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RATE_LIMIT_INTAKE_ACCOUNT=1000"}, `WEBHOOKD_RATE_LIMIT_INTAKE_ACCOUNT (-rate-limit-intake-account): "1000" is not off or a rate`},
		{"BadRateLimitIntakeAdmin", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RATE_LIMIT_INTAKE_ADMIN=5/d"}, `WEBHOOKD_RATE_LIMIT_INTAKE_ADMIN (-rate-limit-intake-admin): "5/d" is not off or a rate`},
		{"BadRateLimitIntakeEventsWrite", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_RATE_LIMIT_INTAKE_EVENTS_WRITE=-1/s"}, `WEBHOOKD_RATE_LIMIT_INTAKE_EVENTS_WRITE (-rate-limit-intake-events-write): "-1/s" is not off or a rate`},
		{"BadAuthFailureLimit", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_AUTH_FAILURE_LIMIT=0"}, `WEBHOOKD_AUTH_FAILURE_LIMIT (-auth-failure-limit): "0" is neither off nor a whole number >= 1`},
		{"BadBodyBudget", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_BODY_BUDGET=32MB"}, `WEBHOOKD_BODY_BUDGET (-body-budget): "32MB" is not a size in bytes`},
		{"SmallBodyBudget", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_BODY_BUDGET=1MiB"}, `WEBHOOKD_BODY_BUDGET must be at least 4194304 bytes`},
		{"BadBodyBudgetPerKey", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_BODY_BUDGET_PER_KEY=-5"}, `WEBHOOKD_BODY_BUDGET_PER_KEY (-body-budget-per-key): "-5" is not a size in bytes`},
		{"LargeBodyBudgetPerKey", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_BODY_BUDGET_PER_KEY=1GiB"}, `WEBHOOKD_BODY_BUDGET_PER_KEY must be from 0`},
		{"BadBodyMinRate", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_BODY_MIN_RATE=fast"}, `WEBHOOKD_BODY_MIN_RATE (-body-min-rate): "fast" is neither off nor a size such as 64KiB`},
		{"ZeroReplaySpacing", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_REPLAY_SPACING=0s"}, "WEBHOOKD_REPLAY_SPACING"},
		{"BadMaxWebhooks", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_MAX_WEBHOOKS_PER_ACCOUNT=twenty"}, `WEBHOOKD_MAX_WEBHOOKS_PER_ACCOUNT (-max-webhooks-per-account): "twenty" is not a whole number >= 0`},
		{"NegativeMaxFanout", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_MAX_FANOUT_PER_REQUEST=-1"}, `WEBHOOKD_MAX_FANOUT_PER_REQUEST (-max-fanout-per-request): "-1" is not a whole number >= 0`},
		{"LongAPIKeyCacheTTL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_API_KEY_CACHE_TTL=3s"}, `WEBHOOKD_API_KEY_CACHE_TTL (-api-key-cache-ttl): "3s" is not 0 or a duration of at most 2s`},
		{"BadAPIKeyCacheTTL", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_API_KEY_CACHE_TTL=soon"}, `WEBHOOKD_API_KEY_CACHE_TTL (-api-key-cache-ttl): "soon" is not 0 or a duration`},
		{"BadTestSendRate", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_TEST_SEND_RATE=fast"}, `WEBHOOKD_TEST_SEND_RATE (-test-send-rate): "fast" is not off or a rate`},
		{"BadTestSendsInFlight", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_TEST_SENDS_IN_FLIGHT=2.5"}, `WEBHOOKD_TEST_SENDS_IN_FLIGHT (-test-sends-in-flight): "2.5" is not a whole number >= 0`},
		{"BadIntakeWebhookCache", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_INTAKE_WEBHOOK_CACHE=16MB"}, `WEBHOOKD_INTAKE_WEBHOOK_CACHE (-intake-webhook-cache): "16MB" is neither off nor a size such as 16MiB`},
		{"ZeroIntakeWebhookCache", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_INTAKE_WEBHOOK_CACHE=0"}, `WEBHOOKD_INTAKE_WEBHOOK_CACHE (-intake-webhook-cache): "0" is neither off nor a size such as 16MiB`},
		{"BadIntakeTransactions", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_INTAKE_TRANSACTIONS=two"}, `WEBHOOKD_INTAKE_TRANSACTIONS (-intake-transactions): "two" is not a whole number >= 0`},
		{"ManyIntakeTransactions", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_INTAKE_TRANSACTIONS=17"}, `WEBHOOKD_INTAKE_TRANSACTIONS must be from 1 to 16 (got 17)`},
		{"BadHandoffs", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_HANDOFFS=-3"}, `WEBHOOKD_HANDOFFS (-handoffs): "-3" is not a whole number >= 0`},
	}
	// A metrics port that is taken.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { taken.Close() })
	tests = append(tests,
		struct {
			name string
			env  []string
			want string
		}{"MetricsPortInUse", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_METRICS_ADDR=" + taken.Addr().String()}, "WEBHOOKD_METRICS_ADDR: error listening on " + taken.Addr().String()},
		struct {
			name string
			env  []string
			want string
		}{"BadMetricsAddr", []string{"DATABASE_URL=" + dbURL, "WEBHOOKD_ENCRYPTION_KEY=" + keyring.Generate(), "WEBHOOKD_METRICS_ADDR=nonsense"}, "WEBHOOKD_METRICS_ADDR"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary, "serve")
			cmd.Env = append(tt.env, "PATH="+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			require.Error(t, err, string(out))
			require.Contains(t, string(out), tt.want)
		})
	}
}

// migrate applies everything once and is a no-op the second time.
func TestMigrateTwice(t *testing.T) {
	t.Parallel()

	dbURL := testdb.NewURL(t)
	for i := 0; i < 2; i++ {
		cmd := exec.Command(binary, "migrate")
		cmd.Env = []string{"DATABASE_URL=" + dbURL}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "already current", "the test database is migrated from the template already")
	}
	// Without DATABASE_URL, even when the developer running the tests has
	// one exported: the environment is explicit.
	cmd := exec.Command(binary, "migrate")
	cmd.Env = testproc.Env()
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "DATABASE_URL")

	cmd = exec.Command(binary, "bogus")
	cmd.Env = testproc.Env()
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "unknown command")
}

// insertNinthFailure enqueues an event for account as if its delivery had
// failed nine times, on a job River allows one run only, and returns the
// delivery id.
func insertNinthFailure(t *testing.T, dbURL, account string) string {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	enqueuer, err := engine.NewEnqueuer(nil, nil)
	require.NoError(t, err)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	res, err := enqueuer.Enqueue(ctx, tx, &engine.Event{AccountID: account, Type: "ping", Data: json.RawMessage(`{}`)})
	require.NoError(t, err)
	require.Len(t, res.Deliveries, 1)
	id := res.Deliveries[0].ID
	_, err = tx.Exec(ctx, "UPDATE deliveries SET attempts = 9, gen_attempts = 9 WHERE id = $1", id)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE river_job SET max_attempts = 1 WHERE id = (SELECT job_id FROM deliveries WHERE id = $1)", id)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return id
}

// The processor governor (WEBHOOKD_ADAPTIVE_PROCS) runs by default, stays
// off when GOMAXPROCS is set or the setting is false, and says so.
func TestServeAdaptiveProcs(t *testing.T) {
	t.Parallel()

	for _, c := range []struct {
		name      string
		extra     []string
		want, not string
	}{
		{"Default", nil, "Go processors follow the load", "GOMAXPROCS is set"},
		{"GOMAXPROCSSet", []string{"GOMAXPROCS=2"}, "GOMAXPROCS is set: the Go processor count stays as it says", "Go processors follow the load"},
		{"Off", []string{"WEBHOOKD_ADAPTIVE_PROCS=false"}, "webhookd serving", "Go processors"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := startServe(t, serveEnv(testdb.NewURL(t), keyring.Generate(), append([]string{"WEBHOOKD_LOG_FORMAT=json"}, c.extra...)...))
			// The start's lines, up to "webhookd serving" (written after
			// the governor's), reach the buffer through a pipe.
			require.Eventually(t, func() bool {
				out := p.out.String()
				return strings.Contains(out, `"webhookd serving"`) && strings.Contains(out, c.want)
			}, 20*time.Second, 10*time.Millisecond, "the log: %s", p.out.String())
			require.NotContains(t, p.out.String(), c.not)
		})
	}
}
