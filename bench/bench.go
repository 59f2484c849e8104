// Package bench is `webhookd bench`: it starts what it needs (a receiver on
// 127.0.0.2, webhookd in process, a fresh database on DATABASE_URL's server
// or on a throwaway cluster), runs bounded scenarios and prints one table.
//
// Every scenario sends only to 127.0.0.2 and is bounded in count and time.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/ident"
	"github.com/mono/webhookd/internal/pgcluster"
	"github.com/mono/webhookd/keyring"
	"github.com/mono/webhookd/migrations"
	"github.com/mono/webhookd/server"
	"github.com/mono/webhookd/store"
)

// Config sizes the scenarios.
type Config struct {
	// DatabaseURL names the server to create the bench database on; empty
	// starts a throwaway cluster.
	DatabaseURL string
	// Backlog is the drain scenario's size. Defaults to 20,000.
	Backlog int
	// Rate is the sustained scenario's events per second. Defaults to 500.
	Rate int
	// Duration is how long the sustained scenario sends. Defaults to 10s.
	Duration time.Duration
	// Out receives the table. Required.
	Out io.Writer
	// MaxWorkers and DBMaxConns override the server's defaults when set.
	MaxWorkers int
	DBMaxConns int32
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
}

// Result is the outcome of one run.
type Result struct {
	DrainDeliveries int
	DrainElapsed    time.Duration
	SustainedSent   int
	SustainedRate   float64
	LatencyP50      time.Duration
	LatencyP99      time.Duration
	LatencyMax      time.Duration
}

// DrainPerSecond is the drain throughput.
func (r *Result) DrainPerSecond() float64 {
	return float64(r.DrainDeliveries) / r.DrainElapsed.Seconds()
}

