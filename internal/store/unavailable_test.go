package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()

	wrap := func(err error) error { return fmt.Errorf("error enqueuing event: %w", err) }
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"Nil", nil, false},
		{"AdminShutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"CrashShutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"CannotConnectNow", wrap(&pgconn.PgError{Code: "57P03"}), true},
		{"ReadOnlyTransaction", wrap(&pgconn.PgError{Code: "25006"}), true},
		{"TooManyConnections", &pgconn.PgError{Code: "53300"}, true},
		{"ConnectionFailure", &pgconn.PgError{Code: "08006"}, true},
		{"ConnectionRefused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true},
		{"ConnectionReset", wrap(syscall.ECONNRESET), true},
		{"UnexpectedEOF", wrap(io.ErrUnexpectedEOF), true},
		{"DeadlineAcquiring", wrap(context.DeadlineExceeded), true},
		{"UniqueViolation", wrap(&pgconn.PgError{Code: "23505"}), false},
		{"SyntaxError", &pgconn.PgError{Code: "42601"}, false},
		{"QueryCanceled", &pgconn.PgError{Code: "57014"}, false},
		{"CallerLeft", wrap(context.Canceled), false},
		{"NotFound", ErrNotFound, false},
		{"Other", errors.New("boom"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Unavailable(tt.err), "%v", tt.err)
		})
	}
}

// A real connect to a port nobody listens on is unavailability, as pgx
// reports it.
func TestUnavailableConnectRefused(t *testing.T) {
	t.Parallel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = pgconn.Connect(context.Background(), "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	require.True(t, Unavailable(err), "%v", err)
}
