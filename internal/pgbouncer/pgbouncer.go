// Package pgbouncer starts a throwaway PgBouncer in front of a PostgreSQL
// server, for the pooler test (internal/server/pgbouncer_test.go) and `webhookd
// bench -pgbouncer`: its own ini in a temporary directory, listening on a
// free 127.0.0.1 port, trusting every client (as the test servers trust
// local connections), every database of the upstream server reachable by
// its own name. Stop shuts it down and removes the directory.
//
// It needs Debian's pgbouncer package (.ci/install-pgbouncer.sh). As root,
// which PgBouncer refuses, it runs as the user PostgreSQL's throwaway
// clusters run as (pgcluster.RunAs).
package pgbouncer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/internal/pgcluster"
)

// The pool modes of Config.PoolMode.
const (
	ModeTransaction = "transaction"
	ModeSession     = "session"
)

// Defaults of Config.
const (
	// PoolSizeDefault is the server connections per database and user.
	PoolSizeDefault = 20
	// StartTimeoutDefault bounds Start's wait for PgBouncer to answer.
	StartTimeoutDefault = 30 * time.Second
)

// InstallHint says how to get PgBouncer.
const InstallHint = "install Debian's pgbouncer (`apt-get install -y pgbouncer`, or .ci/install-pgbouncer.sh, which does not start its service)"

// ErrNotInstalled is returned by Start when no pgbouncer binary is found.
var ErrNotInstalled = errors.New("pgbouncer not found on PATH or in /usr/sbin: " + InstallHint)

// Config configures Start.
type Config struct {
	// Upstream is a connection string of the PostgreSQL server to pool
	// (its host, port, user and password are used; the database is the
	// client's). Required.
	Upstream string
	// PoolMode is ModeTransaction (the default) or ModeSession.
	PoolMode string
	// PoolSize is default_pool_size: server connections per database and
	// user. Defaults to PoolSizeDefault.
	PoolSize int
	// StartTimeout defaults to StartTimeoutDefault.
	StartTimeout time.Duration
}

// Bouncer is a running PgBouncer.
type Bouncer struct {
	cmd     *exec.Cmd
	dir     string
	port    int
	logPath string
	exited  chan struct{}
}

// Binary returns the path of the pgbouncer binary, or ErrNotInstalled.
func Binary() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if fi, err := os.Stat("/usr/sbin/pgbouncer"); err == nil && !fi.IsDir() {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", ErrNotInstalled
}

// Start writes an ini for cfg and starts PgBouncer on a free 127.0.0.1
// port, returning once it answers a query.
func Start(ctx context.Context, cfg *Config) (*Bouncer, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	up, err := pgx.ParseConfig(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: Upstream: %w", err)
	}
	mode := cfg.PoolMode
	if mode == "" {
		mode = ModeTransaction
	}
	if mode != ModeTransaction && mode != ModeSession {
		return nil, fmt.Errorf("pgbouncer: PoolMode %q is neither %s nor %s", mode, ModeTransaction, ModeSession)
	}
	size := cfg.PoolSize
	if size <= 0 {
		size = PoolSizeDefault
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = StartTimeoutDefault
	}
	cred, err := pgcluster.RunAs()
	if err != nil {
		return nil, err
	}
	dir, err := pgcluster.TempDir(cred)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	b := &Bouncer{dir: dir, port: port, logPath: filepath.Join(dir, "pgbouncer.log"), exited: make(chan struct{})}

	upstream := fmt.Sprintf("host=%s port=%d", up.Host, up.Port)
	if up.Password != "" {
		upstream += " password=" + quote(up.Password)
	}
	ini := strings.Join([]string{
		"[databases]",
		"* = " + upstream,
		"",
		"[pgbouncer]",
		"listen_addr = 127.0.0.1",
		"listen_port = " + strconv.Itoa(port),
		"unix_socket_dir =",
		"auth_type = trust",
		"auth_file = " + filepath.Join(dir, "userlist.txt"),
		"pool_mode = " + mode,
		"default_pool_size = " + strconv.Itoa(size),
		"max_client_conn = 2000",
		"max_db_connections = " + strconv.Itoa(size),
		// pgx sends none of these today; a client that does is not refused.
		"ignore_startup_parameters = extra_float_digits",
		"logfile = " + b.logPath,
		"pidfile = " + filepath.Join(dir, "pgbouncer.pid"),
		"log_connections = 0",
		"log_disconnections = 0",
		"",
	}, "\n")
	// trust still wants the user listed.
	users := fmt.Sprintf("%q \"\"\n", up.User)
	for name, body := range map[string]string{"pgbouncer.ini": ini, "userlist.txt": users} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer: %w", err)
		}
		if cred != nil {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				_ = os.RemoveAll(dir)
				return nil, fmt.Errorf("pgbouncer: %w", err)
			}
		}
	}
	b.cmd = exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	b.cmd.Dir = dir
	if cred != nil {
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := b.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgbouncer: error starting %s: %w", bin, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	if err := b.waitReady(ctx, up.User, up.Database, timeout); err != nil {
		_ = b.Stop()
		return nil, err
	}
	return b, nil
}

// waitReady connects through the bouncer until a query answers.
func (b *Bouncer) waitReady(ctx context.Context, user, database string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	connStr := b.URL(user, database) + "&default_query_exec_mode=simple_protocol"
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-b.exited:
			return fmt.Errorf("pgbouncer exited at start; its log:\n%s", b.logTail())
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, connStr)
		if err == nil {
			_, err = conn.Exec(cctx, "SELECT 1")
			conn.Close(cctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("pgbouncer not answering after %s: %w; its log:\n%s", timeout, last, b.logTail())
}

// Port is the port PgBouncer listens on, on 127.0.0.1.
func (b *Bouncer) Port() int { return b.port }

// URL is a connection string to database as user through the bouncer.
func (b *Bouncer) URL(user, database string) string {
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)),
		Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// Through rewrites a connection string of the upstream server (a URL) to
// go through the bouncer: same user, password, database and parameters.
func (b *Bouncer) Through(direct string) (string, error) {
	u, err := url.Parse(direct)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgbouncer: %q is not a postgres:// URL", direct)
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	q := u.Query()
	q.Set("sslmode", "disable") // no TLS on the bouncer
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Stop shuts PgBouncer down (SIGTERM: at once) and removes its directory.
func (b *Bouncer) Stop() error {
	if b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
	}
	return os.RemoveAll(b.dir)
}

func (b *Bouncer) logTail() string {
	raw, _ := os.ReadFile(b.logPath)
	if len(raw) > 4096 {
		raw = raw[len(raw)-4096:]
	}
	return string(raw)
}

// quote quotes a libpq connection-string value.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgbouncer: error finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
