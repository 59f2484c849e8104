package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The error kinds of a Result, stored with every attempt.
const (
	// ErrorKindBlockedAddress means the policy refused the URL's host or
	// the address it resolved to. Nothing was sent. The message is always
	// BlockedMessage; Result.BlockedReason says why, for the server log.
	ErrorKindBlockedAddress = "blocked_address"

	// ErrorKindCanceled means the caller's context was canceled (for
	// example at shutdown) before the attempt finished.
	ErrorKindCanceled = "canceled"

	// ErrorKindConnect means the connection was refused, reset while
	// connecting, or unreachable.
	ErrorKindConnect = "connect"

	// ErrorKindDNS means the host name could not be resolved.
	ErrorKindDNS = "dns"

	// ErrorKindHTTPStatus means the receiver answered with a status other
	// than 2xx (including 3xx: redirects are never followed).
	ErrorKindHTTPStatus = "http_status"

	// ErrorKindInvalidURL means the URL is not one ValidateURL accepts.
	ErrorKindInvalidURL = "invalid_url"

	// ErrorKindNetwork means another transport failure once connected, for
	// example the receiver closing or resetting the connection without
	// answering.
	ErrorKindNetwork = "network"

	// ErrorKindTLS means the TLS handshake failed (bad certificate, protocol
	// error).
	ErrorKindTLS = "tls"

	// ErrorKindTimeout means connecting, the TLS handshake or waiting for the
	// response took longer than its timeout, or the caller's deadline passed.
	ErrorKindTimeout = "timeout"
)

// Defaults of ClientConfig.
const (
	// ConnectTimeoutDefault is the default ClientConfig.ConnectTimeout.
	ConnectTimeoutDefault = 5 * time.Second

	// ExcerptSizeDefault is the default ClientConfig.ExcerptSize: 4 KiB.
	ExcerptSizeDefault = 4 << 10

	// MaxIdleConnsPerHostDefault is the default
	// ClientConfig.MaxIdleConnsPerHost: 400, webhookd's default number of
	// workers (the server sets it to WEBHOOKD_MAX_WORKERS).
	MaxIdleConnsPerHostDefault = 400

	// MaxResponseReadDefault is the default ClientConfig.MaxResponseRead:
	// 64 KiB.
	MaxResponseReadDefault = 64 << 10

	// TimeoutDefault is the default ClientConfig.Timeout.
	TimeoutDefault = 10 * time.Second

	// TLSHandshakeTimeoutDefault is the default
	// ClientConfig.TLSHandshakeTimeout.
	TLSHandshakeTimeoutDefault = 5 * time.Second

	// UserAgentDefault is the default ClientConfig.UserAgent.
	UserAgentDefault = "Mono-Webhooks/dev"
)

const (
	// idleConnTimeout is how long an idle keep-alive connection is kept.
	idleConnTimeout = 90 * time.Second

	// sessionCacheSize is how many TLS sessions (one per receiver host)
	// the shared transport keeps to resume: a connection opened again to
	// a receiver seen recently skips the certificate exchange. A
	// webhook's own TLS transport has a cache of its own (mtls.go).
	sessionCacheSize = 1024

	// maxResponseHeaderBytes bounds the response headers a receiver may
	// send (net/http allows 10 MB by default).
	maxResponseHeaderBytes = 64 << 10

	// tcpKeepAlive is the TCP keep-alive probe period.
	tcpKeepAlive = 30 * time.Second
)

