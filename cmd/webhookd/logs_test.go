package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/signer"
)

// A full run through `webhookd serve` at debug in JSON: deliveries that
// fail once then succeed, a replay, one that dies, a secret revealed and an
// API key created. No secret, signature, API key, URL query string or
// payload appears in the log (not even in a connection error's text); every attempt has a line with its ids,
// attempt number, status and duration, and the dead delivery a warn line.
func TestServeLogsKeepSecrets(t *testing.T) {
	t.Parallel()

	const (
		token  = "SECRET_TOKEN_123"
		marker = "PAYLOAD_MARKER_7f3a9c"
	)
	// The good receiver fails each event's first request, then accepts.
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	good := testreceiver.New(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := !seen[r.Header.Get("Mono-Event-Id")]
		seen[r.Header.Get("Mono-Event-Id")] = true
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	bad := testreceiver.New(t, testreceiver.Status(http.StatusInternalServerError))
	// And a port nobody listens on: connection errors carry the URL.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	refusedURL := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	// Scale 0.0001: the whole ten-attempt schedule takes about 3s.
	p := startServe(t, serveEnv(testdb.NewURL(t), keyring.Generate(),
		"WEBHOOKD_LOG_FORMAT=json", "WEBHOOKD_RETRY_SCALE=0.0001", "WEBHOOKD_HTTP_TIMEOUT=2s"))

	type webhook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	createHook := func(account, url string) webhook {
		var hook webhook
		require.Equal(t, http.StatusCreated, p.call(t, http.MethodPost, "/v1/webhooks", map[string]string{"account_id": account, "url": url}, &hook))
		var revealed webhook
		require.Equal(t, http.StatusOK, p.call(t, http.MethodGet, "/v1/webhooks/"+hook.ID+"/secret", nil, &revealed))
		require.NotEmpty(t, revealed.Secret)
		hook.Secret = revealed.Secret
		return hook
	}
	goodHook := createHook("acct_logs", good.URL+"/hook?token="+token)
	badHook := createHook("acct_logs_dead", bad.URL+"/hook?token="+token)
	refusedHook := createHook("acct_logs_refused", refusedURL+"/hook?token="+token)

	send := func(account string) string {
		var ev struct {
			Deliveries []struct {
				ID string `json:"id"`
			} `json:"deliveries"`
		}
		require.Equal(t, http.StatusAccepted, p.call(t, http.MethodPost, "/v1/events", map[string]any{
			"account_id": account, "type": "bank_transfer_approved", "data": map[string]string{"note": marker},
		}, &ev))
		require.Len(t, ev.Deliveries, 1)
		return ev.Deliveries[0].ID
	}
	var goodIDs []string
	for range 3 {
		goodIDs = append(goodIDs, send("acct_logs"))
	}
	deadID := send("acct_logs_dead")
	refusedID := send("acct_logs_refused")

	procs := func() *process { return p }
	for _, id := range goodIDs {
		require.Equal(t, "succeeded", waitState(t, procs, id, 30*time.Second).State)
	}
	require.Equal(t, http.StatusAccepted, p.call(t, http.MethodPost, "/v1/deliveries/"+goodIDs[0]+"/replay", nil, nil))
	good.Wait(t, 7, 30*time.Second) // 3 × (500, 200) and the replay
	require.Equal(t, "succeeded", waitState(t, procs, goodIDs[0], 30*time.Second).State)
	require.Equal(t, "dead", waitState(t, procs, deadID, 60*time.Second).State)
	refused := waitState(t, procs, refusedID, 60*time.Second)
	require.Equal(t, "dead", refused.State)
	require.Len(t, refused.Attempts, 10)
	require.Equal(t, "connect", *refused.Attempts[0].ErrorKind)

	var created struct {
		Key string `json:"key"`
	}
	require.Equal(t, http.StatusCreated, p.call(t, http.MethodPost, "/v1/keys", map[string]string{"scope": "account", "account_id": "acct_logs"}, &created))
	require.NotEmpty(t, created.Key)
	// Use it, well and badly, so that authentication has its chance to log.
	for _, path := range []string{"/v1/webhooks?account_id=acct_logs", "/v1/keys"} {
		req, err := http.NewRequest(http.MethodGet, p.base+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+created.Key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("webhookd did not stop after SIGTERM")
	}
	log := p.out.String()

	// Nothing secret.
	forbidden := map[string]string{
		"good webhook secret":  goodHook.Secret,
		"dead webhook secret":  badHook.Secret,
		"third webhook secret": refusedHook.Secret,
		"bootstrap admin key":  adminKey,
		"created API key":      created.Key,
		"URL query string":     token,
		"payload":              marker,
		"webhook URL's query:": "?token=",
	}
	reqs := append(good.Requests(), bad.Requests()...)
	require.Len(t, reqs, 17)
	for i, r := range reqs {
		header := r.Header.Get(signer.Header)
		require.NotEmpty(t, header)
		for _, part := range strings.Split(header, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "v1="); ok {
				forbidden[fmt.Sprintf("signature v1 of request %d", i+1)] = v
			}
		}
	}
	for what, s := range forbidden {
		require.NotContains(t, log, s, "the log contains the %s", what)
	}

	// One line per attempt, with its fields; each dead delivery's last
	// attempt is its warn line.
	required := []string{"delivery_id", "event_id", "webhook_id", "account_id", "attempt", "status", "duration"}
	var debugAttempts, deadLines int
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), "not a JSON log line: %s", sc.Text())
		if line["logger"] != "worker" || line["attempt"] == nil || line["status"] == nil {
			continue
		}
		for _, f := range required {
			require.Contains(t, line, f, "attempt line without %s: %s", f, sc.Text())
		}
		switch line["level"] {
		case "debug":
			debugAttempts++
		case "warn":
			require.Equal(t, "delivery dead after its last attempt", line["msg"])
			require.EqualValues(t, 10, line["attempt"])
			switch line["delivery_id"] {
			case deadID:
				require.Equal(t, badHook.ID, line["webhook_id"])
				require.Equal(t, "acct_logs_dead", line["account_id"])
				require.EqualValues(t, 500, line["status"])
			case refusedID:
				require.Equal(t, refusedHook.ID, line["webhook_id"])
				require.Equal(t, "acct_logs_refused", line["account_id"])
				require.EqualValues(t, 0, line["status"])
			default:
				t.Fatalf("dead line for another delivery: %s", sc.Text())
			}
			deadLines++
		default:
			t.Fatalf("attempt line at %v: %s", line["level"], sc.Text())
		}
	}
	require.NoError(t, sc.Err())
	require.Equal(t, 2, deadLines, "one warn line for each dead delivery")
	require.Equal(t, len(reqs)+10-2, debugAttempts, "one debug line for every other attempt")
}
