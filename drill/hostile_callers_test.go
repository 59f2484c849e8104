package drill

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// badBodies are the malformed and invalid POST /v1/events bodies of the
// storm, with the status class each must get (never a 2xx). Every one names
// acct_bad where it names an account, so anything stored for acct_bad is
// an invalid input that got in.
var badBodies = []struct {
	name string
	body string
}{
	{"truncated", `{"account_id":"acct_bad","type":"a","data":{"x":`},
	{"not JSON", `this is not json`},
	{"trailing data", `{"account_id":"acct_bad","type":"a","data":{"x":1}}}`},
	{"array", `[1,2,3]`},
	{"null", `null`},
	{"wrong type", `{"account_id":123,"type":"a","data":{}}`},
	{"unknown field", `{"account_id":"acct_bad","type":"a","data":{},"extra":true}`},
	{"bad event type", `{"account_id":"acct_bad","type":"Bad Type!","data":{}}`},
	{"bad account", `{"account_id":"acct bad/..","type":"a","data":{}}`},
	{"data not an object", `{"account_id":"acct_bad","type":"a","data":[1]}`},
	{"data missing", `{"account_id":"acct_bad","type":"a"}`},
	{"control character key", `{"account_id":"acct_bad","type":"a","data":{},"idempotency_key":"a\u0001b"}`},
	{"too deep", `{"account_id":"acct_bad","type":"a","data":{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`},
	{"invalid UTF-8 type", "{\"account_id\":\"acct_bad\",\"type\":\"a\xff\",\"data\":{}}"},
}