// ClientConfig configures a Client. The zero value of a field means its
// default.
type ClientConfig struct {
	// ConnectTimeout bounds connecting to one address. It is capped at
	// Timeout. Defaults to ConnectTimeoutDefault (5s).
	ConnectTimeout time.Duration

	// ExcerptSize is how many bytes of the response body a Result keeps.
	// At most MaxResponseRead. Defaults to ExcerptSizeDefault (4 KiB).
	ExcerptSize int

	// MaxIdleConnsPerHost is how many idle keep-alive connections are kept
	// per receiver (host and port), in the shared transport and in each
	// webhook's own TLS transport. Set it to at least the number of
	// attempts that may be under way at once to one host (the process's
	// workers): a connection finishing beyond it is closed, so every
	// attempt over the limit opens a new connection (and, for HTTPS, a new
	// TLS handshake). It bounds idle connections only, never those in
	// use, and a host keeps only as many as it had in use at once.
	// Defaults to MaxIdleConnsPerHostDefault (400).
	MaxIdleConnsPerHost int

	// MaxResponseRead is how many bytes of the response body are read at
	// most; the connection is closed if there are more. Defaults to
	// MaxResponseReadDefault (64 KiB).
	MaxResponseRead int64

	// Resolver resolves host names. Defaults to net.DefaultResolver. The
	// policy is applied to the addresses it returns when they are dialled.
	Resolver *net.Resolver

	// Timeout bounds a whole attempt: resolving, connecting, the TLS
	// handshake, sending, and receiving the status line and the body.
	// Defaults to TimeoutDefault (10s).
	Timeout time.Duration

	// TLSConfig is the base TLS configuration, for tests that need custom
	// roots. Certificates are always verified (InsecureSkipVerify is
	// refused) and the minimum version is raised to TLS 1.2. Defaults to
	// the system roots.
	TLSConfig *tls.Config

	// TLSHandshakeTimeout bounds the TLS handshake. Defaults to
	// TLSHandshakeTimeoutDefault (5s).
	TLSHandshakeTimeout time.Duration

	// UserAgent is sent unless the request headers have one. Defaults to
	// UserAgentDefault ("Mono-Webhooks/dev"); set it to
	// "Mono-Webhooks/<version>".
	UserAgent string

	// EgressProxy, when set, is an HTTP CONNECT proxy (WEBHOOKD_EGRESS_PROXY)
	// every connection goes through: the client resolves and checks the
	// destination itself and asks the proxy to CONNECT to the checked IP
	// (see egress.go). Only the proxy's own address is exempt from the
	// policy. Defaults to none: connections go straight out.
	EgressProxy *url.URL

	// MaxTLSTransports bounds how many per-webhook TLS configurations
	// (client certificate, CA bundle) keep a transport and session cache
	// of their own. Defaults to MaxTLSTransportsDefault (1024).
	MaxTLSTransports int
}

// WithDefaults returns a copy of the configuration with every zero field set
// to its default and ConnectTimeout capped at Timeout. A nil receiver gives
// the defaults.
func (c *ClientConfig) WithDefaults() *ClientConfig {
	cfg := ClientConfig{}
	if c != nil {
		cfg = *c
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = TimeoutDefault
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeoutDefault
	}
	cfg.ConnectTimeout = min(cfg.ConnectTimeout, cfg.Timeout)
	if cfg.TLSHandshakeTimeout == 0 {
		cfg.TLSHandshakeTimeout = TLSHandshakeTimeoutDefault
	}
	if cfg.MaxResponseRead == 0 {
		cfg.MaxResponseRead = MaxResponseReadDefault
	}
	if cfg.ExcerptSize == 0 {
		cfg.ExcerptSize = min(ExcerptSizeDefault, int(max(cfg.MaxResponseRead, 0)))
	}
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = MaxIdleConnsPerHostDefault
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = UserAgentDefault
	}
	if cfg.MaxTLSTransports == 0 {
		cfg.MaxTLSTransports = MaxTLSTransportsDefault
	}
	return &cfg
}

// validate checks a configuration that has its defaults applied.
func (c *ClientConfig) validate() error {
	switch {
	case c.Timeout < 0:
		return errors.New("ClientConfig.Timeout must not be negative")
	case c.ConnectTimeout < 0:
		return errors.New("ClientConfig.ConnectTimeout must not be negative")
	case c.TLSHandshakeTimeout < 0:
		return errors.New("ClientConfig.TLSHandshakeTimeout must not be negative")
	case c.MaxResponseRead < 0:
		return errors.New("ClientConfig.MaxResponseRead must not be negative")
	case c.ExcerptSize < 0:
		return errors.New("ClientConfig.ExcerptSize must not be negative")
	case int64(c.ExcerptSize) > c.MaxResponseRead:
		return fmt.Errorf("ClientConfig.ExcerptSize (%d) must not exceed ClientConfig.MaxResponseRead (%d)", c.ExcerptSize, c.MaxResponseRead)
	case c.MaxIdleConnsPerHost < 0:
		return errors.New("ClientConfig.MaxIdleConnsPerHost must not be negative")
	case c.TLSConfig != nil && c.TLSConfig.InsecureSkipVerify:
		return errors.New("ClientConfig.TLSConfig.InsecureSkipVerify is not allowed: certificates are always verified")
	case c.MaxTLSTransports < 0:
		return errors.New("ClientConfig.MaxTLSTransports must not be negative")
	case c.EgressProxy != nil:
		if _, err := ParseEgressProxy(c.EgressProxy.String()); err != nil {
			return fmt.Errorf("ClientConfig.EgressProxy %w", err)
		}
	}
	return nil
}

