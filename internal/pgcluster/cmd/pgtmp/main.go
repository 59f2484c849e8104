// Command pgtmp runs a command with TEST_DATABASE_URL pointing at a
// PostgreSQL server, starting a throwaway one if it has to. The Makefile uses
// it so that `make test` works with or without a local server:
//
//	go run ./internal/pgcluster/cmd/pgtmp -- go test ./...
//
// It picks, in order: TEST_DATABASE_URL, DATABASE_URL, a server answering at
// postgres://postgres@127.0.0.1:5432/postgres, and finally a throwaway
// cluster (package pgcluster) that lives as long as the command. Setting
// PGTMP_FORCE_THROWAWAY=1 skips straight to the throwaway cluster. pgtmp
// exits with the command's exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mono/webhookd/internal/pgcluster"
)

const (
	// localURL is where a developer's own PostgreSQL usually listens.
	localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

	// probeTimeout bounds the connection attempt to localURL.
	probeTimeout = 3 * time.Second
)

// howToGetPostgres is printed when no server can be found or started.
const howToGetPostgres = `pgtmp: no PostgreSQL available. Any one of these fixes it:
  - start the installed server:  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  - install PostgreSQL:          apt-get install postgresql   (pgtmp then starts a throwaway cluster itself)
  - use an existing server:      export TEST_DATABASE_URL=postgres://user@host:5432/postgres?sslmode=disable`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run does the work of main and returns the exit code.
func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: pgtmp -- CMD [ARGS...]")
		return 2
	}

	if os.Getenv("PGTMP_FORCE_THROWAWAY") != "1" {
		for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
			if url := os.Getenv(name); url != "" {
				fmt.Fprintf(os.Stderr, "pgtmp: using %s\n", name)
				return execWith(url, args)
			}
		}
		err := probe(localURL)
		if err == nil {
			fmt.Fprintf(os.Stderr, "pgtmp: using the server at 127.0.0.1:5432\n")
			return execWith(localURL, args)
		}
		fmt.Fprintf(os.Stderr, "pgtmp: no server at 127.0.0.1:5432 (%v); starting a throwaway cluster\n", err)
	}

	return runWithThrowaway(args)
}

// probe reports whether PostgreSQL answers at url.
func probe(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// execWith replaces this process with the command, TEST_DATABASE_URL set to
// url. It returns only on error.
func execWith(url string, args []string) int {
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtmp: %v\n", err)
		return 127
	}
	err = syscall.Exec(path, args, withURL(os.Environ(), url))
	fmt.Fprintf(os.Stderr, "pgtmp: error running %s: %v\n", args[0], err)
	return 126
}

// runWithThrowaway starts a throwaway cluster, runs the command against it as
// a child process, and stops the cluster afterwards.
func runWithThrowaway(args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cluster, err := pgcluster.Start(ctx, &pgcluster.Config{
		Logf: func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) },
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtmp: error starting a throwaway PostgreSQL: %v\n\n%s\n", err, howToGetPostgres)
		return 1
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtmp: %v\n", err)
		}
	}()

	// Catch the signals before starting the child so none is lost: we must
	// outlive the child to stop the cluster.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = withURL(os.Environ(), cluster.URL())
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtmp: error running %s: %v\n", args[0], err)
		return 127
	}

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			return exitCode(err)
		}
	}
}

// exitCode turns the result of cmd.Wait into an exit code, 128+n for a
// child killed by signal n as shells do.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		fmt.Fprintf(os.Stderr, "pgtmp: %v\n", err)
		return 1
	}
	if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
		return 128 + int(status.Signal())
	}
	return exitErr.ExitCode()
}

// withURL returns env with TEST_DATABASE_URL set to url.
func withURL(env []string, url string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if strings.HasPrefix(kv, "TEST_DATABASE_URL=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "TEST_DATABASE_URL="+url)
}