var typeRE = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,99}$`)

// drillHostileCallers storms an API process with concurrent clients
// sending malformed JSON, invalid events, oversized bodies and bodies
// that trickle in a byte at a time, among valid events, while a prober
// measures a health check and a small enqueue. The API must keep
// answering, every bad input must be refused, and exactly the valid
// events must be stored.
func drillHostileCallers(t *testing.T) {
	var (
		clients  = pick(100, 1000)
		stormFor = pick(5*time.Second, 30*time.Second)
	)

	dbURL := testdb.NewURL(t)
	db := pool(t, dbURL)
	server := startProc(t, "api", serveEnv(dbURL, encryptionKey(t)), "serve", "--api")
	api := newAPI(server.base)
	api.createWebhook(t, "acct_probe", "http://127.0.0.2:9/probe")
	api.createWebhook(t, "acct_storm", "http://127.0.0.2:9/storm")

	ctx, cancel := context.WithTimeout(context.Background(), stormFor+3*time.Minute)
	defer cancel()

	// The prober: a health check and a small enqueue, each every 50 ms on
	// connections of its own, side by side.
	type probes struct {
		mu              sync.Mutex
		health, enqueue []time.Duration
		failed          int
		ids, keys       []string
	}
	probe := func(d time.Duration, prefix string) *probes {
		p := &probes{}
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: time.Minute}
			tick := time.NewTicker(50 * time.Millisecond) // a health probe every 50 ms
			defer tick.Stop()
			for ; time.Now().Before(stop); <-tick.C {
				began := time.Now()
				resp, err := client.Get(server.base + "/healthz")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				p.mu.Lock()
				if err != nil || resp.StatusCode != http.StatusOK {
					p.failed++
				} else {
					p.health = append(p.health, time.Since(began))
				}
				p.mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			pc := &apiClient{base: server.base, client: &http.Client{Timeout: time.Minute}}
			tick := time.NewTicker(50 * time.Millisecond) // an enqueue probe every 50 ms
			defer tick.Stop()
			for i := 0; time.Now().Before(stop); i, _ = i+1, <-tick.C {
				began := time.Now()
				var res struct {
					ID string `json:"id"`
				}
				ev := eventIn{AccountID: "acct_probe", Type: "drill.probe", IdempotencyKey: fmt.Sprintf("%s-%d", prefix, i), Data: json.RawMessage(`{"probe":true}`)}
				_, err := pc.call(ctx, http.MethodPost, "/v1/events", ev, &res)
				p.mu.Lock()
				p.keys = append(p.keys, ev.IdempotencyKey)
				if err != nil {
					p.failed++
				} else {
					p.enqueue = append(p.enqueue, time.Since(began))
					p.ids = append(p.ids, res.ID)
				}
				p.mu.Unlock()
			}
		}()
		wg.Wait()
		return p
	}

	calm := probe(2*time.Second, "calm")
	rssCalm := server.peakRSS()

	// The storm.
	var (
		mu           sync.Mutex
		stormIDs     []string
		sentKeys     []string // every valid event's idempotency key, answered or not
		badTurn      atomic.Int64
		statuses     = map[string]map[int]int{} // kind → status → count
		wrong        []string                   // bad inputs that were not refused
		netErrs      atomic.Int64
		requests     atomic.Int64
		slowRefused  atomic.Int64
		oversizeBody = []byte(`{"account_id":"acct_bad","type":"a","data":{"pad":"` + strings.Repeat("x", 300<<10) + `"}}`)
		batchBody    = oversizedBatch()
	)
	count := func(kind string, status int) {
		mu.Lock()
		if statuses[kind] == nil {
			statuses[kind] = map[int]int{}
		}
		statuses[kind][status]++
		mu.Unlock()
	}
	stormDone := time.Now().Add(stormFor)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			defer client.CloseIdleConnections()
			post := func(path, contentType string, body io.Reader) (int, []byte, error) {
				requests.Add(1)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, server.base+path, body)
				req.Header.Set("Authorization", "Bearer "+adminKey)
				req.Header.Set("Content-Type", contentType)
				resp, err := client.Do(req)
				if err != nil {
					netErrs.Add(1)
					return 0, nil, err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				return resp.StatusCode, b, nil
			}
			for n := 0; time.Now().Before(stormDone) && ctx.Err() == nil; n++ {
				switch (c + n) % 10 {
				case 0, 1, 2, 3: // malformed and invalid JSON
					bad := badBodies[int(badTurn.Add(1))%len(badBodies)]
					status, _, err := post("/v1/events", "application/json", strings.NewReader(bad.body))
					if err == nil {
						count("bad: "+bad.name, status)
						if status < 400 || (status >= 500 && status != http.StatusServiceUnavailable) { // 503: the body budget is full, nothing read
							mu.Lock()
							wrong = append(wrong, fmt.Sprintf("%s answered %d", bad.name, status))
							mu.Unlock()
						}
					}
				case 4: // random bytes, and a content type that is not JSON
					junk := make([]byte, 256)
					_, _ = rand.Read(junk)
					if status, _, err := post("/v1/events", "application/json", bytes.NewReader(junk)); err == nil {
						count("random bytes", status)
						if status < 400 || (status >= 500 && status != http.StatusServiceUnavailable) { // 503: the body budget is full, nothing read
							mu.Lock()
							wrong = append(wrong, fmt.Sprintf("random bytes answered %d", status))
							mu.Unlock()
						}
					}
					if status, _, err := post("/v1/events", "text/plain", strings.NewReader(`{"account_id":"acct_bad","type":"a","data":{}}`)); err == nil {
						count("text/plain", status)
					}
				case 5: // oversized: 300 KiB event, 5 MiB batch of valid-looking events
					if status, _, err := post("/v1/events", "application/json", bytes.NewReader(oversizeBody)); err == nil {
						count("300 KiB event", status)
					}
					if n%3 == 0 {
						if status, _, err := post("/v1/events/batch", "application/json", bytes.NewReader(batchBody)); err == nil {
							count("5 MiB batch", status)
							if status != http.StatusRequestEntityTooLarge && status != http.StatusBadRequest && status != http.StatusServiceUnavailable {
								mu.Lock()
								wrong = append(wrong, fmt.Sprintf("5 MiB batch answered %d", status))
								mu.Unlock()
							}
						}
					}
				case 6: // a body that trickles in a byte every 200 ms
					requests.Add(1)
					if slowBody(server.base, stormDone.Add(5*time.Second)) {
						slowRefused.Add(1)
					}
				default: // valid events
					ev := eventIn{AccountID: "acct_storm", Type: "drill.storm", IdempotencyKey: fmt.Sprintf("storm-%d-%d", c, n), Data: json.RawMessage(fmt.Sprintf(`{"client":%d,"n":%d}`, c, n))}
					b, _ := json.Marshal(ev)
					mu.Lock()
					sentKeys = append(sentKeys, ev.IdempotencyKey)
					mu.Unlock()
					status, body, err := post("/v1/events", "application/json", bytes.NewReader(b))
					if err != nil {
						continue
					}
					count("valid event", status)
					if status == http.StatusAccepted {
						var res struct {
							ID string `json:"id"`
						}
						if json.Unmarshal(body, &res) == nil {
							mu.Lock()
							stormIDs = append(stormIDs, res.ID)
							mu.Unlock()
						}
					}
				}
			}
		}()
	}
	storm := probe(stormFor, "storm")
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Minute):
		t.Fatal("storm clients still blocked 2 minutes after the storm: the API is wedged")
	}
	rssPeak := server.peakRSS()
	after := probe(time.Second, "after")

	res := &Result{
		order:     4,
		Drill:     "Hostile callers",
		Load:      fmt.Sprintf("%d concurrent API clients for %s (%d requests), a prober every 50 ms", clients, stormFor, requests.Load()),
		Faults:    "—",
		BadInputs: fmt.Sprintf("malformed JSON (%d kinds), random bytes, text/plain, 300 KiB events, 5 MiB batches, bodies at 5 bytes/s", len(badBodies)),
		Rerun:     "go test -count=1 -v -run TestDrill/HostileCallers ./drill -args -drill.full",
	}
	res.add("healthz p50 / p99 / max: calm", "%s / %s / %s", ms(percentile(calm.health, .5)), ms(percentile(calm.health, .99)), ms(percentile(calm.health, 1)))
	res.add("healthz p50 / p99 / max: storm", "%s / %s / %s (%d probes)", ms(percentile(storm.health, .5)), ms(percentile(storm.health, .99)), ms(percentile(storm.health, 1)), len(storm.health))
	res.add("small enqueue p50 / p99 / max: calm", "%s / %s / %s", ms(percentile(calm.enqueue, .5)), ms(percentile(calm.enqueue, .99)), ms(percentile(calm.enqueue, 1)))
	res.add("small enqueue p50 / p99 / max: storm", "%s / %s / %s (%d probes)", ms(percentile(storm.enqueue, .5)), ms(percentile(storm.enqueue, .99)), ms(percentile(storm.enqueue, 1)), len(storm.enqueue))
	res.add("probe failures calm / storm / after", "%d / %d / %d", calm.failed, storm.failed, after.failed)
	res.add("API RSS: peak before the storm / peak overall", "%.0f MiB / %.0f MiB", float64(rssCalm)/(1<<20), float64(rssPeak)/(1<<20))
	res.add("client-side network errors (server closed an oversized or slow upload, timeouts)", "%d", netErrs.Load())
	res.add("slow bodies cut off by the server", "%d", slowRefused.Load())
	mu.Lock()
	for _, kind := range slices.Sorted(maps.Keys(statuses)) {
		res.add("answers: "+kind, "%v", statuses[kind])
	}
	mu.Unlock()

	// Every accepted event is stored, and nothing else but valid events
	// whose answer the client never saw (it gave up or the connection
	// broke after the commit), each intact.
	var probeIDs, probeKeys []string
	for _, p := range []*probes{calm, storm, after} {
		probeIDs, probeKeys = append(probeIDs, p.ids...), append(probeKeys, p.keys...)
	}
	acceptedIDs := append(append([]string(nil), stormIDs...), probeIDs...)
	res.Accepted = len(acceptedIDs)
	stored := queryInt(t, db, `SELECT count(*) FROM events WHERE id = ANY($1)`, acceptedIDs)
	res.Delivered = 0 // no worker runs: the drill is about the API
	res.Lost = len(acceptedIDs) - stored
	unanswered := queryInt(t, db, `SELECT count(*) FROM events WHERE NOT (id = ANY($1))`, acceptedIDs)
	strays := queryInt(t, db, `SELECT count(*) FROM events WHERE NOT (id = ANY($1)) AND NOT (idempotency_key = ANY($2))`, acceptedIDs, append(append([]string(nil), sentKeys...), probeKeys...))
	res.add("valid events accepted (storm + probes), stored", "%d + %d, %d stored", len(stormIDs), len(probeIDs), stored)
	res.add("valid events stored whose answer the client never saw", "%d", unanswered)
	record(t, res)

	require.Empty(t, wrong, "bad inputs were not refused")
	require.Zero(t, res.Lost, "accepted events missing from the database")
	require.Zero(t, strays, "events stored that no client sent as valid")
	require.Zero(t, queryInt(t, db, `SELECT count(*) FROM events WHERE account_id NOT IN ('acct_storm', 'acct_probe')`))
	rows, err := db.Query(ctx, `SELECT type, body FROM events`)
	require.NoError(t, err)
	for rows.Next() {
		var (
			typ  string
			body []byte
		)
		require.NoError(t, rows.Scan(&typ, &body))
		require.True(t, typeRE.MatchString(typ), "stored type %q", typ)
		require.True(t, json.Valid(body), "stored body is not JSON: %q", body)
	}
	require.NoError(t, rows.Err())
	require.True(t, server.alive(), "the API process died")
	require.NotEmpty(t, after.health, "the API does not answer after the storm")
}

// oversizedBatch is a 5 MiB batch of valid-looking events: more than the
// 4 MiB limit, so it must be refused after at most 4 MiB is read.
func oversizedBatch() []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := 0; b.Len() < 5<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"account_id":"acct_bad","type":"a","data":{"pad":"%s"}}`, strings.Repeat("p", 1000))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// slowBody sends a valid-looking event whose 1,000-byte body trickles in
// a byte every 200 ms, until the server answers or closes the connection
// or giveUp passes. It reports whether the server cut it off.
func slowBody(base string, giveUp time.Time) bool {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(giveUp)
	fmt.Fprintf(c, "POST /v1/events HTTP/1.1\r\nHost: drill\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", adminKey)
	for time.Now().Before(giveUp) {
		if _, err := c.Write([]byte{' '}); err != nil {
			return true
		}
		time.Sleep(200 * time.Millisecond) // sleeps because: the hostile caller trickles a byte every 200 ms
	}
	return false
}
