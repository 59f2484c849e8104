package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/pgcluster"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/migrations"
)

// DevRetryScaleDefault is dev's retry scale: the 8.44 h schedule in about
// five minutes, so a retry shows within a second.
const DevRetryScaleDefault = 0.01

// DevConfig configures `webhookd dev`.
type DevConfig struct {
	// DatabaseURL, when empty, makes dev start a throwaway PostgreSQL
	// cluster and remove it on exit.
	DatabaseURL string
	// Addr is the API's address. Defaults to 127.0.0.1:8080, or a free port
	// when that is taken.
	Addr string
	// RetryScale defaults to DevRetryScaleDefault.
	RetryScale float64
	// HTTPTimeout defaults to the server's.
	HTTPTimeout time.Duration
	// Out receives the demo's narration. Required.
	Out io.Writer
	// Ready, when set, is called once the demo event has been delivered,
	// with the API's base URL and admin key (used by tests).
	Ready func(baseURL, adminKey string)
}

// RunDev runs the engine with a demo until ctx is cancelled: a database
// (throwaway unless DatabaseURL is set), migrations, the server, a receiver
// that verifies every signature, a webhook, and one sample event.
func RunDev(ctx context.Context, cfg *DevConfig, logger *zap.Logger) error {
	out := cfg.Out
	databaseURL := cfg.DatabaseURL
	if databaseURL == "" {
		fmt.Fprintln(out, "dev: no DATABASE_URL: starting a throwaway PostgreSQL cluster ...")
		cluster, err := pgcluster.Start(ctx, nil)
		if err != nil {
			return fmt.Errorf("error starting a throwaway PostgreSQL (set DATABASE_URL to use your own): %w", err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				fmt.Fprintf(out, "dev: error removing the throwaway cluster: %v\n", err)
			} else {
				fmt.Fprintln(out, "dev: throwaway PostgreSQL cluster stopped and removed")
			}
		}()
		databaseURL = cluster.URL()
		fmt.Fprintf(out, "dev: PostgreSQL at %s\n", databaseURL)
	}

	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	res, err := migrations.MigrateWithResult(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "dev: migrated (River versions applied: %v; webhookd schema %d -> %d)\n", res.RiverVersions, res.FromVersion, res.ToVersion)

	addr := cfg.Addr
	if addr == "" {
		addr = portOrAny("127.0.0.1", "8080")
	}
	scale := cfg.RetryScale
	if scale == 0 {
		scale = DevRetryScaleDefault
	}
	adminKey := "whk_dev_" + randomHex(16)
	srv, err := server.New(ctx, &server.Config{
		DatabaseURL:          databaseURL,
		Addr:                 addr,
		MetricsAddr:          metricsAddr(addr),
		EncryptionKey:        keyring.Generate(),
		BootstrapAdminKey:    adminKey,
		RetryScale:           scale,
		AllowPrivateNetworks: true,
		HTTPTimeout:          cfg.HTTPTimeout,
		ShutdownTimeout:      5 * time.Second,
	}, logger)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer func() {
		if err := srv.Stop(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintf(out, "dev: error stopping: %v\n", err)
		}
	}()
	base := "http://" + srv.Addr()

	receiver := NewReceiver(out, "", 1)
	recvLn, err := listenLoopback()
	if err != nil {
		return err
	}
	recvSrv := &http.Server{Handler: receiver, ReadHeaderTimeout: 5 * time.Second}
	go recvSrv.Serve(recvLn) //nolint:errcheck // closed on exit
	defer recvSrv.Close()
	receiverURL := "http://" + recvLn.Addr().String() + "/webhooks"

	api := &apiClient{base: base, key: adminKey}
	var hook struct {
		ID     string `json:"id"`
		URL    string `json:"url"`
		Secret string `json:"secret"`
	}
	if err := api.do(ctx, http.MethodPost, "/v1/webhooks", map[string]string{"account_id": "acct_demo", "url": receiverURL}, &hook); err != nil {
		return fmt.Errorf("error creating the demo webhook: %w", err)
	}
	receiver.SetSecret(hook.Secret)
	fmt.Fprintf(out, "dev: webhook %s -> %s (its secret verifies every request at the receiver)\n", hook.ID, hook.URL)

	var event struct {
		ID         string `json:"id"`
		Deliveries []struct {
			ID string `json:"id"`
		} `json:"deliveries"`
	}
	sample := map[string]any{
		"account_id": "acct_demo",
		"type":       "bank_transfer_approved",
		"data":       json.RawMessage(`{"amount": 240000, "currency": "COP", "note": "café <&> ünïcode"}`),
	}
	if err := api.do(ctx, http.MethodPost, "/v1/events", sample, &event); err != nil {
		return fmt.Errorf("error sending the sample event: %w", err)
	}
	fmt.Fprintf(out, "dev: sample event %s enqueued; the receiver fails its first attempt on purpose\n", event.ID)

	if len(event.Deliveries) == 1 {
		if err := waitDelivered(ctx, api, event.Deliveries[0].ID, out); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, `
dev: webhookd is running. API: %[1]s   admin key: %[2]s
Send more events:

  curl -s -X POST %[1]s/v1/events -H 'Authorization: Bearer %[2]s' \
    -H 'Content-Type: application/json' \
    -d '{"account_id":"acct_demo","type":"card_charged","data":{"amount":160}}'

Look at a delivery:  curl -s %[1]s/v1/deliveries/<id> -H 'Authorization: Bearer %[2]s'

Open in a browser:
  Dashboard:      %[1]s/dashboard/   (sign in with the admin key above)
  River UI:       %[1]s/riverui/     (any user name; the admin key as the password)
  API reference:  %[1]s/docs
  Metrics:        %[3]s/metrics     (Prometheus text format, on a listener of its own)
Guides: README.md and docs/ (receivers, producers, operators, architecture, dashboard).
Ctrl-C stops everything.
`, base, adminKey, "http://"+srv.MetricsAddr())
	if cfg.Ready != nil {
		cfg.Ready(base, adminKey)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\ndev: stopping ...")
	return nil
}

func waitDelivered(ctx context.Context, api *apiClient, deliveryID string, out io.Writer) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var d struct {
			State    string `json:"state"`
			Attempts []struct {
				Number     int     `json:"number"`
				StatusCode *int    `json:"status_code"`
				ErrorKind  *string `json:"error_kind"`
				DurationMS float64 `json:"duration_ms"`
			} `json:"attempts"`
		}
		if err := api.do(ctx, http.MethodGet, "/v1/deliveries/"+deliveryID, nil, &d); err != nil {
			return err
		}
		if d.State != "pending" {
			fmt.Fprintf(out, "dev: delivery %s is %s after %d attempts:\n", deliveryID, d.State, len(d.Attempts))
			for _, a := range d.Attempts {
				status := "-"
				if a.StatusCode != nil {
					status = fmt.Sprint(*a.StatusCode)
				}
				kind := ""
				if a.ErrorKind != nil {
					kind = *a.ErrorKind
				}
				fmt.Fprintf(out, "       attempt %d: status %s %s (%.1f ms)\n", a.Number, status, kind, a.DurationMS)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "dev: delivery %s still pending after 30 s\n", deliveryID)
	return nil
}

// listenLoopback listens on 127.0.0.2 (a loopback address webhooks may use
// with private networks allowed; 127.0.0.1 is always refused), else [::1].
func listenLoopback() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err == nil {
		return ln, nil
	}
	ln, err6 := net.Listen("tcp", "[::1]:0")
	if err6 == nil {
		return ln, nil
	}
	return nil, fmt.Errorf("error listening for the demo receiver on 127.0.0.2 (%w) or [::1]: %w", err, err6)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

type apiClient struct {
	base, key string
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // keep the sample's <, & and > as they are
		if err := enc.Encode(in); err != nil {
			return err
		}
		body = &buf
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return errors.New(resp.Status + ": " + string(b))
	}
	return json.Unmarshal(b, out)
}

// metricsAddr is dev's metrics listener: port 9464 beside the API's host
// when free, else any free port there.
func metricsAddr(apiAddr string) string {
	host, _, err := net.SplitHostPort(apiAddr)
	if err != nil {
		host = "127.0.0.1"
	}
	return portOrAny(host, "9464")
}

// portOrAny is host:port when that port is free at the moment, else
// host:0 (any free port).
func portOrAny(host, port string) string {
	addr := net.JoinHostPort(host, port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return net.JoinHostPort(host, "0")
	}
	ln.Close()
	return addr
}