// Run runs the scenarios and prints the table.
func Run(ctx context.Context, cfg *Config) (*Result, error) {
	if cfg.Backlog == 0 {
		cfg.Backlog = 20000
	}
	if cfg.Rate == 0 {
		cfg.Rate = 500
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	out := cfg.Out

	baseURL := cfg.DatabaseURL
	if baseURL == "" {
		fmt.Fprintln(out, "bench: no DATABASE_URL: starting a throwaway PostgreSQL cluster")
		cluster, err := pgcluster.Start(ctx, nil)
		if err != nil {
			return nil, err
		}
		defer cluster.Stop() //nolint:errcheck // best effort
		baseURL = cluster.URL()
	}
	dbURL, drop, err := createDatabase(ctx, baseURL)
	if err != nil {
		return nil, err
	}
	defer drop()

	recv := newReceiver()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		return nil, fmt.Errorf("error listening on 127.0.0.2: %w", err)
	}
	recvSrv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	go recvSrv.Serve(ln) //nolint:errcheck // closed below
	defer recvSrv.Close()
	receiverURL := "http://" + ln.Addr().String() + "/hook"

	res := &Result{}
	if err := drain(ctx, cfg, dbURL, receiverURL, recv, res); err != nil {
		return nil, fmt.Errorf("drain: %w", err)
	}
	if err := sustained(ctx, cfg, dbURL, receiverURL, recv, res); err != nil {
		return nil, fmt.Errorf("sustained: %w", err)
	}

	fmt.Fprintf(out, "\n| scenario | result |\n|---|---|\n")
	fmt.Fprintf(out, "| drain: %d pending deliveries to one receiver answering 200 | %.0f deliveries/s (%.2f s) |\n", res.DrainDeliveries, res.DrainPerSecond(), res.DrainElapsed.Seconds())
	fmt.Fprintf(out, "| sustained: POST /v1/events at %d/s for %s | achieved %.0f/s; enqueue→first attempt p50 %s, p99 %s, max %s |\n",
		cfg.Rate, cfg.Duration, res.SustainedRate, ms(res.LatencyP50), ms(res.LatencyP99), ms(res.LatencyMax))
	return res, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func newServer(ctx context.Context, cfg *Config, dbURL, key string) (*server.Server, error) {
	return server.New(ctx, &server.Config{
		MaxWorkers:           cfg.MaxWorkers,
		DBMaxConns:           cfg.DBMaxConns,
		DatabaseURL:          dbURL,
		Addr:                 "127.0.0.1:0",
		EncryptionKey:        key,
		BootstrapAdminKey:    benchAdminKey,
		AllowPrivateNetworks: true,
		ShutdownTimeout:      5 * time.Second,
	}, cfg.Logger)
}

const benchAdminKey = "bench-admin-key-0123456789"

// drain inserts a backlog with the workers stopped, then starts them and
// times until every delivery has succeeded.
func drain(ctx context.Context, cfg *Config, dbURL, receiverURL string, recv *receiver, res *Result) error {
	key := keyring.Generate()
	srv, err := newServer(ctx, cfg, dbURL, key)
	if err != nil {
		return err
	}
	keys, _ := keyring.Parse(key)
	if err := createWebhook(ctx, srv.Pool(), keys, "acct_drain", receiverURL); err != nil {
		return err
	}
	enqueuer, err := dispatcher.NewEnqueuer(srv.River(), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "bench: inserting a backlog of %d deliveries ...\n", cfg.Backlog)
	const perTx = 500
	for done := 0; done < cfg.Backlog; done += perTx {
		tx, err := srv.Pool().Begin(ctx)
		if err != nil {
			return err
		}
		for i := done; i < done+perTx && i < cfg.Backlog; i++ {
			if _, err := enqueuer.Enqueue(ctx, tx, &dispatcher.Event{AccountID: "acct_drain", Type: "bench.drain", Data: json.RawMessage(`{"i":` + fmt.Sprint(i) + `,"pad":"` + strings.Repeat("x", 900) + `"}`)}); err != nil {
				tx.Rollback(ctx) //nolint:errcheck
				return err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}

	before := recv.count.Load()
	start := time.Now()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer srv.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // best effort
	deadline := start.Add(5 * time.Minute)
	for {
		var pending int
		if err := srv.Pool().QueryRow(ctx, "SELECT count(*) FROM deliveries WHERE state = 'pending'").Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d deliveries still pending after 5 minutes", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.DrainElapsed = time.Since(start)
	res.DrainDeliveries = cfg.Backlog
	if got := recv.count.Load() - before; got < int64(cfg.Backlog) {
		return fmt.Errorf("receiver saw %d requests for %d deliveries", got, cfg.Backlog)
	}
	return nil
}

// sustained POSTs events through the API at a fixed rate and measures the
// time from just before each POST to its first arrival at the receiver.
func sustained(ctx context.Context, cfg *Config, dbURL, receiverURL string, recv *receiver, res *Result) error {
	key := keyring.Generate()
	srv, err := newServer(ctx, cfg, dbURL, key)
	if err != nil {
		return err
	}
	keys, _ := keyring.Parse(key)
	if err := createWebhook(ctx, srv.Pool(), keys, "acct_sustained", receiverURL+"?sustained=1"); err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer srv.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // best effort
	api := "http://" + srv.Addr() + "/v1/events"

	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	fmt.Fprintf(cfg.Out, "bench: sending %d events at %d/s ...\n", total, cfg.Rate)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	sentAt := make([]time.Time, total)
	eventIDs := make([]string, total)
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 64)
	interval := time.Second / time.Duration(cfg.Rate)
	start := time.Now()
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			body := `{"account_id":"acct_sustained","type":"bench.sustained","data":{"i":` + fmt.Sprint(i) + `}}`
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+benchAdminKey)
			req.Header.Set("Content-Type", "application/json")
			sentAt[i] = time.Now()
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			defer resp.Body.Close()
			var out struct {
				ID string `json:"id"`
			}
			if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&out) != nil {
				failed.Add(1)
				return
			}
			eventIDs[i] = out.ID
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d POSTs failed", n, total)
	}
	res.SustainedSent = total
	res.SustainedRate = float64(total) / elapsed.Seconds()

	deadline := time.Now().Add(time.Minute)
	var latencies []time.Duration
	for {
		latencies = latencies[:0]
		missing := 0
		for i, id := range eventIDs {
			at, ok := recv.firstArrival(id)
			if !ok {
				missing++
				continue
			}
			latencies = append(latencies, at.Sub(sentAt[i]))
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d events never arrived", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	res.LatencyP50 = percentile(latencies, 0.50)
	res.LatencyP99 = percentile(latencies, 0.99)
	res.LatencyMax = latencies[len(latencies)-1]
	return nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func createWebhook(ctx context.Context, pool *pgxpool.Pool, keys *keyring.Keyring, account, target string) error {
	id := ident.New(ident.Webhook)
	ct, keyID, err := keys.Encrypt([]byte("whsec_bench"), []byte(id))
	if err != nil {
		return err
	}
	return store.InsertWebhook(ctx, pool, &store.Webhook{ID: id, AccountID: account, URL: target, URLNormalized: target, SecretCiphertext: ct, SecretKeyID: keyID, CreatedAt: time.Now()})
}

// createDatabase makes a fresh, migrated database on the server at baseURL
// and returns its URL and a function that drops it.
func createDatabase(ctx context.Context, baseURL string) (string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "webhookd_bench_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return "", nil, fmt.Errorf("error connecting to %s: %w", redact(baseURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("error creating the bench database: %w", err)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	dbURL := u.String()
	drop := func() {
		c, err := pgx.Connect(context.Background(), baseURL)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		drop()
		return "", nil, err
	}
	defer pool.Close()
	if err := migrations.Migrate(ctx, pool); err != nil {
		drop()
		return "", nil, err
	}
	return dbURL, drop, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// receiver answers 200 and records each event's first arrival.
type receiver struct {
	count atomic.Int64
	first sync.Map // event id -> time.Time
}

func newReceiver() *receiver { return &receiver{} }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, req.Body)
	r.count.Add(1)
	r.first.LoadOrStore(req.Header.Get("Mono-Event-Id"), now)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) firstArrival(eventID string) (time.Time, bool) {
	v, ok := r.first.Load(eventID)
	if !ok {
		return time.Time{}, false
	}
	return v.(time.Time), true
}
