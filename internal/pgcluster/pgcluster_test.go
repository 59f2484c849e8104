package pgcluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestStart(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	cluster, err := Start(ctx, &Config{Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })

	dir := cluster.dir
	require.DirExists(t, dir)
	require.Equal(t,
		"postgres://postgres@127.0.0.1:"+strconv.Itoa(cluster.Port())+"/postgres?sslmode=disable",
		cluster.URL())

	conn, err := pgx.Connect(ctx, cluster.URL())
	require.NoError(t, err)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
	var user string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&user))
	require.Equal(t, "postgres", user)
	require.Equal(t, []string{"off", "off", "off"}, durability(ctx, t, conn), "fsync, synchronous_commit, full_page_writes")
	require.NoError(t, conn.Close(ctx))

	require.NoError(t, cluster.Stop())
	require.NoDirExists(t, dir)

	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cluster.Port())), time.Second)
	if err == nil {
		_ = c.Close()
	}
	require.Error(t, err, "port %d still accepts connections after Stop", cluster.Port())

	require.NoError(t, cluster.Stop(), "a second Stop is a no-op")
}

// A durable cluster keeps PostgreSQL's defaults: every commit flushed.
func TestStartDurable(t *testing.T) {
	t.Parallel()

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cluster, err := Start(ctx, &Config{Logf: t.Logf, Durable: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })
	conn, err := pgx.Connect(ctx, cluster.URL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.Equal(t, []string{"on", "on", "on"}, durability(ctx, t, conn), "fsync, synchronous_commit, full_page_writes")
}

func durability(ctx context.Context, t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var fsync, syncCommit, fullPages string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')").
		Scan(&fsync, &syncCommit, &fullPages))
	return []string{fsync, syncCommit, fullPages}
}

func TestStartBadBinDir(t *testing.T) {
	t.Parallel()

	_, err := Start(t.Context(), &Config{BinDir: t.TempDir()})
	require.ErrorContains(t, err, "error finding PostgreSQL binaries in BinDir")
}

func TestHighestVersionBinDir(t *testing.T) {
	t.Parallel()

	root := t.TempDir()
	for _, v := range []string{"9.6", "10", "15", "16", "notaversion"} {
		bin := filepath.Join(root, v, "bin")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		if v == "16" {
			continue // incomplete install: no binaries
		}
		for _, name := range []string{"initdb", "pg_ctl"} {
			require.NoError(t, os.WriteFile(filepath.Join(bin, name), nil, 0o755))
		}
	}

	require.Equal(t, filepath.Join(root, "15", "bin"), highestVersionBinDir(root))
	require.Empty(t, highestVersionBinDir(filepath.Join(root, "missing")))
}

func TestTraversable(t *testing.T) {
	t.Parallel()

	// A user that owns nothing, so only the "other" permission bits count.
	cred := &syscall.Credential{Uid: 54321, Gid: 54321}

	closed := filepath.Join(t.TempDir(), "closed")
	require.NoError(t, os.Mkdir(closed, 0o700))
	require.NoError(t, os.Chmod(closed, 0o700))
	inside := filepath.Join(closed, "inside")
	require.NoError(t, os.Mkdir(inside, 0o755))

	require.True(t, traversable("/", cred))
	require.False(t, traversable(closed, cred), "no o+x")
	require.False(t, traversable(inside, cred), "a parent without o+x blocks the way")
	require.False(t, traversable(filepath.Join(inside, "missing"), cred))
}
