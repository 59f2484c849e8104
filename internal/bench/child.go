package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// child is the running binary (webhookd, or this package's test binary)
// started again as one of the bench's helper processes: the external
// receiver or the worker process, picked by an environment variable set to
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
