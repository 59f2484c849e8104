package netns

import (
	"context"
	"net"
	"os"
	osexec "os/exec"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// A process in the namespace reaches the host's end of the pair; a
// partition drops its packets (the connection times out) or, rejecting,
// resets them (refused); healed, it connects again; Close leaves nothing.
func TestNamespace(t *testing.T) {
	t.Parallel()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	n, err := New(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.Close()) })

	ln, err := net.Listen("tcp", n.HostIP+":0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dial := func() error {
		// bash's /dev/tcp, bounded by timeout(1).
		return n.Command("timeout", "1", "bash", "-c", "exec 3<>/dev/tcp/"+n.HostIP+"/"+strconv.Itoa(port)).Run()
	}
	require.NoError(t, dial())
	require.NoError(t, n.Partition(false, port))
	require.Error(t, dial(), "dropped")
	require.NoError(t, n.Heal())
	require.NoError(t, dial())
	require.NoError(t, n.Partition(true, port))
	require.Error(t, dial(), "rejected")
	require.NoError(t, n.Heal())
	require.NoError(t, dial())

	require.NoError(t, n.Close())
	require.Error(t, osexec.Command("ip", "netns", "exec", n.Name, "true").Run(), "the namespace is gone")
}
