package server

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The connection poolers DATABASE_URL may go through (WEBHOOKD_DB_POOLER).
const (
	// PoolerNone: DATABASE_URL reaches PostgreSQL itself, or a pooler in
	// session mode (a client keeps its server connection for as long as it
	// is connected: nothing to change). The default.
	PoolerNone = "none"
	// PoolerTransaction: DATABASE_URL goes through a pooler in transaction
	// mode, such as PgBouncer's pool_mode = transaction, which hands a
	// server connection to a client for one transaction only. Nothing may
	// outlive a transaction there:
	//
	//   - River runs poll-only (no LISTEN): a job inserted, or coming due,
	//     is fetched at the deliveries queue's next poll (FetchPollInterval,
	//     50 ms by default here) rather than on its notification or its
	//     alarm (engine.Wakes, off here);
	//   - pgx prepares no named statements (PgBouncer before 1.21 does not
	//     carry them from one server connection to the next): it describes
	//     each statement once, unnamed, and caches the description
	//     (pgx.QueryExecModeCacheDescribe), so a statement is still one
	//     round trip;
	//   - the workers' by-key pool (session settings, one generic plan per
	//     session) and `webhookd migrate` connect to
	//     WEBHOOKD_DIRECT_DATABASE_URL instead, which is required.
	PoolerTransaction = "transaction"
)

// ParsePooler reads WEBHOOKD_DB_POOLER: none (or empty, or session) or
// transaction.
func ParsePooler(raw string) (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(raw)); v {
	case "", PoolerNone, "session":
		return PoolerNone, nil
	case PoolerTransaction:
		return PoolerTransaction, nil
	default:
		return "", fmt.Errorf("%q is neither none (direct or session pooling) nor transaction (a pooler in transaction mode, such as PgBouncer's)", raw)
	}
}

// validatePooler checks DBPooler and DirectDatabaseURL.
func (c *Config) validatePooler() error {
	if _, err := ParsePooler(c.DBPooler); err != nil {
		return fmt.Errorf("WEBHOOKD_DB_POOLER: %w", err)
	}
	if c.DirectDatabaseURL != "" {
		if _, err := pgxpool.ParseConfig(c.DirectDatabaseURL); err != nil {
			return fmt.Errorf("WEBHOOKD_DIRECT_DATABASE_URL: %w", err)
		}
	}
	if c.transactionPooler() && c.Worker && c.DirectDatabaseURL == "" {
		return fmt.Errorf("WEBHOOKD_DB_POOLER=%s needs WEBHOOKD_DIRECT_DATABASE_URL: the workers' by-key pool keeps session settings and prepared statements, which a transaction pooler does not carry (point it at PostgreSQL itself or at a session-mode pool)", PoolerTransaction)
	}
	return nil
}

// transactionPooler reports whether DATABASE_URL goes through a pooler in
// transaction mode.
func (c *Config) transactionPooler() bool {
	p, _ := ParsePooler(c.DBPooler)
	return p == PoolerTransaction
}

// configurePooler adapts the main pool's config to DBPooler: behind a
// transaction pooler, statements are described and cached but never
// prepared by name.
func (c *Config) configurePooler(poolCfg *pgxpool.Config) {
	if !c.transactionPooler() {
		return
	}
	conn := poolCfg.ConnConfig
	if conn.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		conn.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
}

// byKeyPoolConfig is the config the workers' by-key pool starts from:
// WEBHOOKD_DIRECT_DATABASE_URL's when set (sized and set up like the main
// pool otherwise), else the main pool's.
func (c *Config) byKeyPoolConfig(main *pgxpool.Config) (*pgxpool.Config, error) {
	if c.DirectDatabaseURL == "" {
		return main, nil
	}
	direct, err := pgxpool.ParseConfig(c.DirectDatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_DIRECT_DATABASE_URL: %w", err)
	}
	return direct, nil
}
