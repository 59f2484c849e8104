package drill

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testproc"
	"github.com/mono/webhookd/internal/testwait"
)

var (
	fullFlag   = flag.Bool("drill.full", false, "run the full drills (make drill) instead of the short CI variants")
	reportFlag = flag.String("drill.report", "", "also write the drills' results as JSON to this file")
)

// binary is the webhookd built from this tree for the drills.
var binary string

// results collects every drill's figures for the table printed at the end.
var results struct {
	mu   sync.Mutex
	list []*Result
}

func TestMain(m *testing.M) {
	flag.Parse()
	var cleanup func()
	var err error
	binary, cleanup, err = testproc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()

	results.mu.Lock()
	list := results.list
	results.mu.Unlock()
	if len(list) > 0 {
		sort.Slice(list, func(i, j int) bool { return list[i].order < list[j].order })
		fmt.Println()
		fmt.Print(Table(list))
		if *reportFlag != "" {
			b, _ := json.MarshalIndent(list, "", "  ")
			if err := os.WriteFile(*reportFlag, b, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "drill: error writing report:", err)
			}
		}
	}
	os.Exit(code)
}

// record adds r to the table printed at the end and logs it.
func record(t *testing.T, r *Result) {
	t.Helper()
	results.mu.Lock()
	results.list = append(results.list, r)
	results.mu.Unlock()
	t.Logf("%s: accepted %d, delivered %d, duplicated %d, lost %d", r.Drill, r.Accepted, r.Delivered, r.Duplicated, r.Lost)
	for _, f := range r.Figures {
		t.Logf("  %s: %s", f.Name, f.Value)
	}
}

// TestDrill runs every drill: the short variants side by side (their
// waits are mostly idle, and -parallel would hold them to GOMAXPROCS at a
// time), the full ones (-drill.full) one after another, so that their
// figures are not disturbed by each other. Run one with
// -run TestDrill/WorkerCrash.
func TestDrill(t *testing.T) {
	drills := []struct {
		name string
		run  func(*testing.T)
	}{
		{"WorkerCrash", drillWorkerCrash},
		{"DatabaseRestart", drillDatabaseRestart},
		{"HostileReceivers", drillHostileReceivers},
		{"HostileCallers", drillHostileCallers},
		{"Failover", drillFailover},
		{"PartitionDatabase", drillPartitionDatabase},
		{"PartitionReceivers", drillPartitionReceivers},
	}
	if *fullFlag {
		for _, d := range drills {
			t.Run(d.name, d.run)
		}
		return
	}
	var wg sync.WaitGroup
	for _, d := range drills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(d.name, d.run)
		}()
	}
	wg.Wait()
}

// pick returns short in the CI variant and full under -drill.full.
func pick[T any](short, full T) T {
	if *fullFlag {
		return full
	}
	return short
}

const adminKey = "drill-admin-key-0123456789"

// encryptionKey is a fresh WEBHOOKD_ENCRYPTION_KEY.
func encryptionKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b)
}

// serveEnv is the environment of a webhookd serve on databaseURL: private
// networks allowed (receivers are on 127.0.0.2), small pools (5 connections
// in the short drills, 10 in the full ones), quiet logs.
func serveEnv(databaseURL, key string, extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + databaseURL,
		"WEBHOOKD_ENCRYPTION_KEY=" + key,
		"WEBHOOKD_BOOTSTRAP_ADMIN_KEY=" + adminKey,
		"WEBHOOKD_ALLOW_PRIVATE_NETWORKS=true",
		"WEBHOOKD_LOG_LEVEL=warn",
		// Short drills share the server with the rest of `go test ./...`.
		"WEBHOOKD_DB_MAX_CONNS=" + pick("5", "10"),
		"PATH=" + os.Getenv("PATH"),
	}, extra...)
}

// proc is one webhookd process.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testproc.Buffer
	base string
	done chan struct{}
}

// startProc runs `webhookd <args>` with env and waits (at most 60 s) until
// its /healthz answers, keeping the last 256 KiB of its output. The process
// is killed at cleanup.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := testproc.Start(t, name, binary, env, &testproc.Buffer{Max: 256 << 10}, 60*time.Second, testproc.Healthy, args...)
	return &proc{name: name, cmd: p.Cmd, out: p.Out, base: p.Base, done: p.Done}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func (p *proc) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// apiClient calls webhookd's API with the bootstrap admin key.
type apiClient struct {
	base   string
	client *http.Client
}

func newAPI(base string) *apiClient {
	return &apiClient{base: base, client: &http.Client{Timeout: 30 * time.Second}}
}

// call sends in as JSON and decodes the answer into out (when 2xx).
func (a *apiClient) call(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, nil
}

