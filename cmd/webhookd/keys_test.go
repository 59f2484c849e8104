package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/admin"
	"github.com/mono/webhookd/apikey"
	"github.com/mono/webhookd/ident"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/keyring"
	"github.com/mono/webhookd/server"
)

// keys runs `webhookd keys args...` in process on databaseURL and returns
// its output.
func keys(t *testing.T, databaseURL string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	args = append(args[:1:1], append([]string{"-database-url", databaseURL}, args[1:]...)...)
	err := runKeys(context.Background(), args, &out)
	return out.String(), err
}

func TestKeysCommand(t *testing.T) {
	t.Parallel()

	dbURL := testdb.NewURL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	countKeys := func(t *testing.T) (all, revoked int) {
		t.Helper()
		require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*), count(revoked_at) FROM api_keys").Scan(&all, &revoked))
		return all, revoked
	}

	// The first key, made on the database before any server runs.
	out, err := keys(t, dbURL, "create", "-scope", "admin", "-description", "first SRE key")
	require.NoError(t, err)
	adminRaw, _, _ := strings.Cut(out, "\n")
	require.True(t, apikey.LooksLikeKey(adminRaw), out)
	require.Contains(t, out, "scope admin, every account")
	require.Contains(t, out, "shown only this once")
	var (
		adminID string
		hash    []byte
	)
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT id, hash FROM api_keys WHERE scope = 'admin'").Scan(&adminID, &hash))
	sum := sha256.Sum256([]byte(adminRaw))
	require.Equal(t, sum[:], hash)
	require.Contains(t, out, adminID)

	// --json (double dashes work too), an account key.
	out, err = keys(t, dbURL, "create", "--scope", "account", "--account", "acct_cli", "--json")
	require.NoError(t, err)
	var account admin.KeyView
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&account), out)
	require.True(t, apikey.LooksLikeKey(account.Key))
	require.True(t, ident.Valid(ident.Key, account.ID))
	require.Equal(t, account.Key[:apikey.DisplayLen], account.Prefix)
	require.Equal(t, "account", account.Scope)
	require.Equal(t, "acct_cli", *account.AccountID)

	out, err = keys(t, dbURL, "create", "-scope", "events:write")
	require.NoError(t, err)
	eventsRaw, _, _ := strings.Cut(out, "\n")

	// list: a table, never a key.
	out, err = keys(t, dbURL, "list")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	require.Regexp(t, `^ID\s+PREFIX\s+SCOPE\s+ACCOUNT\s+CREATED\s+LAST USED\s+REVOKED\s+DESCRIPTION$`, lines[0])
	require.Contains(t, lines[1], "events:write")
	require.Contains(t, lines[2], account.ID)
	require.Contains(t, lines[2], "acct_cli")
	require.Contains(t, lines[3], adminID)
	require.Contains(t, lines[3], "first SRE key")
	for _, raw := range []string{adminRaw, account.Key, eventsRaw} {
		require.NotContains(t, out, raw)
		require.NotContains(t, out, raw[apikey.DisplayLen:])
	}
	out, err = keys(t, dbURL, "list", "-account", "acct_cli", "-json")
	require.NoError(t, err)
	var listed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed, 1)
	require.Equal(t, account.ID, listed[0]["id"])
	require.NotContains(t, listed[0], "key")
	require.NotContains(t, listed[0], "hash")

	// The keys work on a server; revoked on the database, one gets 401.
	srv, err := server.New(context.Background(), &server.Config{
		DatabaseURL: dbURL, Addr: "127.0.0.1:0", EncryptionKey: keyring.Generate(), ShutdownTimeout: time.Second,
		DBMaxConns: 6, MaxWorkers: 10,
	}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })
	get := func(path, key string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get("/v1/keys", adminRaw))
	require.Equal(t, http.StatusOK, get("/v1/webhooks", account.Key))

	out, err = keys(t, dbURL, "revoke", account.ID)
	require.NoError(t, err)
	require.Contains(t, out, "Revoked API key "+account.ID)
	require.Equal(t, http.StatusUnauthorized, get("/v1/webhooks", account.Key))
	require.Equal(t, http.StatusOK, get("/v1/keys", adminRaw))
	out, err = keys(t, dbURL, "list", "-account", "acct_cli", "-json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.NotNil(t, listed[0]["revoked_at"])
	require.NotNil(t, listed[0]["last_used_at"])

	// Bad flags and arguments: a clear error, nothing changed.
	all, revoked := countKeys(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoScope", []string{"create"}, "-scope: scope is required"},
		{"UnknownScope", []string{"create", "-scope", "root"}, `-scope: scope must be admin, account or events:write, not "root"`},
		{"AccountWithoutAccount", []string{"create", "-scope", "account"}, "-account: an account key is bound to one account"},
		{"AdminWithAccount", []string{"create", "-scope", "admin", "-account", "acct_cli"}, "-account: an admin key acts on every account"},
		{"BadAccount", []string{"create", "-scope", "events:write", "-account", "acct cli"}, "-account: account_id must be 1 to 64 characters"},
		{"LongDescription", []string{"create", "-scope", "admin", "-description", strings.Repeat("d", 501)}, "-description: description must be at most 500 characters"},
		{"UnknownFlag", []string{"create", "-scpoe", "admin"}, "flag provided but not defined: -scpoe"},
		{"ExtraArgument", []string{"create", "-scope", "admin", "extra"}, `unexpected argument "extra"`},
		{"ListBadAccount", []string{"list", "-account", "a/b"}, "-account: invalid account_id"},
		{"RevokeNoID", []string{"revoke"}, "exactly one key id is required"},
		{"RevokeTwoIDs", []string{"revoke", account.ID, adminID}, "exactly one key id is required"},
		{"RevokeMalformed", []string{"revoke", "key_123"}, `"key_123" is not a key id`},
		{"RevokeUnknown", []string{"revoke", ident.New(ident.Key)}, "no API key key_"},
		{"RevokeAgain", []string{"revoke", account.ID}, "was already revoked at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keys(t, dbURL, tc.args...)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			gotAll, gotRevoked := countKeys(t)
			require.Equal(t, all, gotAll)
			require.Equal(t, revoked, gotRevoked)
		})
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoSubcommand", nil, "keys: a subcommand is required"},
		{"UnknownSubcommand", []string{"rotate"}, `keys: unknown subcommand "rotate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runKeys(context.Background(), tc.args, &bytes.Buffer{})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "webhookd keys create -scope")
		})
	}
}

func TestKeysCommandDatabase(t *testing.T) {
	t.Parallel()

	// No DATABASE_URL.
	err := runKeys(context.Background(), []string{"create", "-scope", "admin", "-database-url", ""}, &bytes.Buffer{})
	require.ErrorContains(t, err, "DATABASE_URL (-database-url) is required")

	// A database without our schema.
	dbURL := testdb.NewURL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), "DROP TABLE webhookd_schema_version")
	require.NoError(t, err)
	pool.Close()
	_, err = keys(t, dbURL, "create", "-scope", "admin")
	require.ErrorContains(t, err, "the database is not ready")
	require.ErrorContains(t, err, "run `webhookd migrate`")

	// Nothing listening.
	_, err = keys(t, "postgres://postgres@127.0.0.1:1/none?connect_timeout=2", "list")
	require.ErrorContains(t, err, "DATABASE_URL")
}

// The binary exits non-zero with the message on stderr.
func TestKeysCommandExit(t *testing.T) {
	t.Parallel()

	for _, args := range [][]string{
		{"keys"},
		{"keys", "create", "-scope", "superuser"},
		{"keys", "create", "-scope", "account"},
		{"keys", "revoke"},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "%v: %v", args, err)
		require.NotZero(t, exit.ExitCode(), args)
		require.True(t, strings.HasPrefix(stderr.String(), "webhookd: keys"), "%v: %s", args, stderr.String())
	}
}