// Client posts webhooks. It never uses a proxy, never follows a redirect,
// refuses at dial time every address its Policy refuses (so DNS rebinding
// can't reach a private address), verifies TLS, bounds every phase with a
// timeout and reads a bounded part of the response. It keeps idle
// connections per receiver and negotiates HTTP/2 where the receiver offers
// it. A Client is safe for concurrent use.
type Client struct {
	cfg        *ClientConfig
	httpClient *http.Client
	policy     *Policy
	transport  *http.Transport
	urls       urlVerdicts
	tls        *tlsTransports // per-webhook TLS configurations (mtls.go)
	oauth      oauthTokens    // OAuth2 access tokens per webhook (oauth.go)
}

// urlVerdicts remembers ValidateURL's answer per URL: the policy is the
// client's own copy and never changes, so a URL's verdict doesn't either,
// and validating (IDNA, address parsing) on every attempt is measurable at
// thousands of attempts a second. The dial-time check still runs on every
// connection. Bounded: forgotten wholesale at urlVerdictsMax entries.
type urlVerdicts struct {
	mu sync.RWMutex
	m  map[string]urlVerdict
}

type urlVerdict struct {
	normalized string
	err        error
}

const urlVerdictsMax = 10000

func (c *Client) validateURL(rawURL string) (string, error) {
	c.urls.mu.RLock()
	v, ok := c.urls.m[rawURL]
	c.urls.mu.RUnlock()
	if ok {
		return v.normalized, v.err
	}
	v.normalized, v.err = c.policy.ValidateURL(rawURL)
	c.urls.mu.Lock()
	if c.urls.m == nil || len(c.urls.m) >= urlVerdictsMax {
		c.urls.m = make(map[string]urlVerdict)
	}
	c.urls.m[rawURL] = v
	c.urls.mu.Unlock()
	return v.normalized, v.err
}

// NewClient returns a Client that sends where policy allows. A nil policy
// allows public addresses only; a nil cfg means the defaults. The policy is
// copied.
func NewClient(policy *Policy, cfg *ClientConfig) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("error validating client config: %w", err)
	}

	p := &Policy{}
	if policy != nil {
		p.AllowPrivate = policy.AllowPrivate
		p.AllowedCIDRs = append([]netip.Prefix(nil), policy.AllowedCIDRs...)
	}

	tlsConfig := &tls.Config{}
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	tlsConfig.MinVersion = max(tlsConfig.MinVersion, tls.VersionTLS12)
	if tlsConfig.ClientSessionCache == nil {
		// No client certificate here, so a session is the receiver's
		// alone to share between webhooks.
		tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	}

	c := &Client{cfg: cfg, policy: p}
	dialer := &net.Dialer{
		ControlContext: c.control,
		KeepAlive:      tcpKeepAlive,
		Resolver:       cfg.Resolver,
		Timeout:        cfg.ConnectTimeout,
	}
	dial := dialer.DialContext
	if cfg.EgressProxy != nil {
		// Only the proxy is dialled; the destination is checked before
		// the proxy is asked to CONNECT to it (egress.go).
		proxyDialer := &net.Dialer{KeepAlive: tcpKeepAlive, Resolver: cfg.Resolver, Timeout: cfg.ConnectTimeout}
		dial = (&egressDialer{proxy: cfg.EgressProxy, policy: p, resolver: cfg.Resolver, dialer: proxyDialer, timeout: cfg.ConnectTimeout}).dial
	}
	c.transport = &http.Transport{
		DialContext:            dial,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
		IdleConnTimeout:        idleConnTimeout,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		Proxy:                  nil,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
	}
	c.httpClient = &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     c.transport,
	}
	c.tls = newTLSTransports(c.transport, cfg.MaxTLSTransports)
	c.oauth.now = time.Now
	return c, nil
}

