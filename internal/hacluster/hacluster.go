// Package hacluster starts a throwaway highly available PostgreSQL cluster
// on this machine for the failover drills: one etcd member, two PostgreSQL
// instances managed by Patroni (synchronous_mode, use_pg_rewind, a short
// ttl, loop_wait and retry_timeout) and HAProxy routing to the leader by
// Patroni's REST health check (GET /primary). Everything listens on
// 127.0.0.1, on free ports, and lives in one temporary directory that Stop
// removes.
//
// It needs Debian's etcd-server, patroni (with python3-etcd) and haproxy
// packages (.ci/install-ha-tools.sh) and the PostgreSQL server binaries.
// As root, which initdb refuses, every process runs as the "postgres"
// system user (see pgcluster.RunAs). The data is fit only to be thrown
// away: fsync is off.
package hacluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/internal/pgcluster"
)

// Defaults of Config.
const (
	// TTLDefault is Patroni's leader lock TTL in seconds: how long a dead
	// leader holds the lock before the standby may take it.
	TTLDefault = 10
	// LoopWaitDefault is Patroni's loop_wait in seconds.
	LoopWaitDefault = 1
	// RetryTimeoutDefault is Patroni's retry_timeout in seconds (DCS and
	// PostgreSQL operations); loop_wait + 2 × retry_timeout ≤ ttl.
	RetryTimeoutDefault = 4
	// StartTimeoutDefault bounds Start and each wait of the cluster.
	StartTimeoutDefault = 2 * time.Minute
)

// Tools are the programs the cluster needs, for a message that says what
// to install.
var Tools = []string{"etcd", "patroni", "patronictl", "haproxy"}

// Config configures Start. A nil *Config means all defaults.
type Config struct {
	// BinDir holds the PostgreSQL server binaries. Defaults to the highest
	// /usr/lib/postgresql/<version>/bin.
	BinDir string
	// Logf receives progress messages. Defaults to discarding them.
	Logf func(format string, args ...any)
	// TTL, LoopWait and RetryTimeout are Patroni's, in seconds. Default
	// to TTLDefault, LoopWaitDefault and RetryTimeoutDefault.
	TTL, LoopWait, RetryTimeout int
	// StartTimeout bounds Start. Defaults to StartTimeoutDefault.
	StartTimeout time.Duration
}

// WithDefaults returns a copy of the config with every unset field given
// its default. It accepts a nil receiver.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if out.BinDir == "" {
		out.BinDir = pgcluster.BinDir()
	}
	if out.Logf == nil {
		out.Logf = func(string, ...any) {}
	}
	if out.TTL <= 0 {
		out.TTL = TTLDefault
	}
	if out.LoopWait <= 0 {
		out.LoopWait = LoopWaitDefault
	}
	if out.RetryTimeout <= 0 {
		out.RetryTimeout = RetryTimeoutDefault
	}
	if out.StartTimeout <= 0 {
		out.StartTimeout = StartTimeoutDefault
	}
	return out
}

// Missing returns the tools of Tools not on PATH (and python3-etcd, which
// Patroni imports), empty when the cluster can start.
func Missing() []string {
	var missing []string
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		// Patroni runs under the interpreter of its #! line.
		if err := exec.Command("/usr/bin/python3", "-c", "import etcd").Run(); err != nil {
			missing = append(missing, "python3-etcd")
		}
	}
	return missing
}

// Node is one Patroni-managed PostgreSQL instance.
type Node struct {
	Name    string
	PGPort  int // PostgreSQL, on 127.0.0.1
	APIPort int // Patroni's REST API, on 127.0.0.1

	dir     string
	dataDir string
	config  string
	patroni *process
}

// Cluster is a running HA cluster. Create one with Start and release it
// with Stop.
type Cluster struct {
	cfg   *Config
	dir   string
	cred  *syscall.Credential
	scope string

	etcdPort    int
	haproxyPort int
	etcd        *process
	haproxy     *process
	patronictl  string // its config file

	// Nodes are the two PostgreSQL instances, "node1" the first leader.
	Nodes []*Node

	mu      sync.Mutex
	stopped bool
}

