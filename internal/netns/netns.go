// Package netns makes network partitions on this machine for the
// partition drills: a network namespace joined to the host by a veth pair
// with a 10.213.k.0/30 of its own (the host end .1, the namespace end
// .2), a way to run a process inside it, and partitions made by dropping
// packets with iptables rules inside the namespace (never by downing a
// link), so that a TCP peer sees silence, as across a real partition. It
// only ever touches the namespaces it made, and Close deletes them.
//
// It needs root, ip (iproute2) and iptables.
package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Available says why namespaces can't be made here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: %s not found: apt-get install iproute2 iptables", tool)
		}
	}
	return nil
}

// Namespace is a network namespace joined to the host by a veth pair.
type Namespace struct {
	// Name is the namespace's name (ip netns).
	Name string
	// HostIP is the host's end of the pair, reachable from inside;
	// NSIP the namespace's, reachable from the host.
	HostIP, NSIP string

	hostVeth string
	mu       sync.Mutex
	rules    [][]string // iptables rules in place, to delete on Heal
	closed   bool
}

var counter atomic.Int32

// New makes a namespace with loopback up and a veth pair whose /30 is not
// on any interface of the host yet.
func New(ctx context.Context) (*Namespace, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	c := int(counter.Add(1))
	pid := os.Getpid()
	n := &Namespace{Name: fmt.Sprintf("wd%d-%d", pid, c), hostVeth: fmt.Sprintf("wd%dh%d", pid%1000000, c)}
	nsVeth := fmt.Sprintf("wd%dn%d", pid%1000000, c)
	addrs, err := exec.CommandContext(ctx, "ip", "-o", "addr").Output()
	if err != nil {
		return nil, fmt.Errorf("netns: ip addr: %w", err)
	}
	for k := (pid + 37*c) % 250; ; k = (k + 1) % 250 {
		prefix := fmt.Sprintf("10.213.%d.", k+1)
		if !strings.Contains(string(addrs), " "+prefix) {
			n.HostIP, n.NSIP = prefix+"1", prefix+"2"
			break
		}
	}
	steps := [][]string{
		{"ip", "netns", "add", n.Name},
		{"ip", "link", "add", n.hostVeth, "type", "veth", "peer", "name", nsVeth},
		{"ip", "link", "set", nsVeth, "netns", n.Name},
		{"ip", "addr", "add", n.HostIP + "/30", "dev", n.hostVeth},
		{"ip", "link", "set", n.hostVeth, "up"},
		{"ip", "netns", "exec", n.Name, "ip", "addr", "add", n.NSIP + "/30", "dev", nsVeth},
		{"ip", "netns", "exec", n.Name, "ip", "link", "set", nsVeth, "up"},
		{"ip", "netns", "exec", n.Name, "ip", "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			return nil, errors.Join(fmt.Errorf("netns: %s: %w: %s", strings.Join(s, " "), err, out), n.Close())
		}
	}
	return n, nil
}

// Command is name args run inside the namespace.
func (n *Namespace) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Partition drops every TCP packet between the namespace and the host's
// end at one of ports, both ways, until Heal. reject instead answers
// every packet the namespace sends there with a TCP reset (a peer that is
// down, not away: connections are refused at once); the reset comes back
// from the peer's address, so nothing is dropped on the way in.
func (n *Namespace) Partition(reject bool, ports ...int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range ports {
		port := strconv.Itoa(p)
		out := []string{"OUTPUT", "-p", "tcp", "-d", n.HostIP, "--dport", port, "-j", "DROP"}
		if reject {
			out = []string{"OUTPUT", "-p", "tcp", "-d", n.HostIP, "--dport", port, "-j", "REJECT", "--reject-with", "tcp-reset"}
		}
		rules := [][]string{out, {"INPUT", "-p", "tcp", "-s", n.HostIP, "--sport", port, "-j", "DROP"}}
		if reject {
			rules = rules[:1]
		}
		for _, rule := range rules {
			if err := n.iptables("-I", rule); err != nil {
				return err
			}
			n.rules = append(n.rules, rule)
		}
	}
	return nil
}

// Heal deletes every rule Partition added.
func (n *Namespace) Heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, rule := range n.rules {
		errs = append(errs, n.iptables("-D", rule))
	}
	n.rules = nil
	return errors.Join(errs...)
}

func (n *Namespace) iptables(op string, rule []string) error {
	args := append([]string{"netns", "exec", n.Name, "iptables", "-w", op}, rule...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("netns: iptables %s %s: %w: %s", op, strings.Join(rule, " "), err, out)
	}
	return nil
}

// Close deletes the namespace (and with it both ends of the veth pair).
// It is safe to call more than once.
func (n *Namespace) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
		errs = append(errs, fmt.Errorf("netns: ip netns del %s: %w: %s", n.Name, err, out))
	}
	// Normally gone with the namespace; a half-made one may have left it.
	_ = exec.Command("ip", "link", "del", n.hostVeth).Run()
	return errors.Join(errs...)
}

// Forwarder relays TCP connections from a listening address to a target,
// so that a server listening on 127.0.0.1 only (a throwaway PostgreSQL)
// can be reached from a namespace through the host's end of its pair.
type Forwarder struct {
	// Addr is where it listens.
	Addr string

	ln     net.Listener
	target string
	active atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// Forward listens on listen (host:0 for a free port) and relays every
// connection to target until Close.
func Forward(listen, target string) (*Forwarder, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	f := &Forwarder{Addr: ln.Addr().String(), ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Port is the port it listens on.
func (f *Forwarder) Port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// Active is how many connections it relays now.
func (f *Forwarder) Active() int { return int(f.active.Load()) }

func (f *Forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

func (f *Forwarder) relay(c net.Conn) {
	defer f.wg.Done()
	f.active.Add(1)
	defer f.active.Add(-1)
	t, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	f.track(c, t)
	defer f.untrack(c, t)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(t, c)
	go pipe(c, t)
	<-done
	<-done
}

func (f *Forwarder) track(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
}

func (f *Forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(f.conns, c)
	}
}

// Close stops listening and cuts every relayed connection.
func (f *Forwarder) Close() error {
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}
