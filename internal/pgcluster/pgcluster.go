// Package pgcluster starts a throwaway PostgreSQL cluster in a temporary
// directory: a private server for `webhookd dev` and for tests when no server
// is reachable. The cluster listens on 127.0.0.1 on a free TCP port, trusts
// every local connection, and by default trades durability for speed (fsync,
// synchronous_commit and full_page_writes off), so it is only fit for data you
// can lose; Config.Durable keeps them on. Stop shuts it down and removes its
// files.
//
// It needs the PostgreSQL server binaries (initdb, pg_ctl and postgres). When
// the calling process runs as root, which PostgreSQL refuses, the binaries are
// run as the unprivileged "postgres" system user, or "nobody" if there is none.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// StartTimeoutDefault is how long Start waits for the server to accept
	// connections before giving up.
	StartTimeoutDefault = 60 * time.Second

	// debianBinRoot holds one bin directory per installed major version on
	// Debian and Ubuntu, which keep initdb and pg_ctl off PATH.
	debianBinRoot = "/usr/lib/postgresql"

	// logTailBytes is how much of the server log a start error quotes.
	logTailBytes = 4096

	// startAttempts is how many free ports Start tries: another process can
	// take the port between choosing it and the server binding it.
	startAttempts = 3

	// maxSocketPath is the longest unix socket path Start uses; the kernel's
	// limit is 107 bytes. Longer temp dirs get TCP only.
	maxSocketPath = 100
)

// installHint tells a user without PostgreSQL what to do about it.
const installHint = "install the PostgreSQL server (for example `apt-get install postgresql`), " +
	"put its bin directory on PATH, or point DATABASE_URL at a running server"

// Config configures Start. A nil *Config means all defaults.
type Config struct {
	// BinDir is the directory holding initdb and pg_ctl. Defaults to looking
	// them up on PATH, then in the highest-numbered
	// /usr/lib/postgresql/<version>/bin.
	BinDir string

	// Logf receives progress messages (binaries used, directory, port).
	// Defaults to discarding them.
	Logf func(format string, args ...any)

	// StartTimeout bounds how long the server may take to come up.
	// Defaults to StartTimeoutDefault.
	StartTimeout time.Duration
	// Durable keeps fsync, synchronous_commit and full_page_writes on, as
	// a production server has them: for benchmarks, whose figures must be
	// a durable server's (a server that never flushes a commit spends less
	// CPU per commit). Defaults to false: all three off, for speed.
	Durable bool
}

// WithDefaults returns a copy of the config with every unset field given its
// default. It accepts a nil receiver.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if out.Logf == nil {
		out.Logf = func(string, ...any) {}
	}
	if out.StartTimeout <= 0 {
		out.StartTimeout = StartTimeoutDefault
	}
	return out
}

// Cluster is a running throwaway PostgreSQL server. Create one with Start and
// release it with Stop.
type Cluster struct {
	cfg     *Config
	dir     string // temporary directory holding everything below
	dataDir string
	sockDir string // empty when the path would be too long for a socket
	logPath string
	pgCtl   string
	initdb  string
	port    int
	cred    *syscall.Credential // non-nil when running as root

	mu      sync.Mutex
	stopped bool
}

// Start creates a new cluster in a temporary directory and starts it. The
// context bounds the initdb and start commands only; the server keeps running
// until Stop is called. On error nothing is left behind.
func Start(ctx context.Context, cfg *Config) (*Cluster, error) {
	cfg = cfg.WithDefaults()

	initdb, pgCtl, err := findBinaries(cfg.BinDir)
	if err != nil {
		return nil, err
	}

	cred, err := credential()
	if err != nil {
		return nil, err
	}

	dir, err := makeTempDir(cred)
	if err != nil {
		return nil, err
	}

	c := &Cluster{
		cfg:     cfg,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
		pgCtl:   pgCtl,
		initdb:  initdb,
		cred:    cred,
	}
	if sockDir := filepath.Join(dir, "sock"); len(sockDir)+len("/.s.PGSQL.65535") <= maxSocketPath &&
		!strings.ContainsAny(sockDir, `'"\ `) {
		c.sockDir = sockDir
	}
	cfg.Logf("pgcluster: initdb %s, pg_ctl %s, directory %s", initdb, pgCtl, dir)

	if err := c.start(ctx); err != nil {
		c.stopped = true
		return nil, errors.Join(err, c.removeDir())
	}
	return c, nil
}

// URL returns the connection URL of the cluster's "postgres" database as the
// "postgres" superuser, with trust authentication and TLS disabled.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Port returns the TCP port the server listens on at 127.0.0.1.
func (c *Cluster) Port() int {
	return c.port
}

// Stop shuts the server down (pg_ctl stop -m fast, then -m immediate if that
// fails) and removes the temporary directory. It is safe to call more than
// once and from several goroutines; calls after the first return nil.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true

	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.StartTimeout)
	defer cancel()

	var errs []error
	// Without a postmaster.pid the server is not running (it crashed or was
	// stopped behind our back) and there is nothing to stop.
	if isFile(filepath.Join(c.dataDir, "postmaster.pid")) {
		if err := c.pgCtlStop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.removeDir(); err != nil {
		errs = append(errs, err)
	}
	c.cfg.Logf("pgcluster: stopped server on port %d", c.port)
	return errors.Join(errs...)
}