// CloseIdleConnections closes the keep-alive connections not in use.
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
	c.tls.closeIdle()
}

// control runs after a socket is created and before it connects: it refuses
// the address the policy refuses, whatever host name led to it.
func (c *Client) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("error dialing over %s: only TCP is allowed: %w", network, ErrBlockedAddress)
	}
	addrPort, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("error parsing dialled address: %w", ErrBlockedAddress)
	}
	return c.policy.CheckAddr(addrPort.Addr())
}

// Result is the outcome of one attempt.
type Result struct {
	// StatusCode is the response's status code, 0 if there was no response.
	StatusCode int

	// ErrorKind is "" when the receiver answered 2xx, otherwise one of the
	// ErrorKind constants.
	ErrorKind string

	// ErrorMessage says what went wrong, "" on success. It never contains
	// any part of the URL (customers put tokens in query strings), nor the
	// address dialled. For ErrorKindBlockedAddress it is always
	// BlockedMessage: see BlockedReason.
	ErrorMessage string

	// ResponseExcerpt is the first ExcerptSize bytes of the response body,
	// nil if there was no response or no body. It is arbitrary bytes.
	ResponseExcerpt []byte

	// Duration is how long the attempt took, from the call to Post until
	// the body had been read.
	Duration time.Duration

	// RetryAfter is what a 429 or 503 answer's Retry-After header asked
	// for (delay-seconds, or an HTTP date measured from the answer), 0 when
	// it gave none, another status, or a value that can't be read.
	RetryAfter time.Duration

	// blockedReason is what BlockedReason returns.
	blockedReason string
}

// BlockedMessage is the ErrorMessage of every attempt of kind
// ErrorKindBlockedAddress. It says no more, whatever the address: the
// message is stored with the attempt and shown to the account (the test
// send's answer, the deliveries API, the dashboard), and naming the range a
// host name resolved to would let an account map the internal network with
// test sends.
const BlockedMessage = "the address is not allowed: " + publicInternet

// BlockedReason says, for an attempt of kind ErrorKindBlockedAddress, why
// the policy refused it: the address a host name resolved to and its range
// ("the host resolved to 10.1.2.3, a private network address
// (10.0.0.0/8)"), or what is wrong with a host given as an address. It is
// "" for any other attempt. It names no part of the URL but is meant for
// the server log only, never for the account (see BlockedMessage).
func (r *Result) BlockedReason() string { return r.blockedReason }

// blockedResult is the Result of an attempt the policy refused.
func blockedResult(reason string) *Result {
	return &Result{ErrorKind: ErrorKindBlockedAddress, ErrorMessage: BlockedMessage, blockedReason: reason}
}

// Succeeded reports whether the receiver answered with a 2xx status line.
// What happened to the body after it does not matter.
func (r *Result) Succeeded() bool {
	return r.ErrorKind == "" && r.StatusCode >= 200 && r.StatusCode <= 299
}

// errAttemptTimeout is the cause of an attempt's context when its Timeout
// passes.
var errAttemptTimeout = errors.New("attempt timed out")

// Post sends body to rawURL with the given headers and reports the outcome.
// Content-Type (application/json) and User-Agent are set unless header has
// them. rawURL is checked with the client's policy first; every address
// dialled is checked again. The whole attempt is bounded by the configured
// Timeout and by ctx. Post never returns nil.
func (c *Client) Post(ctx context.Context, rawURL string, header http.Header, body []byte) *Result {
	return c.PostWith(ctx, rawURL, header, body, nil)
}

// PostWith is Post with a webhook's own settings (opts may be nil): its
// TLS configuration, which takes a transport of its own, and its
// authorization.
func (c *Client) PostWith(ctx context.Context, rawURL string, header http.Header, body []byte, opts *PostOptions) *Result {
	start := time.Now()
	result := c.post(ctx, rawURL, header, body, opts)
	result.Duration = time.Since(start)
	return result
}

