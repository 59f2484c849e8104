package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
	"github.com/mono/webhookd/internal/testwait"
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
	var account apitype.Key
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
	require.Regexp(t, `^ID\s+PREFIX\s+SCOPE\s+ACCOUNT\s+CREATED\s+LAST USED\s+REVOKED\s+EXPIRES\s+DESCRIPTION$`, lines[0])
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

	// The keys work on a server; revoked on the database (by another
	// process), one gets 401 from at most the server's key cache TTL later.
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
	// Refused once the key cache's entry expires (APIKeyCacheTTLDefault).
	testwait.For(t, admin.APIKeyCacheTTLDefault+10*time.Second, func() (bool, string) {
		code := get("/v1/webhooks", account.Key)
		return code == http.StatusUnauthorized, fmt.Sprint("the revoked key still answers ", code)
	})
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
		{"UnknownScope", []string{"create", "-scope", "root"}, `-scope: scope must be admin, account, events:write or portal:write, not "root"`},
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
		{"UnknownSubcommand", []string{"rename"}, `keys: unknown subcommand "rename"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runKeys(context.Background(), tc.args, &bytes.Buffer{})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "webhookd keys create -scope")
		})
	}
}

// keys rotate: a new key printed once, the old one expiring after -grace.
func TestKeysRotateCommand(t *testing.T) {
	t.Parallel()

	dbURL := testdb.NewURL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	ctx := context.Background()
	type row struct {
		scope, prefix string
		account       *string
		description   string
		hash          []byte
		expiresAt     *time.Time
		replacedBy    *string
	}
	load := func(t *testing.T, id string) row {
		t.Helper()
		var r row
		require.NoError(t, pool.QueryRow(ctx, "SELECT scope, prefix, account_id, description, hash, expires_at, replaced_by FROM api_keys WHERE id = $1", id).
			Scan(&r.scope, &r.prefix, &r.account, &r.description, &r.hash, &r.expiresAt, &r.replacedBy))
		return r
	}
	created := func(t *testing.T, args ...string) apitype.Key {
		t.Helper()
		out, err := keys(t, dbURL, append([]string{"create", "-json"}, args...)...)
		require.NoError(t, err)
		var v apitype.Key
		require.NoError(t, json.Unmarshal([]byte(out), &v), out)
		return v
	}

	old := created(t, "-scope", "account", "-account", "acct_cli_rot", "-description", "billing")

	// Text: the key on the first line, alone, then what happened.
	before := time.Now()
	out, err := keys(t, dbURL, "rotate", "-id", old.ID, "-grace", "30m")
	require.NoError(t, err)
	newRaw, rest, _ := strings.Cut(out, "\n")
	require.True(t, apikey.LooksLikeKey(newRaw), out)
	require.NotContains(t, rest, newRaw)
	require.NotContains(t, out, old.Key)
	require.Contains(t, rest, "Rotated API key "+old.ID+" to key_")
	require.Contains(t, rest, "scope account, account acct_cli_rot")
	require.Contains(t, rest, "shown only this once")
	require.Contains(t, rest, "The old key works until ")

	oldRow := load(t, old.ID)
	require.NotNil(t, oldRow.expiresAt)
	require.WithinRange(t, *oldRow.expiresAt, before.Add(30*time.Minute-time.Millisecond), time.Now().Add(30*time.Minute))
	require.Contains(t, rest, oldRow.expiresAt.UTC().Format(time.RFC3339))
	require.NotNil(t, oldRow.replacedBy)
	newID := *oldRow.replacedBy
	require.Contains(t, rest, newID)
	newRow := load(t, newID)
	sum := sha256.Sum256([]byte(newRaw))
	require.Equal(t, sum[:], newRow.hash)
	require.Equal(t, "account", newRow.scope)
	require.Equal(t, "acct_cli_rot", *newRow.account)
	require.Equal(t, "billing", newRow.description)
	require.Equal(t, newRaw[:apikey.DisplayLen], newRow.prefix)
	require.Nil(t, newRow.expiresAt)
	require.Nil(t, newRow.replacedBy)

	// list shows the expiry; -json the replacement.
	out, err = keys(t, dbURL, "list", "-account", "acct_cli_rot")
	require.NoError(t, err)
	require.Contains(t, out, oldRow.expiresAt.UTC().Format(time.RFC3339))
	require.NotContains(t, out, newRaw)
	out, err = keys(t, dbURL, "list", "-account", "acct_cli_rot", "-json")
	require.NoError(t, err)
	var listed []apitype.Key
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed, 2)
	require.Equal(t, newID, listed[0].ID)
	require.Equal(t, newID, *listed[1].ReplacedBy)

	// -json, whole days, an unbound events:write key.
	events := created(t, "-scope", "events:write")
	out, err = keys(t, dbURL, "rotate", "-grace", "2d", "-id", events.ID, "-json")
	require.NoError(t, err)
	var rotated apitype.KeyRotated
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rotated), out)
	require.True(t, apikey.LooksLikeKey(rotated.Key.Key))
	require.Equal(t, "events:write", rotated.Scope)
	require.Nil(t, rotated.AccountID)
	require.Equal(t, events.ID, rotated.OldKeyID)
	require.WithinDuration(t, time.Now().Add(48*time.Hour), rotated.OldKeyExpiresAt, 10*time.Second)

	// On a server: both keys of the first rotation work; after a rotation
	// with -grace 0 (by another process) the old key gets 401 from at most
	// the server's key cache TTL later.
	srv, err := server.New(ctx, &server.Config{
		DatabaseURL: dbURL, Addr: "127.0.0.1:0", EncryptionKey: keyring.Generate(), ShutdownTimeout: time.Second,
		DBMaxConns: 6, MaxWorkers: 10,
	}, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })
	get := func(key string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/v1/webhooks", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get(old.Key))
	require.Equal(t, http.StatusOK, get(newRaw))
	out, err = keys(t, dbURL, "rotate", "-id", newID, "-grace", "0")
	require.NoError(t, err)
	newestRaw, _, _ := strings.Cut(out, "\n")
	// Refused once the key cache's entry expires (APIKeyCacheTTLDefault).
	testwait.For(t, admin.APIKeyCacheTTLDefault+10*time.Second, func() (bool, string) {
		code := get(newRaw)
		return code == http.StatusUnauthorized, fmt.Sprint("the rotated key still answers ", code)
	})
	require.Equal(t, http.StatusOK, get(newestRaw))
	require.Equal(t, http.StatusOK, get(old.Key), "the first rotation's grace still runs")

	// Refused: a clear error, nothing changed.
	revoked := created(t, "-scope", "admin")
	_, err = keys(t, dbURL, "revoke", revoked.ID)
	require.NoError(t, err)
	countKeys := func(t *testing.T) (all, rotated int) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*), count(replaced_by) FROM api_keys").Scan(&all, &rotated))
		return all, rotated
	}
	all, rotatedN := countKeys(t)
	live := created(t, "-scope", "admin").ID
	all++
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoID", []string{"rotate"}, "-id: the id of the key to rotate is required"},
		{"MalformedID", []string{"rotate", "-id", "key_123"}, `-id: "key_123" is not a key id`},
		{"UnknownID", []string{"rotate", "-id", ident.New(ident.Key)}, "no API key key_"},
		{"GraceText", []string{"rotate", "-id", live, "-grace", "soon"}, `-grace: grace must be a duration from 0 to 7d`},
		{"GraceNegative", []string{"rotate", "-id", live, "-grace", "-1h"}, `"-1h" is negative`},
		{"GraceTooLong", []string{"rotate", "-id", live, "-grace", "8d"}, `"8d" is longer than 7 days`},
		{"ExtraArgument", []string{"rotate", "-id", live, "extra"}, `unexpected argument "extra"`},
		{"AlreadyRotated", []string{"rotate", "-id", old.ID}, "was already rotated (to " + newID + ")"},
		{"Revoked", []string{"rotate", "-id", revoked.ID}, "is revoked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := keys(t, dbURL, tc.args...)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Empty(t, out)
			gotAll, gotRotated := countKeys(t)
			require.Equal(t, all, gotAll)
			require.Equal(t, rotatedN, gotRotated)
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
		{"keys", "rotate", "-id", "key_1"},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%v: %v", args, err)
		require.NotZero(t, exit.ExitCode(), args)
		require.True(t, strings.HasPrefix(stderr.String(), "webhookd: keys"), "%v: %s", args, stderr.String())
	}
}
