package hacluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The cluster starts with node1 leading and node2 its synchronous
// standby; both URLs reach the leader and can write; a killed leader is
// replaced by its standby, rejoins as a standby itself, and a switchover
// hands the lead back. (The drills in drill/ measure all this under load.)
func TestCluster(t *testing.T) {
	if missing := Missing(); len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("missing %v: .ci/install-ha-tools.sh installs them", missing)
		}
		t.Skipf("missing %v: apt-get install etcd-server patroni python3-etcd haproxy", missing)
	}
	ctx := context.Background()
	c, err := Start(ctx, &Config{Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop()) })
	require.Equal(t, "node1", c.Leader(ctx))

	write := func(url string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS t (n int); INSERT INTO t VALUES (1)`)
		require.NoError(t, err)
	}
	write(c.HAProxyURL())
	write(c.MultiHostURL())

	killed := time.Now()
	require.NoError(t, c.Kill("node1"))
	promoted, err := c.WaitLeader(ctx, "node2")
	require.NoError(t, err)
	t.Logf("node2 promoted %s after the kill", promoted.Sub(killed))
	require.NoError(t, c.WaitHAProxy(ctx, "node2"))
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.HAProxyURL())
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `INSERT INTO t VALUES (2)`)
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
	t.Logf("HAProxy writes %s after the kill", time.Since(killed))
	t.Log(c.List(ctx))
	write(c.MultiHostURL())

	require.NoError(t, c.StartNode("node1"))
	require.NoError(t, c.WaitSyncStandby(ctx, "node1"))
	require.NoError(t, c.Switchover(ctx, "node2", "node1"))
	require.Equal(t, "node1", c.Leader(ctx))
	t.Log(c.List(ctx))
}