func (c *Client) post(ctx context.Context, rawURL string, header http.Header, body []byte, opts *PostOptions) *Result {
	normalized, err := c.validateURL(rawURL)
	if err != nil {
		return urlErrorResult(err)
	}
	httpClient := c.httpClient
	var t *tlsTransport
	switch {
	case opts == nil:
	case !opts.TLS.Empty():
		t = c.tls.get(opts.TLS)
	case opts.TLSRef != nil:
		var res *Result
		if t, res = c.tls.getRef(opts.TLSRef); res != nil {
			return res
		}
	}
	if t != nil {
		switch {
		case t.err != nil:
			return &Result{ErrorKind: ErrorKindTLS, ErrorMessage: t.err.Error()}
		case !t.notAfter.IsZero() && !time.Now().Before(t.notAfter):
			return &Result{ErrorKind: ErrorKindClientCertificateExpired,
				ErrorMessage: "the webhook's client certificate expired at " + t.notAfter.UTC().Format(time.RFC3339) + "; nothing was sent: upload a new one"}
		}
		httpClient = t.client
	}

	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, errAttemptTimeout)
	defer cancel()

	trace := &attemptTrace{}
	ctx = httptrace.WithClientTrace(ctx, trace.clientTrace())

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, normalized, bytes.NewReader(body))
	if err != nil {
		return &Result{ErrorKind: ErrorKindInvalidURL, ErrorMessage: "the webhook URL is not valid: the request could not be built"}
	}
	if header != nil {
		req.Header = header.Clone()
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}

	if opts != nil && opts.Authorize != nil {
		if res := opts.Authorize(req, false); res != nil {
			return res
		}
	}
	resp, err := httpClient.Do(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && opts != nil && opts.Authorize != nil && req.GetBody != nil {
		// A token the receiver no longer takes: refresh it once and
		// retry within the same attempt.
		retry := req.Clone(ctx)
		if retry.Body, err = req.GetBody(); err == nil {
			res := opts.Authorize(retry, true)
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, c.cfg.MaxResponseRead))
			resp.Body.Close()
			if res != nil {
				return res // no new token: the token endpoint's failure
			}
			resp, err = httpClient.Do(retry)
		}
	}
	if err != nil {
		if reason, ok := dialBlockedReason(err); ok {
			return blockedResult(reason)
		}
		scrub := func(text string) string { return redact(text, rawURL, normalized) }
		kind, message := c.classify(ctx, err, trace, scrub)
		return &Result{ErrorKind: kind, ErrorMessage: message}
	}
	defer resp.Body.Close()

	result := &Result{StatusCode: resp.StatusCode}
	// The status line decides; a failure reading the body changes nothing.
	data, _ := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseRead))
	if n := min(len(data), c.cfg.ExcerptSize); n > 0 {
		result.ResponseExcerpt = bytes.Clone(data[:n])
	}
	if !result.Succeeded() {
		result.ErrorKind = ErrorKindHTTPStatus
		result.ErrorMessage = statusMessage(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		result.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return result
}

// ParseRetryAfter reads a Retry-After value: delay-seconds, or an HTTP date
// taken relative to now. Anything else, or a time already past, is 0.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*3600))) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// urlErrorResult describes a URL that ValidateURL refused.
func urlErrorResult(err error) *Result {
	var urlErr *URLError
	if !errors.As(err, &urlErr) {
		return &Result{ErrorKind: ErrorKindInvalidURL, ErrorMessage: "the webhook URL is not valid"}
	}
	switch urlErr.Code {
	case URLErrorCodeForbiddenHost, URLErrorCodePrivateAddress:
		return blockedResult(urlErr.detail)
	}
	return &Result{ErrorKind: ErrorKindInvalidURL, ErrorMessage: "the webhook URL is not valid: " + urlErr.detail}
}

// statusMessage describes a non-2xx status.
func statusMessage(code int) string {
	msg := fmt.Sprintf("the receiver answered with status %d", code)
	if text := http.StatusText(code); text != "" {
		msg = fmt.Sprintf("the receiver answered with status %d %s", code, text)
	}
	if code >= 300 && code <= 399 {
		msg += " (redirects are not followed)"
	}
	return msg
}

// dialBlockedReason reports whether the error of http.Client.Do is the
// policy refusing a dial (the dialer's control function), and if so says
// why, for Result.BlockedReason.
func dialBlockedReason(err error) (string, bool) {
	var blocked *BlockedAddressError
	if errors.As(err, &blocked) {
		return fmt.Sprintf("the host resolved to %s, %s", blocked.Addr, blocked.Reason), true
	}
	if errors.Is(err, ErrBlockedAddress) {
		return errorText(err), true
	}
	return "", false
}

// classify turns the error of http.Client.Do, other than a dial the policy
// refused, into an error kind and a message that names no part of the URL
// and no address. Text taken from an error goes through scrub.
func (c *Client) classify(ctx context.Context, err error, trace *attemptTrace, scrub func(string) string) (string, string) {
	phase := trace.phase()

	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, errAttemptTimeout):
			return ErrorKindTimeout, fmt.Sprintf("%s within the timeout of %s", phase.timeoutMessage(), c.cfg.Timeout)
		case errors.Is(cause, context.DeadlineExceeded):
			return ErrorKindTimeout, phase.timeoutMessage() + " before the attempt's deadline"
		}
		return ErrorKindCanceled, "the attempt was canceled " + phase.String()
	}

	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		switch {
		case dnsErr.IsNotFound:
			return ErrorKindDNS, "the webhook host name could not be resolved: no such host"
		case dnsErr.IsTimeout:
			return ErrorKindDNS, "the webhook host name could not be resolved: the DNS lookup timed out"
		}
		return ErrorKindDNS, "the webhook host name could not be resolved: " + scrub(dnsReason(dnsErr.Err))
	}

	if kind, message, ok := proxyErrorKind(err); ok {
		return kind, scrub(message)
	}

	if message, ok := tlsMessage(err, scrub); ok {
		return ErrorKindTLS, "the TLS handshake failed: " + message
	}
	if message, ok := remoteTLSAlert(err); ok {
		return ErrorKindTLS, message
	}

	var netErr net.Error
	if (errors.As(err, &netErr) && netErr.Timeout()) || errors.Is(err, os.ErrDeadlineExceeded) {
		switch phase {
		case phaseConnecting:
			return ErrorKindTimeout, fmt.Sprintf("could not connect within %s", c.cfg.ConnectTimeout)
		case phaseTLSHandshake:
			return ErrorKindTimeout, fmt.Sprintf("the TLS handshake did not complete within %s", c.cfg.TLSHandshakeTimeout)
		}
		return ErrorKindTimeout, phase.timeoutMessage()
	}

	if trace.tlsFailed() {
		return ErrorKindTLS, "the TLS handshake failed: " + scrub(errorText(err))
	}

	// A reset or abort once the connection is up (sending the request or
	// waiting for the answer) is a network failure, not a failure to connect.
	if phase >= phaseSending {
		for _, errno := range []syscall.Errno{syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE} {
			if errors.Is(err, errno) {
				return ErrorKindNetwork, errno.Error() + " " + phase.String()
			}
		}
	}
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENETDOWN,
	} {
		if errors.Is(err, errno) {
			return ErrorKindConnect, errno.Error() + " " + phase.String()
		}
	}
	if phase == phaseConnecting {
		return ErrorKindConnect, "could not connect: " + scrub(errorText(err))
	}

	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrorKindNetwork, "the receiver closed the connection " + phase.String()
	}
	return ErrorKindNetwork, scrub(errorText(err)) + " " + phase.String()
}

