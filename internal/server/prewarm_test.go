package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testdb"
)

// A server that can't open its connections ahead of traffic (here, a role
// allowed one connection) warns and starts anyway.
func TestPrewarmFailureIsNotFatal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.NewURL(t)

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := "webhookd_limited_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, testdb.BaseURL())
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 1 IN ROLE pg_read_all_data")
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), testdb.BaseURL())
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.User(role)

	core, logs := observer.New(zap.WarnLevel)
	srv, err := server.New(ctx, &server.Config{
		DatabaseURL:   u.String(),
		Addr:          "127.0.0.1:0",
		EncryptionKey: keyring.Generate(),
	}, zap.New(core))
	require.NoError(t, err, "the server starts without its connections ahead")
	require.NoError(t, srv.Stop(ctx))
	require.NotZero(t, logs.FilterMessageSnippet("could not open database connections ahead of traffic").Len(), "warned: %v", logs.All())
}
