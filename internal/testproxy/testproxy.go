// Package testproxy runs a real HTTP CONNECT proxy for tests: Debian's
// tinyproxy, with a generated configuration, listening on a free
// 127.0.0.1 port and allowing CONNECT to the ports the test names only
// (tinyproxy's ConnectPort lines; squid and tinyproxy allow 443 alone by
// default). Its log says which tunnels it was asked for.
//
// It needs the tinyproxy package (.ci/install-tinyproxy.sh). Without it
// the test is skipped, except under CI=true, where it fails.
package testproxy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// InstallHint says how to get tinyproxy.
const InstallHint = "install Debian's tinyproxy (`apt-get install -y tinyproxy`, or .ci/install-tinyproxy.sh)"

// Proxy is a running tinyproxy.
type Proxy struct {
	// URL is the proxy's URL, http://127.0.0.1:<port>.
	URL *url.URL
	log string
}

// Start starts tinyproxy allowing CONNECT to connectPorts only. It stops
// at the test's cleanup.
func Start(t testing.TB, connectPorts ...int) *Proxy {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/tinyproxy"); statErr == nil {
			bin = "/usr/bin/tinyproxy"
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("tinyproxy not found: %s", InstallHint)
		} else {
			t.Skipf("tinyproxy not found: %s", InstallHint)
		}
	}

	dir := t.TempDir()
	// tinyproxy drops to its own user when started as root: let it write.
	require.NoError(t, os.Chmod(dir, 0o777))
	port := FreePort(t)
	p := &Proxy{URL: &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}, log: filepath.Join(dir, "tinyproxy.log")}
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %d\nListen 127.0.0.1\nTimeout 30\nMaxClients 200\nAllow 127.0.0.0/8\nLogLevel Info\n", port)
	fmt.Fprintf(&conf, "LogFile %q\nPidFile %q\n", p.log, filepath.Join(dir, "tinyproxy.pid"))
	for _, cp := range connectPorts {
		fmt.Fprintf(&conf, "ConnectPort %d\n", cp)
	}
	confPath := filepath.Join(dir, "tinyproxy.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf.String()), 0o644))

	cmd := exec.Command(bin, "-d", "-c", confPath)
	out, err := os.Create(filepath.Join(dir, "stdout"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		out.Close()
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", p.URL.Host, time.Second)
		if err == nil {
			conn.Close()
			return p
		}
		select {
		case <-done:
			data, _ := os.ReadFile(out.Name())
			t.Fatalf("tinyproxy exited: %s", data)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tinyproxy did not listen on %s within 10s: %v", p.URL.Host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var connectRE = regexp.MustCompile(`Request \(file descriptor \d+\): CONNECT (\S+) `)

// Connects lists the CONNECT requests the proxy received so far, as the
// host:port each asked for, in order.
func (p *Proxy) Connects(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(p.log)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, m := range connectRE.FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	return out
}

// FreePort returns a TCP port free on 127.0.0.1 now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
