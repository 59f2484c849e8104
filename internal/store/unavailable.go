package store

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err means the database could not be reached
// or would not take the work right now, rather than that the work itself
// is wrong: the connection refused, reset or cut, the server shutting down
// or restarting (SQLSTATE 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
// cannot_connect_now), a connection exception (class 08), too many
// connections (53300), a read-only transaction on a server being promoted
// or a standby (25006), or a deadline spent waiting for a connection or an
// answer. These are worth retrying once the database is back (a failover
// takes seconds); everything else is a bug or a bad statement.
//
// A context canceled by the caller is not unavailability: the caller left.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "25006", "53300":
			return true
		}
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	// pgconn marks the errors of a connection that failed before sending
	// anything (closed, busy, lost while connecting) as safe to retry.
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}