// createWebhook creates a webhook of account at url and returns its id.
func (a *apiClient) createWebhook(t *testing.T, account, url string) string {
	t.Helper()
	var hook struct {
		ID string `json:"id"`
	}
	_, err := a.call(context.Background(), http.MethodPost, "/v1/webhooks", map[string]string{"account_id": account, "url": url}, &hook)
	require.NoError(t, err)
	return hook.ID
}

type eventIn struct {
	AccountID      string          `json:"account_id"`
	Type           string          `json:"type"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// enqueueBatch sends n events of account in one batch, with idempotency
// keys prefix-0, prefix-1, ..., retrying the same batch (so creating each
// event once) on network errors and 5xx for up to a minute. It returns the
// event ids.
func (a *apiClient) enqueueBatch(ctx context.Context, account, prefix string, n int) ([]string, error) {
	events := make([]eventIn, n)
	for i := range events {
		events[i] = eventIn{
			AccountID: account, Type: "drill.event", IdempotencyKey: fmt.Sprintf("%s-%d", prefix, i),
			Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"batch":%q,"pad":"%s"}`, i, prefix, strings.Repeat("x", 512))),
		}
	}
	var out struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	err := retry(ctx, time.Minute, 200*time.Millisecond, func() (int, error) {
		return a.call(ctx, http.MethodPost, "/v1/events/batch", map[string]any{"events": events}, &out)
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(out.Data))
	for i, d := range out.Data {
		ids[i] = d.ID
	}
	return ids, nil
}

// retry calls try until it succeeds, as a producer does: after a 5xx or
// a failed connection (status 0) it pauses and tries again, until within
// has passed or ctx ends; a 4xx is final. It returns try's last error.
func retry(ctx context.Context, within, pause time.Duration, try func() (status int, err error)) error {
	deadline := time.Now().Add(within)
	for {
		status, err := try()
		if err == nil || (status != 0 && status < 500) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(pause) // sleeps because: a producer's pause before retrying, the behaviour the drill models
	}
}

// keepFirst sets *first to err, under mu, unless it holds an error
// already: a drill reports its producers' first error.
func keepFirst(mu *sync.Mutex, first *error, err error) {
	mu.Lock()
	defer mu.Unlock()
	if *first == nil {
		*first = err
	}
}

// sleepUntil waits until at, a point of the drill's timeline (a producer's
// next send, a kill, a cut, the load's end); at once when at has passed.
// A drill's schedule is in time: nothing but time shows that its moment
// has come.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at)) // sleeps because: the drill's schedule
}

// receiver is a healthy webhook receiver on 127.0.0.2 that counts requests
// by Mono-Event-Id and answers 200.
type receiver struct {
	URL string

	mu     sync.Mutex
	counts map[string]int
	first  map[string]time.Time
	total  int
	last   time.Time
	server *http.Server
	delay  time.Duration
}

func newReceiver(t *testing.T, delay time.Duration) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err, "listening on 127.0.0.2 (on macOS: sudo ifconfig lo0 alias 127.0.0.2 up)")
	r := &receiver{URL: "http://" + ln.Addr().String() + "/hook", counts: map[string]int{}, first: map[string]time.Time{}, delay: delay}
	r.server = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.server.Serve(ln) //nolint:errcheck // closed at cleanup
	t.Cleanup(func() { r.server.Close() })
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	id := req.Header.Get("Mono-Event-Id")
	r.mu.Lock()
	r.counts[id]++
	if _, ok := r.first[id]; !ok {
		r.first[id] = time.Now()
	}
	r.total++
	r.last = time.Now()
	r.mu.Unlock()
	if r.delay > 0 {
		time.Sleep(r.delay) // sleeps because: a slow endpoint, as configured
	}
	w.WriteHeader(http.StatusOK)
}

// received returns how many requests arrived in all.
func (r *receiver) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// lastAt is when the last request arrived.
func (r *receiver) lastAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// tally compares what arrived with the accepted event ids: delivered is
// the accepted events received at least once, duplicated the extra
// requests for them, missing the accepted ids never received.
func (r *receiver) tally(accepted []string) (delivered, duplicated int, missing []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range accepted {
		switch n := r.counts[id]; n {
		case 0:
			missing = append(missing, id)
		default:
			delivered++
			duplicated += n - 1
		}
	}
	return delivered, duplicated, missing
}

// waitAll waits until every accepted id has arrived, polling; it returns
// false at the deadline.
func (r *receiver) waitAll(accepted []string, timeout time.Duration) bool {
	return testwait.Until(timeout, func() bool {
		_, _, missing := r.tally(accepted)
		return len(missing) == 0
	})
}

// pool connects to databaseURL with a small pool for the drill's checks.
func pool(t *testing.T, databaseURL string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(databaseURL)
	require.NoError(t, err)
	cfg.MaxConns = 2
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// percentile returns the p-th percentile (0..1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ms formats a duration in milliseconds with one decimal.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
}

// secs formats a duration in seconds with one decimal.
func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