// Halt stops the server (pg_ctl stop -m fast) but keeps its files, so that
// Resume can start it again on the same port: a database that goes away
// and comes back, for tests of what clients see meanwhile.
func (c *Cluster) Halt(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("pgcluster: the cluster was stopped")
	}
	return c.pgCtlStop(ctx)
}

// Resume starts a server stopped by Halt again, on the same port, and
// waits until it accepts connections.
func (c *Cluster) Resume(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("pgcluster: the cluster was stopped")
	}
	return c.pgCtlStart(ctx)
}

// pgCtlStop stops the server, fast (rolling back open transactions) and, if
// that fails, immediately.
func (c *Cluster) pgCtlStop(ctx context.Context) error {
	out, err := c.run(ctx, c.pgCtl, "-D", c.dataDir, "-m", "fast", "-w", "-t", "30", "stop")
	if err == nil {
		return nil
	}
	fastErr := fmt.Errorf("error stopping PostgreSQL: %w: %s", err, strings.TrimSpace(string(out)))
	if out, err := c.run(ctx, c.pgCtl, "-D", c.dataDir, "-m", "immediate", "-w", "-t", "30", "stop"); err != nil {
		return errors.Join(fastErr, fmt.Errorf("error stopping PostgreSQL immediately: %w: %s", err, strings.TrimSpace(string(out))))
	}
	return nil
}

// start runs initdb and then starts the server, trying a few ports.
func (c *Cluster) start(ctx context.Context) error {
	out, err := c.run(ctx, c.initdb,
		"-D", c.dataDir,
		"-A", "trust",
		"-U", "postgres",
		"-E", "UTF8",
		"--locale=C",
		"--no-sync",
	)
	if err != nil {
		return fmt.Errorf("error running initdb: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	if c.sockDir != "" {
		if err := c.mkdirOwned(c.sockDir); err != nil {
			return err
		}
	}

	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port

		lastErr = c.pgCtlStart(ctx)
		if lastErr == nil {
			c.cfg.Logf("pgcluster: PostgreSQL listening on 127.0.0.1:%d", port)
			return nil
		}
		if !strings.Contains(c.logTail(), "could not bind") {
			break
		}
		c.cfg.Logf("pgcluster: port %d was taken, trying another", port)
	}
	return lastErr
}

// pgCtlStart starts the server on c.port and waits until it is ready.
func (c *Cluster) pgCtlStart(ctx context.Context) error {
	sockDir := "''" // no unix socket: TCP only
	if c.sockDir != "" {
		sockDir = "'" + c.sockDir + "'"
	}
	// pg_ctl hands -o to a shell, hence the quoting of the socket dir above.
	opts := []string{
		"-c listen_addresses=127.0.0.1",
		"-c port=" + strconv.Itoa(c.port),
		"-c unix_socket_directories=" + sockDir,
		"-c max_connections=200",
	}
	if !c.cfg.Durable {
		opts = append(opts, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	timeout := strconv.Itoa(int(max(c.cfg.StartTimeout/time.Second, 1)))

	out, err := c.run(ctx, c.pgCtl, "-D", c.dataDir, "-l", c.logPath, "-o", strings.Join(opts, " "), "-w", "-t", timeout, "start")
	if err != nil {
		// A server that is half up (pg_ctl timed out) must not outlive us.
		_, _ = c.run(context.Background(), c.pgCtl, "-D", c.dataDir, "-m", "immediate", "-w", "stop")
		return fmt.Errorf("error starting PostgreSQL on port %d: %w\n%s\nserver log %s:\n%s",
			c.port, err, strings.TrimSpace(string(out)), c.logPath, c.logTail())
	}
	return nil
}

// run runs a PostgreSQL binary as the cluster's user in the cluster's
// directory, with no PG* variables from our environment, and returns its
// combined output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.Env = cleanEnv()
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// pg_ctl start leaves the postmaster holding its own stdout; without a
	// bound, Output would wait for the server to exit.
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// logTail returns the end of the server log, or a note saying why it can't.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}

// mkdirOwned creates a directory owned by the cluster's user.
func (c *Cluster) mkdirOwned(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("error creating %s: %w", dir, err)
	}
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("error changing owner of %s: %w", dir, err)
		}
	}
	return nil
}

// removeDir deletes the cluster's temporary directory.
func (c *Cluster) removeDir() error {
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("error removing %s: %w", c.dir, err)
	}
	return nil
}

