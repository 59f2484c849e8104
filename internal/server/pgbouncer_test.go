package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/pgbouncer"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testreceiver"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
	"github.com/mono/webhookd/signer"
)

// startBouncer starts a PgBouncer in transaction mode in front of the test
// PostgreSQL server, with a pool of poolSize server connections per
// database. Without pgbouncer installed the test fails under CI=true and is
// skipped otherwise, saying how to install it.
func startBouncer(t *testing.T, poolSize int) *pgbouncer.Bouncer {
	t.Helper()
	if _, err := pgbouncer.Binary(); errors.Is(err, pgbouncer.ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	b, err := pgbouncer.Start(t.Context(), &pgbouncer.Config{Upstream: testdb.BaseURL(), PoolMode: pgbouncer.ModeTransaction, PoolSize: poolSize})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Stop() })
	return b
}

// The end-to-end delivery through PgBouncer 1.18 in transaction mode
// (WEBHOOKD_DB_POOLER=transaction): the API and River (poll-only) on
// DATABASE_URL through the bouncer, two server connections for the
// process's ten, so consecutive transactions land on different server
// connections; the by-key pool on WEBHOOKD_DIRECT_DATABASE_URL. An event
// is accepted, fails once, is retried and succeeds, signed; a replay
// delivers it again; nothing on the database LISTENs, and no statement
// failed for a prepared statement or a setting it could not find.
func TestPgBouncerTransactionMode(t *testing.T) {
	t.Parallel()

	bouncer := startBouncer(t, 2)
	var direct string
	srv := testserver.Start(t, func(c *server.Config) {
		direct = c.DatabaseURL
		through, err := bouncer.Through(direct)
		require.NoError(t, err)
		c.DatabaseURL, c.DirectDatabaseURL, c.DBPooler = through, direct, server.PoolerTransaction
	})
	rcv := testreceiver.New(t, testreceiver.Sequence(http.StatusInternalServerError, http.StatusOK))

	call := func(method, path, body string, want int, out any) {
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
		require.Equal(t, want, resp.StatusCode, string(raw))
		if out != nil {
			require.NoError(t, json.Unmarshal(raw, out), string(raw))
		}
	}
	type delivery struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Attempts []struct {
			StatusCode *int `json:"status_code"`
		} `json:"attempts"`
	}
	waitState := func(id, state string, attempts int) delivery {
		t.Helper()
		var d delivery
		testwait.For(t, 15*time.Second, func() (bool, string) {
			d = delivery{}
			call(http.MethodGet, "/v1/deliveries/"+id, "", http.StatusOK, &d)
			return d.State == state && len(d.Attempts) == attempts,
				fmt.Sprintf("delivery %s is %s with %d attempts, want %s with %d", id, d.State, len(d.Attempts), state, attempts)
		})
		return d
	}

	var hook struct {
		Secret string `json:"secret"`
	}
	call(http.MethodPost, "/v1/webhooks", fmt.Sprintf(`{"account_id":"acct_bouncer","url":%q}`, rcv.URL+"/hook"), http.StatusCreated, &hook)
	var ev struct {
		ID         string     `json:"id"`
		Deliveries []delivery `json:"deliveries"`
	}
	call(http.MethodPost, "/v1/events", `{"account_id":"acct_bouncer","type":"payment.approved","data":{"amount":"12.50"}}`, http.StatusAccepted, &ev)
	require.Len(t, ev.Deliveries, 1)
	id := ev.Deliveries[0].ID

	d := waitState(id, "succeeded", 2)
	require.Equal(t, http.StatusInternalServerError, *d.Attempts[0].StatusCode)
	require.Equal(t, http.StatusOK, *d.Attempts[1].StatusCode)
	reqs := rcv.Wait(t, 2, 5*time.Second)
	for _, r := range reqs {
		require.Equal(t, ev.ID, r.Header.Get("Mono-Event-Id"))
		require.NoError(t, signer.Verify(r.Header.Get(signer.Header), r.Body, hook.Secret, time.Now(), 0))
	}

	call(http.MethodPost, "/v1/deliveries/"+id+"/replay", "", http.StatusAccepted, nil)
	waitState(id, "succeeded", 3)
	reqs = rcv.Wait(t, 3, 5*time.Second)
	require.Equal(t, string(reqs[0].Body), string(reqs[2].Body), "the replay sends the same body")

	// Directly on the database: nothing listens (River polls), and every
	// connection through the bouncer ran its statements unnamed.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, direct)
	require.NoError(t, err)
	defer conn.Close(context.WithoutCancel(ctx))
	var listening int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'`).Scan(&listening))
	require.Zero(t, listening, "a connection LISTENs through a transaction pooler")
}

// Without WEBHOOKD_DIRECT_DATABASE_URL a worker refuses a transaction
// pooler (its by-key pool needs a session); an API-only process accepts it.
func TestPgBouncerNeedsDirectURL(t *testing.T) {
	t.Parallel()

	cfg := &server.Config{DatabaseURL: "postgres://127.0.0.1:1/x", EncryptionKey: keyring.Generate(), DBPooler: server.PoolerTransaction}
	_, err := server.New(t.Context(), cfg, nil)
	require.ErrorContains(t, err, "WEBHOOKD_DB_POOLER=transaction needs WEBHOOKD_DIRECT_DATABASE_URL")

	cfg.API = true
	cfg.DBWait = 100 * time.Millisecond
	_, err = server.New(t.Context(), cfg, nil)
	require.ErrorContains(t, err, "not reachable", "past validation: it tried the database")
}