// Start creates the cluster in a temporary directory: etcd, then node1
// (which bootstraps and becomes the leader), then node2 (cloned from it
// and, once streaming, its synchronous standby), then HAProxy. The
// context bounds the start only. On error nothing is left running.
func Start(ctx context.Context, cfg *Config) (*Cluster, error) {
	cfg = cfg.WithDefaults()
	if missing := Missing(); len(missing) > 0 {
		return nil, fmt.Errorf("hacluster: missing %s: apt-get install etcd-server patroni python3-etcd haproxy (.ci/install-ha-tools.sh)", strings.Join(missing, ", "))
	}
	if cfg.BinDir == "" {
		return nil, errors.New("hacluster: no PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin: apt-get install postgresql")
	}
	cred, err := pgcluster.RunAs()
	if err != nil {
		return nil, err
	}
	dir, err := pgcluster.TempDir(cred)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, dir: dir, cred: cred, scope: "webhookd-drill-" + filepath.Base(dir)}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := c.start(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	ports, err := freePorts(2 + 1 + 2*2)
	if err != nil {
		return err
	}
	c.etcdPort, c.haproxyPort = ports[0], ports[2]
	for i := range 2 {
		name := "node" + strconv.Itoa(i+1)
		n := &Node{Name: name, PGPort: ports[3+2*i], APIPort: ports[4+2*i], dir: filepath.Join(c.dir, name)}
		n.dataDir = filepath.Join(n.dir, "data")
		n.config = filepath.Join(n.dir, "patroni.yml")
		c.Nodes = append(c.Nodes, n)
	}
	c.cfg.Logf("hacluster: directory %s, etcd 127.0.0.1:%d, haproxy 127.0.0.1:%d, %s pg %d api %d, %s pg %d api %d",
		c.dir, c.etcdPort, c.haproxyPort, c.Nodes[0].Name, c.Nodes[0].PGPort, c.Nodes[0].APIPort, c.Nodes[1].Name, c.Nodes[1].PGPort, c.Nodes[1].APIPort)

	// etcd, one member.
	etcdDir := filepath.Join(c.dir, "etcd")
	if err := c.mkdir(etcdDir); err != nil {
		return err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", c.etcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if c.etcd, err = c.spawn("etcd", "etcd",
		"--name", "e1", "--data-dir", etcdDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e1="+peer, "--initial-cluster-state", "new",
		"--initial-cluster-token", c.scope, "--log-level", "warn",
	); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, client+"/health", "etcd"); err != nil {
		return err
	}

	// patronictl talks to etcd with a config of its own.
	c.patronictl = filepath.Join(c.dir, "patronictl.yml")
	if err := c.writeFile(c.patronictl, fmt.Sprintf("scope: %s\nnamespace: /webhookd/\netcd3:\n  hosts: 127.0.0.1:%d\n", c.scope, c.etcdPort)); err != nil {
		return err
	}

	// node1 bootstraps and leads; node2 clones it.
	for i, n := range c.Nodes {
		if err := c.mkdir(n.dir); err != nil {
			return err
		}
		if err := c.writeFile(n.config, c.patroniConfig(n)); err != nil {
			return err
		}
		if err := c.StartNode(n.Name); err != nil {
			return err
		}
		if i == 0 {
			if _, err := c.WaitLeader(ctx, n.Name); err != nil {
				return err
			}
		}
	}
	if err := c.WaitSyncStandby(ctx, c.Nodes[1].Name); err != nil {
		return err
	}

	// HAProxy: the one server whose Patroni answers /primary 200.
	haCfg := filepath.Join(c.dir, "haproxy.cfg")
	var servers strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&servers, "  server %s 127.0.0.1:%d maxconn 100 check port %d\n", n.Name, n.PGPort, n.APIPort)
	}
	if err := c.writeFile(haCfg, fmt.Sprintf(`global
  maxconn 400

defaults
  mode tcp
  log global
  retries 1
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s

listen primary
  bind 127.0.0.1:%d
  option httpchk OPTIONS /primary
  http-check expect status 200
  default-server inter 500ms fastinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions
%s`, c.haproxyPort, servers.String())); err != nil {
		return err
	}
	if c.haproxy, err = c.spawn("haproxy", "haproxy", "-f", haCfg, "-db"); err != nil {
		return err
	}
	return c.WaitHAProxy(ctx, c.Nodes[0].Name)
}

// patroniConfig is node n's patroni.yml.
func (c *Cluster) patroniConfig(n *Node) string {
	return fmt.Sprintf(`scope: %[1]s
namespace: /webhookd/
name: %[2]s
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:%[3]d
  connect_address: 127.0.0.1:%[3]d
etcd3:
  hosts: 127.0.0.1:%[4]d
bootstrap:
  dcs:
    ttl: %[5]d
    loop_wait: %[6]d
    retry_timeout: %[7]d
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 100
        wal_keep_size: 256MB
  initdb:
  - encoding: UTF8
  - locale: C
  - auth: trust
postgresql:
  listen: 127.0.0.1:%[8]d
  connect_address: 127.0.0.1:%[8]d
  data_dir: %[9]s
  bin_dir: %[10]s
  pgpass: %[11]s/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: rewinder
      password: rewinder
  parameters:
    unix_socket_directories: '%[11]s'
    fsync: "off"
    full_page_writes: "on"
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 trust
  - host all all 127.0.0.1/32 trust
`, c.scope, n.Name, n.APIPort, c.etcdPort, c.cfg.TTL, c.cfg.LoopWait, c.cfg.RetryTimeout,
		n.PGPort, n.dataDir, c.cfg.BinDir, n.dir)
}

