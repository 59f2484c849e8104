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
// standby, and both URLs reach the leader and can write. (Killing the
// leader, its rejoining and the switchover back are the failover drill's,
// drill/failover_test.go, which runs in CI too.)
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

	t.Log(c.List(ctx))
}