// dnsReason is the text of a *net.DNSError without the socket addresses a
// failure to reach the DNS server puts in it ("read udp
// 10.0.0.2:41000->10.0.0.53:53: read: connection refused" becomes
// "connection refused"): they are the internal network's, not the
// account's to know.
func dnsReason(text string) string {
	if i := strings.LastIndex(text, ": "); i >= 0 {
		return text[i+len(": "):]
	}
	return text
}

// tlsMessage describes a certificate or TLS protocol error, if err is one.
// Text taken from the error goes through scrub.
func tlsMessage(err error, scrub func(string) string) (string, bool) {
	var (
		hostnameErr  x509.HostnameError
		authorityErr x509.UnknownAuthorityError
		invalidErr   x509.CertificateInvalidError
		recordErr    tls.RecordHeaderError
		alertErr     tls.AlertError
		verifyErr    *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &hostnameErr):
		return "the certificate is not valid for the webhook host", true
	case errors.As(err, &authorityErr):
		return "the certificate is signed by an unknown authority", true
	case errors.As(err, &invalidErr):
		return scrub(invalidErr.Error()), true
	case errors.As(err, &recordErr):
		return "the receiver does not speak TLS on this port", true
	case errors.As(err, &alertErr):
		return "the receiver sent the alert: " + alertErr.Error(), true
	case errors.As(err, &verifyErr):
		return "the certificate could not be verified", true
	}
	return "", false
}