// HAProxyURL is the connection URL through HAProxy, which routes to the
// leader.
func (c *Cluster) HAProxyURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", c.haproxyPort)
}

// MultiHostURL is a connection URL naming both nodes with
// target_session_attrs=read-write: the client tries them in turn and keeps
// the one that accepts writes.
func (c *Cluster) MultiHostURL() string {
	hosts := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", n.PGPort)
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/postgres?sslmode=disable&connect_timeout=2&target_session_attrs=read-write"
}

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Other returns the node that is not name.
func (c *Cluster) Other(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name != name {
			return n
		}
	}
	return nil
}

// StartNode starts (or restarts, after Kill) node name's Patroni, which
// starts its PostgreSQL: a new member bootstraps or clones, a former
// leader rejoins as a standby, rewinding with pg_rewind if it must.
func (c *Cluster) StartNode(name string) error {
	n := c.Node(name)
	if n == nil {
		return fmt.Errorf("hacluster: no node %q", name)
	}
	p, err := c.spawn(n.Name, "patroni", n.config)
	if err != nil {
		return err
	}
	n.patroni = p
	return nil
}

// Kill is a machine dying: SIGKILL to node name's Patroni and to its
// PostgreSQL's whole process group (the postmaster and every backend),
// with no chance to hand over. It returns when both are gone.
func (c *Cluster) Kill(name string) error {
	n := c.Node(name)
	if n == nil {
		return fmt.Errorf("hacluster: no node %q", name)
	}
	pid := postmasterPID(n.dataDir)
	var errs []error
	if n.patroni != nil {
		errs = append(errs, n.patroni.kill())
	}
	if pid > 0 {
		// Patroni starts the postmaster in a session of its own (its
		// launcher's): the group is every postgres process of the node.
		target := pid
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 {
			target = -pgid
		}
		if err := syscall.Kill(target, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("hacluster: error killing postgres %d of %s: %w", pid, name, err))
		}
		for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// isPrimary reports whether n's Patroni answers GET /primary with 200:
// it holds the leader lock and its PostgreSQL runs read-write.
func (c *Cluster) isPrimary(ctx context.Context, n *Node) bool {
	return httpStatus(ctx, fmt.Sprintf("http://127.0.0.1:%d/primary", n.APIPort)) == http.StatusOK
}

// Leader returns the name of the node whose Patroni answers /primary with
// 200, or "" if none does.
func (c *Cluster) Leader(ctx context.Context) string {
	for _, n := range c.Nodes {
		if c.isPrimary(ctx, n) {
			return n.Name
		}
	}
	return ""
}

// WaitLeader polls every 50 ms until node name (any node if "") is the
// leader, and returns when it saw it.
func (c *Cluster) WaitLeader(ctx context.Context, name string) (time.Time, error) {
	err := c.poll(ctx, "leader "+name, func() bool {
		l := c.Leader(ctx)
		return l != "" && (name == "" || l == name)
	})
	return time.Now(), err
}

// WaitSyncStandby waits until node name is streaming from the leader and
// is its synchronous standby (Patroni's /sync answers 200).
func (c *Cluster) WaitSyncStandby(ctx context.Context, name string) error {
	n := c.Node(name)
	if n == nil {
		return fmt.Errorf("hacluster: no node %q", name)
	}
	return c.poll(ctx, name+" synchronous standby", func() bool {
		return httpStatus(ctx, fmt.Sprintf("http://127.0.0.1:%d/sync", n.APIPort)) == http.StatusOK
	})
}

// WaitHAProxy waits until HAProxy routes to node name: three connections
// in a row through it reach name's PostgreSQL, out of recovery. (HAProxy
// starts with every server up until its first health checks say
// otherwise.)
func (c *Cluster) WaitHAProxy(ctx context.Context, name string) error {
	n := c.Node(name)
	if n == nil {
		return fmt.Errorf("hacluster: no node %q", name)
	}
	inARow := 0
	return c.poll(ctx, "haproxy to "+name, func() bool {
		if c.reaches(ctx, c.HAProxyURL(), n) {
			inARow++
		} else {
			inARow = 0
		}
		return inARow >= 3
	})
}

// reaches reports whether a connection to url lands on n's PostgreSQL
// and n accepts writes.
func (c *Cluster) reaches(ctx context.Context, url string, n *Node) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var port int
	var recovery bool
	if err := conn.QueryRow(ctx, `SELECT inet_server_port(), pg_is_in_recovery()`).Scan(&port, &recovery); err != nil {
		return false
	}
	return port == n.PGPort && !recovery
}