// findBinaries returns the paths of initdb and pg_ctl: from binDir if set,
// else from PATH, else from the highest version under /usr/lib/postgresql.
func findBinaries(binDir string) (initdb, pgCtl string, err error) {
	if binDir != "" {
		initdb, pgCtl = filepath.Join(binDir, "initdb"), filepath.Join(binDir, "pg_ctl")
		for _, p := range []string{initdb, pgCtl} {
			if _, err := os.Stat(p); err != nil {
				return "", "", fmt.Errorf("error finding PostgreSQL binaries in BinDir: %w", err)
			}
		}
		return initdb, pgCtl, nil
	}

	initdb, initdbErr := exec.LookPath("initdb")
	pgCtl, pgCtlErr := exec.LookPath("pg_ctl")
	if initdbErr == nil && pgCtlErr == nil {
		return initdb, pgCtl, nil
	}

	if dir := highestVersionBinDir(debianBinRoot); dir != "" {
		return filepath.Join(dir, "initdb"), filepath.Join(dir, "pg_ctl"), nil
	}
	return "", "", fmt.Errorf("error finding initdb and pg_ctl (not on PATH, none under %s/<version>/bin): %s",
		debianBinRoot, installHint)
}

// highestVersionBinDir returns root/<version>/bin for the highest version
// that has both initdb and pg_ctl, or "" if there is none.
func highestVersionBinDir(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	type candidate struct {
		version []int
		dir     string
	}
	var candidates []candidate
	for _, e := range entries {
		version, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		dir := filepath.Join(root, e.Name(), "bin")
		if !isFile(filepath.Join(dir, "initdb")) || !isFile(filepath.Join(dir, "pg_ctl")) {
			continue
		}
		candidates = append(candidates, candidate{version: version, dir: dir})
	}
	if len(candidates) == 0 {
		return ""
	}
	sort.Slice(candidates, func(i, j int) bool {
		return compareVersions(candidates[i].version, candidates[j].version) > 0
	})
	return candidates[0].dir
}

// parseVersion parses a directory name like "15" or "9.6".
func parseVersion(s string) ([]int, bool) {
	parts := strings.Split(s, ".")
	version := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		version = append(version, n)
	}
	return version, true
}

// compareVersions compares two parsed versions component by component.
func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// isFile reports whether path exists and is not a directory.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// RunAs is the credential other tools that run PostgreSQL (Patroni, in
// internal/hacluster) should use: nil when not running as root, else the
// "postgres" system user's (or "nobody"'s), as Start does.
func RunAs() (*syscall.Credential, error) { return credential() }

// TempDir creates a temporary directory that cred's user owns and can
// reach (cred nil: the caller's), as Start does for its cluster.
func TempDir(cred *syscall.Credential) (string, error) { return makeTempDir(cred) }

// BinDir returns the directory of the highest installed
// /usr/lib/postgresql/<version>/bin, or "" if there is none.
func BinDir() string { return highestVersionBinDir(debianBinRoot) }

// credential returns nil when not running as root, else the credential of
// the user to run PostgreSQL as: "postgres" if it exists, else "nobody".
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var lookupErrs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			lookupErrs = append(lookupErrs, err)
			continue
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("error parsing uid of user %s: %w", name, err)
		}
		gid, err := strconv.ParseUint(u.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("error parsing gid of user %s: %w", name, err)
		}
		if uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("error finding an unprivileged user to run PostgreSQL as (running as root, "+
		"which PostgreSQL refuses): %w", errors.Join(lookupErrs...))
}

// makeTempDir creates the cluster's temporary directory, owned by cred's user
// when cred is set. As root it makes sure that user can reach the directory,
// falling back from $TMPDIR to /tmp.
func makeTempDir(cred *syscall.Credential) (string, error) {
	bases := []string{os.TempDir()}
	if cred != nil && bases[0] != "/tmp" {
		bases = append(bases, "/tmp")
	}

	var base string
	for _, b := range bases {
		if cred == nil || traversable(b, cred) {
			base = b
			break
		}
	}
	if base == "" {
		return "", fmt.Errorf("error choosing a temporary directory: none of %s can be reached by uid %d",
			strings.Join(bases, ", "), cred.Uid)
	}

	dir, err := os.MkdirTemp(base, "pgcluster-")
	if err != nil {
		return "", fmt.Errorf("error creating temporary directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("error changing owner of %s: %w", dir, err)
		}
	}
	return dir, nil
}

// traversable reports whether the user in cred may search dir and every one
// of its parents, judging by permission bits alone.
func traversable(dir string, cred *syscall.Credential) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		mode := fi.Mode().Perm()
		var canSearch bool
		switch {
		case st.Uid == cred.Uid:
			canSearch = mode&0o100 != 0
		case st.Gid == cred.Gid:
			canSearch = mode&0o010 != 0
		default:
			canSearch = mode&0o001 != 0
		}
		if !canSearch {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("error finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("error releasing port %d: %w", port, err)
	}
	return port, nil
}

// cleanEnv returns our environment without PG* variables, which would
// otherwise point initdb and pg_ctl at another data directory or server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Binary returns the path of the PostgreSQL program name (such as
// pg_waldump) of major version major: from /usr/lib/postgresql/<major>/bin
// (Debian's layout, where several versions live side by side), else from
// PATH. A tool that reads a server's files must be of its version.
func Binary(name string, major int) (string, error) {
	p := filepath.Join(debianBinRoot, strconv.Itoa(major), "bin", name)
	if isFile(p) {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s of PostgreSQL %d not found (not in %s/%d/bin nor on PATH): %s", name, major, debianBinRoot, major, installHint)
}
