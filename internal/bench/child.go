package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"sync"
	"time"
)

// children are the bench's helper processes: each is the running binary
// started again (startChild) with its variable set to "1", and served by
// ServeChildIfAsked.
var children = []struct {
	env, what string
	serve     func(ctx context.Context, in io.Reader, out io.Writer) error
}{
	{externalReceiverEnv, "bench receiver", serveExternalReceiver},
	{workerProcessEnv, "bench worker process", serveWorker},
	{riverProcessEnv, "bench River process", serveRiver},
}

// ServeChildIfAsked returns at once, unless the bench started this process
// as one of its helpers (the external receiver, the worker process or
// River's process: its variable is "1"); then it serves as that helper on
// its standard input and output and exits, with status 1 and the error on
// standard error if serving fails. main and TestMain call it first thing.
func ServeChildIfAsked() {
	for _, c := range children {
		if os.Getenv(c.env) != "1" {
			continue
		}
		if err := c.serve(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, c.what+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// childSpec is a child's settings, sent as JSON on its standard input.
type childSpec interface {
	// gcPercent is the bench process's GOGC, for the child to collect as
	// webhookd does in the bench process (0: the runtime's).
	gcPercent() int
}

// readSpec reads in's first line, the JSON of a child's settings, into
// spec (what names it in errors), sets the process's GOGC from it, and
// returns the scanner of in's next lines (the child's commands).
func readSpec(in io.Reader, spec childSpec, what string) (*bufio.Scanner, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("no settings on standard input: %w", cmp.Or(sc.Err(), io.ErrUnexpectedEOF))
	}
	if err := json.Unmarshal(sc.Bytes(), spec); err != nil {
		return nil, fmt.Errorf("the settings on standard input are not a %s: %w", what, err)
	}
	if gc := spec.gcPercent(); gc != 0 {
		debug.SetGCPercent(gc)
	}
	return sc, nil
}

// child is the running binary (webhookd, or this package's test binary)
// started again as one of the bench's helper processes: the external
// receiver, the worker process or River's (scenario 9's River alone),
// picked by an environment variable set to
// "1" that main and TestMain look at first. It talks in lines: the bench
// writes to its standard input, and its standard output's lines arrive on
// lines; closing its standard input ends it.
type child struct {
	what  string // in errors: "external receiver", "worker process"
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	// exited is closed once the process has exited; waitErr is then how.
	exited  chan struct{}
	waitErr error
	stopped sync.Once
}

// startChild starts the running binary with env=1 in its environment, its
// standard error the bench's.
func startChild(what, env string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("error starting the %s: %w", what, err)
	}
	c := &child{what: what, cmd: cmd, in: in, lines: make(chan string, 4), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		// Wait after every read of the pipe, as exec.Cmd asks.
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// pid is the process's id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// send writes line to the process's standard input.
func (c *child) send(line string) error {
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		return fmt.Errorf("%s: %w", c.what, err)
	}
	return nil
}

// next is the process's next line, waiting at most within: an error when
// the process exits first (with how), within passes (errBound) or ctx ends.
func (c *child) next(ctx context.Context, within time.Duration) (string, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.exited
			return "", fmt.Errorf("the %s exited: %w", c.what, c.exit())
		}
		return line, nil
	case <-timer.C:
		return "", fmt.Errorf("%w: the %s said nothing within %s", errBound, c.what, within)
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the %s: %w", c.what, ctx.Err())
	}
}

// exit is how the process ended, once exited is closed: its wait error,
// or that it exited with status 0.
func (c *child) exit() error {
	if c.waitErr != nil {
		return c.waitErr
	}
	return errors.New("exit status 0")
}

// stop closes the process's standard input, which ends it, and waits for
// it, killing it after within. Only the first call does anything.
func (c *child) stop(within time.Duration) {
	c.stopped.Do(func() {
		_ = c.in.Close()
		select {
		case <-c.exited:
		case <-time.After(within):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
}
