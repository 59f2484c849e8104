package main

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// `webhookd migrate` uses WEBHOOKD_DIRECT_DATABASE_URL when it is set: a
// DATABASE_URL through a transaction pooler (here nothing at all listens
// there) is not used.
func TestMigrateDirectURL(t *testing.T) {
	t.Parallel()

	dbURL := testdb.NewURL(t)
	cmd := exec.Command(binary, "migrate")
	cmd.Env = []string{"DATABASE_URL=postgres://webhookd@127.0.0.1:1/pooled?sslmode=disable&connect_timeout=1", "WEBHOOKD_DIRECT_DATABASE_URL=" + dbURL}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "already current")
}
