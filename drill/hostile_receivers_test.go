package drill

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testwait"
)

// hostile is one misbehaving receiver.
type hostile struct {
	name string
	// succeeds is whether its status line is a 2xx that arrives in time:
	// the status decides, whatever the body does afterwards.
	succeeds bool
	url      string
}

// drillHostileReceivers points webhooks at receivers that misbehave in
// every way we know, beside a healthy one. Each hostile delivery must end
// as recorded attempts, none outliving the job timeout (their durations
// against the HTTP timeout are reported), and finish succeeded when its
// status line is a timely 2xx, dead otherwise; the healthy receiver's
// throughput beside them is measured against a run without them.
func drillHostileReceivers(t *testing.T) {
	var (
		perHostile  = pick(2, 20)
		healthy     = pick(300, 10000)
		retryScale  = pick("0.0001", "0.001") // ten attempts in ~3 s / ~30 s plus their durations
		httpTimeout = 2 * time.Second
		finishLimit = 3 * time.Minute
	)

	dbURL := testdb.NewURL(t)
	db := pool(t, dbURL)
	env := serveEnv(dbURL, encryptionKey(t), "WEBHOOKD_HTTP_TIMEOUT="+httpTimeout.String(), "WEBHOOKD_RETRY_SCALE="+retryScale)
	server := startProc(t, "serve", env, "serve")
	api := newAPI(server.base)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	hostiles := startHostiles(t, ctx, httpTimeout)

	recv := newReceiver(t, 0)
	api.createWebhook(t, "acct_healthy", recv.URL)
	for _, h := range hostiles {
		api.createWebhook(t, hostileAccount(h.name), h.url)
	}

	// drain enqueues n healthy events and returns the time until every one
	// has arrived.
	var accepted, healthyIDs []string
	drain := func(prefix string) (time.Duration, bool) {
		began := time.Now()
		var ids []string
		for i := 0; i < healthy; i += 1000 {
			batch, err := api.enqueueBatch(ctx, "acct_healthy", fmt.Sprintf("%s-%d", prefix, i), min(1000, healthy-i))
			require.NoError(t, err)
			ids = append(ids, batch...)
		}
		accepted = append(accepted, ids...)
		healthyIDs = append(healthyIDs, ids...)
		ok := recv.waitAll(ids, finishLimit)
		return time.Since(began), ok
	}

	alone, ok := drain("alone")
	require.True(t, ok, "healthy events lost with no hostile receiver")

	hostileIDs := map[string][]string{}
	for _, h := range hostiles {
		ids, err := api.enqueueBatch(ctx, hostileAccount(h.name), "h", perHostile)
		require.NoError(t, err)
		hostileIDs[h.name] = ids
		accepted = append(accepted, ids...)
	}
	// The hostile attempts are under way: every unfinished delivery job
	// (all of them hostile now) has been taken by the worker once.
	testwait.For(t, finishLimit, func() (bool, string) {
		n := queryInt(t, db, `SELECT count(*) FROM river_job WHERE kind = 'webhookd.delivery' AND attempted_at IS NULL AND finalized_at IS NULL`)
		return n == 0, fmt.Sprintf("%d hostile delivery jobs not yet taken", n)
	})
	beside, ok := drain("beside")
	require.True(t, ok, "healthy events lost beside the hostile receivers")

	// Every hostile delivery finishes: succeeded or dead, never stuck.
	waitNoPending(t, db, finishLimit)

	res := &Result{
		order:  3,
		Drill:  "Hostile receivers",
		Load:   fmt.Sprintf("%d events to a healthy receiver alone, then %d beside %d events to each hostile receiver; HTTP timeout %s, retry schedule ×%s", healthy, healthy, perHostile, httpTimeout, retryScale),
		Faults: "—",
		BadInputs: "headers 1 byte/s; 200 then an endless body; a 10 MB body; reset before the status line; invalid HTTP; a redirect to itself; " +
			"a self-signed TLS certificate; 200 after the timeout",
		Rerun: "go test -count=1 -v -run TestDrill/HostileReceivers ./drill -args -drill.full",
	}
	delivered, duplicated, missing := recv.tally(healthyIDs)
	res.Accepted, res.Delivered, res.Duplicated = len(accepted), delivered, duplicated
	res.Lost = len(missing)
	res.add("healthy throughput alone / beside the hostile receivers", "%.0f / %.0f events/s (ratio %.2f)",
		float64(healthy)/alone.Seconds(), float64(healthy)/beside.Seconds(), alone.Seconds()/beside.Seconds())

	for _, h := range hostiles {
		var (
			states          = map[string]int{}
			attempts        int
			longest         time.Duration
			kinds, statuses []string
		)
		rows, err := db.Query(ctx, `SELECT d.state, count(a.id), coalesce(max(a.duration_us), 0),
		           coalesce(string_agg(DISTINCT a.error_kind, ','), ''), coalesce(string_agg(DISTINCT a.status_code::text, ','), '')
		      FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN attempt_log a ON a.delivery_id = d.id
		     WHERE e.id = ANY($1) GROUP BY d.id, d.state`, hostileIDs[h.name])
		require.NoError(t, err)
		for rows.Next() {
			var (
				state, kind, status string
				n                   int
				us                  int64
			)
			require.NoError(t, rows.Scan(&state, &n, &us, &kind, &status))
			states[state]++
			attempts += n
			longest = max(longest, time.Duration(us)*time.Microsecond)
			kinds, statuses = appendNew(kinds, kind), appendNew(statuses, status)
		}
		require.NoError(t, rows.Err())

		want := "dead"
		if h.succeeds {
			want = "succeeded"
			res.Delivered += states["succeeded"]
		}
		res.add(h.name, "%d %s of %d; %d attempts, longest %s; error kinds [%s], statuses [%s]",
			states[want], want, perHostile, attempts, ms(longest), strings.Join(kinds, " "), strings.Join(statuses, " "))

		require.Equal(t, perHostile, states[want], "%s: deliveries %v, want all %s", h.name, states, want)
		// Past the job timeout (HTTP timeout + 10 s) an attempt is wedged.
		require.LessOrEqual(t, longest, httpTimeout+10*time.Second, "%s: an attempt outlived the job timeout", h.name)
		if !h.succeeds {
			require.Equal(t, 10*perHostile, attempts, "%s: a dead delivery has ten attempts", h.name)
		}
	}
	record(t, res)
	require.Empty(t, missing)
	require.True(t, server.alive())
}