// errorText returns the innermost useful text of err, without the URL
// (*url.Error) and without addresses (*net.OpError).
func errorText(err error) string {
	for {
		var urlErr *url.Error
		var opErr *net.OpError
		switch {
		case errors.As(err, &urlErr):
			err = urlErr.Err
		case errors.As(err, &opErr):
			return opErr.Op + ": " + opErr.Err.Error()
		default:
			return err.Error()
		}
	}
}

// redact removes from text taken from an error anything that looks like a
// part of the URLs: the messages classify builds name no part of the URL, but
// the standard library's error texts might.
func redact(message string, urls ...string) string {
	var parts []string
	for _, raw := range urls {
		parts = append(parts, raw)
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		parts = append(parts, u.Host, u.Hostname(), u.RawQuery, u.EscapedPath(), u.Path)
		parts = append(parts, strings.Split(u.Path, "/")...)
		for key, values := range u.Query() {
			parts = append(parts, key)
			parts = append(parts, values...)
		}
	}
	// Longest first, so a whole URL goes before its host.
	slices.SortFunc(parts, func(a, b string) int { return len(b) - len(a) })
	for _, part := range parts {
		// Parts shorter than 4 bytes ("/", "v1", "1") would mangle words
		// and carry no secret.
		if len(part) >= 4 && strings.Contains(message, part) {
			message = strings.ReplaceAll(message, part, "[redacted]")
		}
	}
	return message
}

// phase is how far an attempt got.
type phase int

const (
	phaseStarting phase = iota
	phaseResolving
	phaseConnecting
	phaseTLSHandshake
	phaseSending
	phaseWaiting
)

// String describes the phase as the end of a sentence.
func (p phase) String() string {
	switch p {
	case phaseStarting:
		return "before it started"
	case phaseResolving:
		return "while resolving the host name"
	case phaseConnecting:
		return "while connecting"
	case phaseTLSHandshake:
		return "during the TLS handshake"
	case phaseSending:
		return "while sending the request"
	}
	return "while waiting for the response"
}

// timeoutMessage says what didn't finish in time.
func (p phase) timeoutMessage() string {
	switch p {
	case phaseStarting:
		return "the attempt did not start"
	case phaseResolving:
		return "the host name was not resolved"
	case phaseConnecting:
		return "the connection was not established"
	case phaseTLSHandshake:
		return "the TLS handshake did not complete"
	case phaseSending:
		return "the request was not sent"
	}
	return "the receiver did not answer"
}

// attemptTrace records how far an attempt got. Its hooks may run on other
// goroutines.
type attemptTrace struct {
	mu         sync.Mutex
	resolving  bool
	connecting bool
	connected  bool
	inTLS      bool
	tlsErr     bool
	gotConn    bool
	wrote      bool
}

func (t *attemptTrace) clientTrace() *httptrace.ClientTrace {
	set := func(f func()) {
		t.mu.Lock()
		defer t.mu.Unlock()
		f()
	}
	return &httptrace.ClientTrace{
		DNSStart:     func(httptrace.DNSStartInfo) { set(func() { t.resolving = true }) },
		ConnectStart: func(string, string) { set(func() { t.connecting = true }) },
		ConnectDone: func(_, _ string, err error) {
			set(func() { t.connected = t.connected || err == nil })
		},
		TLSHandshakeStart: func() { set(func() { t.inTLS = true }) },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			set(func() { t.inTLS, t.tlsErr = false, err != nil })
		},
		GotConn:      func(httptrace.GotConnInfo) { set(func() { t.gotConn = true }) },
		WroteRequest: func(httptrace.WroteRequestInfo) { set(func() { t.wrote = true }) },
	}
}

func (t *attemptTrace) phase() phase {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.wrote:
		return phaseWaiting
	case t.gotConn:
		return phaseSending
	case t.inTLS, t.connected:
		return phaseTLSHandshake
	case t.connecting:
		return phaseConnecting
	case t.resolving:
		return phaseResolving
	}
	return phaseStarting
}

func (t *attemptTrace) tlsFailed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tlsErr
}
