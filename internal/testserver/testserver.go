// Package testserver starts a real, in-process webhookd (API and workers) on
// a fresh test database for tests, and stops it at cleanup.
package testserver

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
)

// AdminKey is the bootstrap admin key of every test server.
const AdminKey = "test-admin-key-0123456789"

// Server is a started test server with the keyring its secrets use.
type Server struct {
	*server.Server
	// Keys decrypts (and encrypts) this server's webhook secrets.
	Keys *keyring.Keyring
	// BaseURL is http://ADDR of its API.
	BaseURL string
}

// Start runs webhookd on a fresh database with test defaults: API and
// metrics listeners on 127.0.0.1:0, the AdminKey, a 0.001 retry scale, private networks allowed,
// short timeouts and small pools (many test servers share one PostgreSQL's
// max_connections). modify may change the config first.
func Start(t testing.TB, modify func(*server.Config)) *Server {
	t.Helper()
	return StartWithLogger(t, nil, modify)
}

// StartWithLogger is Start with the server logging to logger (nil: no log).
func StartWithLogger(t testing.TB, logger *zap.Logger, modify func(*server.Config)) *Server {
	t.Helper()
	ctx := context.Background()
	cfg := &server.Config{
		DatabaseURL:          testdb.NewURL(t),
		Addr:                 "127.0.0.1:0",
		MetricsAddr:          "127.0.0.1:0",
		EncryptionKey:        keyring.Generate(),
		BootstrapAdminKey:    AdminKey,
		RetryScale:           0.001,
		AllowPrivateNetworks: true,
		HTTPTimeout:          2 * time.Second,
		ShutdownTimeout:      2 * time.Second,
		DBMaxConns:           10,
		MaxWorkers:           30,
	}
	if modify != nil {
		modify(cfg)
	}
	keys, err := keyring.Parse(cfg.EncryptionKey)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("testserver: error creating the server: %v", err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("testserver: error starting the server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("testserver: error stopping the server: %v", err)
		}
	})
	return &Server{Server: srv, Keys: keys, BaseURL: "http://" + srv.Addr()}
}