// hostileAccount is the account whose one webhook is the hostile receiver.
func hostileAccount(name string) string {
	return "acct_h_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(name))
}

func appendNew(list []string, s string) []string {
	for _, v := range strings.Split(s, ",") {
		if v != "" && !strings.Contains(","+strings.Join(list, ",")+",", ","+v+",") {
			list = append(list, v)
		}
	}
	return list
}

// startHostiles starts every hostile receiver on 127.0.0.2.
func startHostiles(t *testing.T, ctx context.Context, timeout time.Duration) []hostile {
	t.Helper()
	quiet := log.New(io.Discard, "", 0)
	serve := func(h http.Handler) string {
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: h, ErrorLog: quiet}
		go srv.Serve(ln) //nolint:errcheck // closed at cleanup
		t.Cleanup(func() { srv.Close() })
		return "http://" + ln.Addr().String() + "/hook"
	}

	endless := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat("endless ", 128))
		for stop := time.Now().Add(time.Minute); time.Now().Before(stop) && r.Context().Err() == nil; {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond) // sleeps because: an endless body trickles
		}
	}))
	huge := serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(10<<20))
		w.WriteHeader(http.StatusOK)
		mb := make([]byte, 1<<20)
		for range 10 {
			if _, err := w.Write(mb); err != nil {
				return
			}
		}
	}))
	var redirect string
	redirect = serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, redirect, http.StatusFound)
	}))
	late := serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(timeout + 500*time.Millisecond) // sleeps because: a slow endpoint; answers whether or not anyone still listens
		w.WriteHeader(http.StatusOK)
	}))

	tlsLn, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	tlsSrv.Listener.Close()
	tlsSrv.Listener = tlsLn
	tlsSrv.Config.ErrorLog = quiet
	tlsSrv.StartTLS() // httptest's own certificate, which no client trusts
	t.Cleanup(tlsSrv.Close)

	// Raw TCP receivers read the request and then misbehave.
	raw := func(misbehave func(c net.Conn)) string {
		return "http://" + testreceiver.Raw(t, func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if ctx.Err() == nil {
				misbehave(c)
			}
		}) + "/hook"
	}
	slowHeaders := raw(func(c net.Conn) {
		for _, b := range []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	})
	reset := raw(func(c net.Conn) {
		_ = c.(*net.TCPConn).SetLinger(0) // close with RST
	})
	invalid := raw(func(c net.Conn) {
		_, _ = c.Write([]byte("SURPRISE!\x00\xff not http at all\r\n\r\n"))
	})

	return []hostile{
		{name: "headers 1 byte/s", url: slowHeaders},
		{name: "200 then an endless body", url: endless, succeeds: true},
		{name: "10 MB body", url: huge, succeeds: true},
		{name: "reset before the status line", url: reset},
		{name: "invalid HTTP", url: invalid},
		{name: "redirect loop", url: redirect},
		{name: "bad TLS certificate", url: tlsSrv.URL + "/hook"},
		{name: "200 after the timeout", url: late},
	}
}