// Switchover runs `patronictl switchover --leader from --candidate to
// --force`, a planned hand-over, and waits until to leads.
func (c *Cluster) Switchover(ctx context.Context, from, to string) error {
	out, err := c.patronictlRun(ctx, "switchover", c.scope, "--leader", from, "--candidate", to, "--force")
	if err != nil {
		return err
	}
	c.cfg.Logf("hacluster: %s", bytes.TrimSpace(out))
	_, err = c.WaitLeader(ctx, to)
	return err
}

// List is `patronictl list`, for logs.
func (c *Cluster) List(ctx context.Context) string {
	out, err := c.patronictlRun(ctx, "list", c.scope)
	if err != nil {
		return err.Error()
	}
	return string(out)
}

// patronictlRun runs patronictl with the cluster's config, as the
// cluster's user, and returns its output.
func (c *Cluster) patronictlRun(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "patronictl", append([]string{"-c", c.patronictl}, args...)...)
	cmd.Env = c.env()
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("hacluster: patronictl %s: %w: %s", args[0], err, out)
	}
	return out, nil
}

// Logs returns the tail of every process's output, for a failed drill.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, name := range []string{"etcd", "node1", "node2", "haproxy"} {
		out, err := os.ReadFile(filepath.Join(c.dir, name+".log"))
		if err != nil {
			continue
		}
		if len(out) > 4000 {
			out = out[len(out)-4000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, out)
	}
	for _, n := range c.Nodes {
		logs, _ := filepath.Glob(filepath.Join(n.dataDir, "log", "*"))
		for _, l := range logs {
			out, err := os.ReadFile(l)
			if err != nil {
				continue
			}
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			fmt.Fprintf(&b, "--- %s ---\n%s\n", l, out)
		}
	}
	return b.String()
}

// Stop kills every process of the cluster (HAProxy, both Patronis and
// their PostgreSQL, etcd) and removes its directory. It is safe to call
// more than once; calls after the first return nil.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	if c.haproxy != nil {
		errs = append(errs, c.haproxy.kill())
	}
	for _, n := range c.Nodes {
		errs = append(errs, c.Kill(n.Name))
	}
	if c.etcd != nil {
		errs = append(errs, c.etcd.kill())
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("hacluster: error removing %s: %w", c.dir, err))
	}
	return errors.Join(errs...)
}

// process is a child process in a process group of its own.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// spawn starts name's program with args as the cluster's user, its output
// appended to <dir>/<name>.log.
func (c *Cluster) spawn(name, program string, args ...string) (*process, error) {
	logPath := filepath.Join(c.dir, name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hacluster: %w", err)
	}
	defer log.Close()
	cmd := exec.Command(program, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("hacluster: error starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// kill sends SIGKILL to the process's group and waits for it.
func (p *process) kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("hacluster: error killing %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("hacluster: %s still running 10 s after SIGKILL", p.name)
	}
}

// env is the environment of the cluster's processes: no PG* variables,
// HOME in the cluster's directory, the server binaries on PATH.
func (c *Cluster) env() []string {
	env := []string{"HOME=" + c.dir, "PATH=" + c.cfg.BinDir + ":" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", "LANG=C.UTF-8"}
	return env
}

// poll calls ok every 50 ms until it is true or ctx ends.
func (c *Cluster) poll(ctx context.Context, what string, ok func() bool) error {
	for {
		if ok() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hacluster: waiting for %s: %w\n%s", what, ctx.Err(), c.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitHTTP waits until url answers 200.
func (c *Cluster) waitHTTP(ctx context.Context, url, what string) error {
	return c.poll(ctx, what, func() bool { return httpStatus(ctx, url) == http.StatusOK })
}

// mkdir creates dir, owned by the cluster's user.
func (c *Cluster) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("hacluster: %w", err)
	}
	return c.chown(dir)
}

// writeFile writes a file owned by the cluster's user.
func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("hacluster: %w", err)
	}
	return c.chown(path)
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("hacluster: %w", err)
	}
	return nil
}

// httpStatus GETs url with a short timeout: its status, or 0.
func httpStatus(ctx context.Context, url string) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postmasterPID reads the postmaster's pid from dataDir, or 0.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("hacluster: error finding a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
