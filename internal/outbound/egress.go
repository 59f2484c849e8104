package outbound

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// ErrorKindProxy means the egress proxy (WEBHOOKD_EGRESS_PROXY) could not
// be reached or refused to open the tunnel. Nothing reached the receiver.
const ErrorKindProxy = "proxy"

// ProxyError is a failure of the egress proxy itself: it could not be
// reached, or it answered CONNECT with something other than 200.
type ProxyError struct {
	// Message says what went wrong; it names no address.
	Message string
	// StatusCode is the proxy's answer to CONNECT, 0 if there was none.
	StatusCode int
	err        error
}

// Error implements error.
func (e *ProxyError) Error() string { return e.Message }

// Unwrap returns the underlying error, if any.
func (e *ProxyError) Unwrap() error { return e.err }

// ParseEgressProxy checks an egress proxy URL: http://host:port (an HTTP
// CONNECT proxy), optionally with user:password for Basic
// Proxy-Authorization, no path beyond "/".
func ParseEgressProxy(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http":
		return nil, errors.New("must be http://host:port (an HTTP CONNECT proxy)")
	case u.Hostname() == "" || u.Port() == "":
		return nil, errors.New("must name a host and a port, like http://squid.internal:3128")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return nil, errors.New("must have no path, query or fragment")
	}
	return u, nil
}

// egressDialer tunnels every connection through an HTTP CONNECT proxy to an
// address it has checked itself: it resolves the destination, refuses it if
// any address is one the policy refuses, and asks the proxy to CONNECT to
// the IP (never the name, which the proxy would resolve again: DNS
// rebinding). The proxy's own address is the only one exempt from the
// policy. TLS, SNI and the Host header stay the transport's, with the
// original host name.
type egressDialer struct {
	proxy    *url.URL
	policy   *Policy
	resolver *net.Resolver
	dialer   *net.Dialer // to the proxy: no policy check
	timeout  time.Duration
}

func (d *egressDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("error splitting %q: %w", address, err)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		resolver := d.resolver
		if resolver == nil {
			resolver = net.DefaultResolver
		}
		if addrs, err = resolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, err
		}
	}
	for _, addr := range addrs {
		if err := d.policy.CheckAddr(addr); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
	}
	var lastErr error
	for _, addr := range addrs {
		conn, err := d.connect(ctx, net.JoinHostPort(addr.Unmap().WithZone("").String(), port))
		if err == nil {
			return conn, nil
		}
		lastErr = err
		var proxyErr *ProxyError
		if ctx.Err() != nil || (errors.As(err, &proxyErr) && proxyErr.StatusCode == 0) {
			break // the proxy itself is down: no other address helps
		}
	}
	return nil, lastErr
}

// connect opens a tunnel to target (an IP and port) through the proxy.
func (d *egressDialer) connect(ctx context.Context, target string) (net.Conn, error) {
	conn, err := d.dialer.DialContext(ctx, "tcp", d.proxy.Host)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &ProxyError{Message: "could not connect to the egress proxy: " + errorText(err), err: err}
	}
	deadline := time.Now().Add(d.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: make(http.Header)}
	if u := d.proxy.User; u != nil {
		password, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+password)))
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, &ProxyError{Message: "the egress proxy closed the connection: " + errorText(err), err: err}
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ProxyError{Message: "the egress proxy did not answer CONNECT: " + errorText(err), err: err}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, &ProxyError{StatusCode: resp.StatusCode, Message: "the egress proxy refused the tunnel: " + resp.Status}
	}
	_ = conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// bufferedConn is a tunnel whose first bytes were read with the proxy's
// answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// proxyErrorKind classifies a failure of the egress proxy: unreachable or
// refusing the tunnel is ErrorKindProxy; a proxy answering that it could
// not reach the receiver (502, 503, 504, or tinyproxy's 500) is
// ErrorKindConnect, the receiver's failure.
func proxyErrorKind(err error) (string, string, bool) {
	var proxyErr *ProxyError
	if !errors.As(err, &proxyErr) {
		return "", "", false
	}
	switch proxyErr.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ErrorKindConnect, "the egress proxy could not connect to the receiver (" + proxyErr.Message + ")", true
	}
	return ErrorKindProxy, proxyErr.Message, true
}
