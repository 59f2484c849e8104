package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/mono/webhookd/internal/pgbouncer"
	"github.com/mono/webhookd/internal/server"
)

// bouncerPoolSize is the bench PgBouncer's server connections per
// database: half the server's default pool of 40 client connections, the
// multiplexing a pooler is there for.
const bouncerPoolSize = 20

// startBouncer starts Config.PgBouncer's PgBouncer in front of the bench
// server and returns what stops it.
func (e *env) startBouncer(ctx context.Context) (func(), error) {
	b, err := pgbouncer.Start(ctx, &pgbouncer.Config{Upstream: e.baseURL, PoolMode: pgbouncer.ModeTransaction, PoolSize: bouncerPoolSize})
	if err != nil {
		return nil, fmt.Errorf("-pgbouncer: %w", err)
	}
	e.bouncer = b
	fmt.Fprintf(e.cfg.Progress, "bench: PgBouncer (transaction mode, pool %d) on 127.0.0.1:%d in front of %s\n", bouncerPoolSize, b.Port(), redact(e.baseURL))
	return func() { _ = b.Stop() }, nil
}

// throughBouncer points cfg's DATABASE_URL through the bench's PgBouncer,
// when there is one, and its by-key pool at the database directly.
func (e *env) throughBouncer(cfg *server.Config) error {
	if e.bouncer == nil {
		return nil
	}
	through, err := e.bouncer.Through(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	cfg.DatabaseURL, cfg.DirectDatabaseURL, cfg.DBPooler = through, cfg.DatabaseURL, server.PoolerTransaction
	return nil
}

// pgbouncerVersion is `pgbouncer --version`'s first line's version, or "".
func pgbouncerVersion() string {
	bin, err := pgbouncer.Binary()
	if err != nil {
		return ""
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(strings.TrimSpace(first), "PgBouncer ")
}
