// Package client is a Go client of webhookd's HTTP API for services that
// don't share webhookd's database: typed methods for every route, an
// idempotency key generated for every enqueue unless one is given, and
// bounded retries (with exponential backoff) of network errors, 429 and 5xx
// answers, never of other 4xx answers. A 429 or 503 with Retry-After is
// retried no sooner than it asks (up to RetryMaxInterval), and not at all
// when the context would end first: the error's RetryAfter says when.
//
//	c, err := client.New("https://webhookd.internal", os.Getenv("WEBHOOKD_API_KEY"), nil)
//	ev, err := c.SendEvent(ctx, &client.EventParams{AccountID: "acct_1", Type: "payment.succeeded", Data: payment})
//
// Every method takes a context: cancelling it stops the request and any
// wait before a retry.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults of Config.
const (
	// MaxRetriesDefault is how many times a failed request is retried.
	MaxRetriesDefault = 4
	// TimeoutDefault bounds each attempt of a request.
	TimeoutDefault = 30 * time.Second
	// RetryInitialIntervalDefault is the wait before the first retry; it
	// doubles (with jitter) for each further retry, up to RetryMaxInterval.
	RetryInitialIntervalDefault = 250 * time.Millisecond
	// RetryMaxInterval is the longest wait between two attempts, also when
	// the server asks for a longer one with Retry-After.
	RetryMaxInterval = 10 * time.Second
	// ResponseLimit is the largest response body read.
	ResponseLimit = 32 << 20
)

// Config configures a Client. A nil Config means every default.
type Config struct {
	// HTTPClient sends the requests. Defaults to a client that follows no
	// redirects (the API key must never be sent elsewhere).
	HTTPClient *http.Client
	// MaxRetries is how many times a request is retried after a network
	// error, a 429 or a 5xx. Defaults to MaxRetriesDefault (4); a negative
	// value disables retries.
	MaxRetries int
	// Timeout bounds each attempt (connecting, sending, reading the
	// answer). Defaults to TimeoutDefault (30s).
	Timeout time.Duration
	// RetryInitialInterval is the wait before the first retry. Defaults to
	// RetryInitialIntervalDefault (250ms).
	RetryInitialInterval time.Duration
}

// WithDefaults returns a copy of c (which may be nil) with every unset
// field at its default.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if out.HTTPClient == nil {
		out.HTTPClient = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	switch {
	case out.MaxRetries == 0:
		out.MaxRetries = MaxRetriesDefault
	case out.MaxRetries < 0:
		out.MaxRetries = 0
	}
	if out.Timeout == 0 {
		out.Timeout = TimeoutDefault
	}
	if out.RetryInitialInterval == 0 {
		out.RetryInitialInterval = RetryInitialIntervalDefault
	}
	return out
}

func (c *Config) validate() error {
	if c.Timeout < 0 {
		return errors.New("client: Timeout must not be negative")
	}
	if c.RetryInitialInterval < 0 {
		return errors.New("RetryInitialInterval must not be negative")
	}
	return nil
}

// Client calls one webhookd with one API key. It is safe for concurrent
// use.
type Client struct {
	base   *url.URL
	apiKey string
	cfg    *Config
}

// New returns a client of the webhookd at baseURL (such as
// "http://127.0.0.1:8080") that authenticates with apiKey. apiKey may be
// empty for Health and Ready only.
func New(baseURL, apiKey string, cfg *Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("baseURL %q is not an http or https URL such as http://127.0.0.1:8080", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("baseURL %q must have no query or fragment", baseURL)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	return &Client{base: u, apiKey: apiKey, cfg: cfg}, nil
}

// request is one API call.
type request struct {
	method string
	path   string
	query  url.Values
	body   any
	header http.Header
	// noRetry sends it once.
	noRetry bool
}

// do sends req, retrying it as Config says, and decodes a 2xx answer's
// JSON into out (unless out is nil). It returns the answer's status.
func (c *Client) do(ctx context.Context, req *request, out any) (int, error) {
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return 0, fmt.Errorf("error encoding the %s %s body: %w", req.method, req.path, err)
		}
	}
	var b backoff.BackOff = &backoff.StopBackOff{}
	if !req.noRetry && c.cfg.MaxRetries > 0 {
		exp := backoff.NewExponentialBackOff()
		exp.InitialInterval = c.cfg.RetryInitialInterval
		exp.MaxInterval = RetryMaxInterval
		exp.MaxElapsedTime = 0 // bounded by MaxRetries
		exp.Reset()            // start at InitialInterval
		b = backoff.WithMaxRetries(exp, uint64(c.cfg.MaxRetries))
	}
	b = backoff.WithContext(b, ctx)
	for {
		status, body, retryAfter, err := c.attempt(ctx, req, payload)
		if err == nil {
			if out != nil && status != http.StatusNoContent {
				if err := json.Unmarshal(body, out); err != nil {
					return status, fmt.Errorf("error decoding the answer to %s %s: %w", req.method, req.path, err)
				}
			}
			return status, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return status, err
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return status, err
		}
		// The server's Retry-After (a 429 over a rate limit, a 503 while
		// busy) wins over a shorter backoff, up to RetryMaxInterval; a
		// wait the context would not outlast is not waited for.
		if retryAfter > wait {
			wait = min(retryAfter, RetryMaxInterval)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return status, err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return status, err
		case <-timer.C:
		}
	}
}

// attempt sends req once. A non-2xx answer is an *APIError; anything else
// that fails is a network error (retryable).
func (c *Client) attempt(ctx context.Context, req *request, payload []byte) (status int, body []byte, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := *c.base
	u.Path = c.base.Path + req.path
	u.RawQuery = req.query.Encode()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), rd)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("error making request %s %s: %w", req.method, req.path, err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "webhookd-go-client")
	if payload != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		hr.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.cfg.HTTPClient.Do(hr)
	if err != nil {
		return 0, nil, 0, &networkError{op: req.method + " " + req.path, err: err}
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, ResponseLimit+1))
	if err != nil {
		return resp.StatusCode, nil, 0, &networkError{op: req.method + " " + req.path, err: fmt.Errorf("error reading the answer: %w", err)}
	}
	if len(body) > ResponseLimit {
		return resp.StatusCode, nil, 0, fmt.Errorf("the answer to %s %s is larger than %d bytes", req.method, req.path, ResponseLimit)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, body, 0, nil
	}
	apiErr := newAPIError(resp.StatusCode, body)
	apiErr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	return resp.StatusCode, body, apiErr.RetryAfter, apiErr
}

// networkError is a request that got no complete answer.
type networkError struct {
	op  string
	err error
}

func (e *networkError) Error() string { return fmt.Sprintf("error calling %s: %v", e.op, e.err) }
func (e *networkError) Unwrap() error { return e.err }

// retryable says whether err may go away on its own: a network error, a
// 429 or a 5xx.
func retryable(err error) bool {
	var netErr *networkError
	if errors.As(err, &netErr) {
		return true
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusTooManyRequests || apiErr.Status >= 500
	}
	return false
}

// parseRetryAfter reads a Retry-After header in seconds; 0 when absent or
// in another form.
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// pathID checks that id can go into a path as one segment.
func pathID(what, id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/?#%") {
		return "", fmt.Errorf("%s id %q is not an id", what, id)
	}
	return url.PathEscape(id), nil
}

// Page is one page of a list: Data, and NextCursor to pass as the next
// request's Cursor ("" on the last page).
type Page[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// pageQuery adds the paging parameters to q.
func pageQuery(q url.Values, cursor string, limit int) url.Values {
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}
