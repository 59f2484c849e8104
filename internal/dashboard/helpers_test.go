package dashboard_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/server"
	"github.com/mono/webhookd/internal/testserver"
	"github.com/mono/webhookd/internal/testwait"
)

// testBundle is one running webhookd (API, workers, dashboard) on its own
// database.
type testBundle struct {
	srv  *testserver.Server
	base string
	pool *pgxpool.Pool
	http *http.Client
}

// start runs webhookd with small pools (several test servers share one
// PostgreSQL) and the retry schedule at 0.0001: ten failed attempts take
// about three seconds.
func start(t *testing.T) *testBundle {
	t.Helper()
	srv := testserver.Start(t, func(c *server.Config) {
		c.RetryScale = 0.0001
		c.DBMaxConns = 8
		c.MaxWorkers = 10
	})
	return &testBundle{srv: srv, base: srv.BaseURL, pool: srv.Pool(), http: &http.Client{Timeout: 10 * time.Second}}
}

// api calls the JSON API with key (the bootstrap admin key when empty) and
// decodes a 2xx answer into out, failing the test on any other status
// than want.
func (b *testBundle) api(t testing.TB, method, path, key, body string, want int, out any) {
	t.Helper()
	if key == "" {
		key = testserver.AdminKey
	}
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
}

type key struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// createKey makes an API key of scope (bound to accountID if not empty).
func (b *testBundle) createKey(t testing.TB, scope, accountID string) *key {
	t.Helper()
	body := map[string]string{"scope": scope}
	if accountID != "" {
		body["account_id"] = accountID
	}
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	var k key
	b.api(t, http.MethodPost, "/v1/keys", "", string(raw), http.StatusCreated, &k)
	return &k
}

type webhook struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	URL       string `json:"url"`
	Secret    string `json:"secret"`
}

func (b *testBundle) createWebhook(t testing.TB, accountID, hookURL string) *webhook {
	t.Helper()
	raw, err := json.Marshal(map[string]string{"account_id": accountID, "url": hookURL})
	require.NoError(t, err)
	var w webhook
	b.api(t, http.MethodPost, "/v1/webhooks", "", string(raw), http.StatusCreated, &w)
	return &w
}

type delivery struct {
	ID           string `json:"id"`
	EventID      string `json:"event_id"`
	WebhookID    string `json:"webhook_id"`
	State        string `json:"state"`
	AttemptCount int    `json:"attempt_count"`
}

// sendEvent enqueues an event for accountID and returns its deliveries.
func (b *testBundle) sendEvent(t *testing.T, accountID, eventType string) []delivery {
	t.Helper()
	var out struct {
		ID         string     `json:"id"`
		Deliveries []delivery `json:"deliveries"`
	}
	body := `{"account_id":"` + accountID + `","type":"` + eventType + `","data":{"amount":240000}}`
	b.api(t, http.MethodPost, "/v1/events", "", body, http.StatusAccepted, &out)
	return out.Deliveries
}

// waitDelivery waits until GET /v1/deliveries/{id} says it is in state.
func (b *testBundle) waitDelivery(t *testing.T, id, state string, timeout time.Duration) *delivery {
	t.Helper()
	var d delivery
	testwait.For(t, timeout, func() (bool, string) {
		d = delivery{}
		b.api(t, http.MethodGet, "/v1/deliveries/"+id, "", "", http.StatusOK, &d)
		return d.State == state, "delivery " + id + " is " + d.State + ", not " + state
	})
	return &d
}

// jobs counts the River jobs of delivery id (a test send and a delivery
// created paused have none: nothing can send them).
func (b *testBundle) jobs(t *testing.T, id string) int {
	t.Helper()
	return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'webhookd.delivery' AND args->>'delivery_id' = $1`, id)
}

func (b *testBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that tests see them.
type browser struct {
	b    *testBundle
	c    *http.Client
	last string // the last page's body
}

func (b *testBundle) browser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{b: b, c: &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (br *browser) do(t *testing.T, req *http.Request) *page {
	t.Helper()
	resp, err := br.c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := &page{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(raw), header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") && (p.status < 300 || p.status >= 400) {
		br.last = p.body
	}
	return p
}

func (br *browser) get(t *testing.T, path string) *page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, br.b.base+path, nil)
	require.NoError(t, err)
	return br.do(t, req)
}

// post sends form to path as a same-origin form submission does.
func (br *browser) post(t *testing.T, path string, form url.Values, header ...string) *page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, br.b.base+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", br.b.base)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return br.do(t, req)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the last page shown.
func (br *browser) csrf(t *testing.T) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(br.last)
	require.NotNil(t, m, "no CSRF token on the last page")
	return html.UnescapeString(m[1])
}

// signIn signs in with key through the form and lands on the Webhooks
// page.
func (br *browser) signIn(t *testing.T, key string) {
	t.Helper()
	p := br.get(t, "/dashboard/signin")
	require.Equal(t, http.StatusOK, p.status)
	p = br.post(t, "/dashboard/signin", url.Values{"csrf": {br.csrf(t)}, "key": {key}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/dashboard/settings/personal/api", p.location)
	p = br.get(t, p.location)
	require.Equal(t, http.StatusOK, p.status)
}

// text is the page's text content, roughly: tags removed, entities
// decoded, white space collapsed.
func text(body string) string {
	body = regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(body)), " ")
}

// elementText is the text of the element with id, or "" if there is none.
func elementText(body, id string) string {
	m := regexp.MustCompile(`<(\w+)[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindStringSubmatchIndex(body)
	if m == nil {
		return ""
	}
	tag := body[m[2]:m[3]]
	rest := body[m[1]:]
	// Elements of the same name nested inside are counted.
	depth, i := 1, 0
	open, closing := regexp.MustCompile(`<`+tag+`[\s>]`), "</"+tag+">"
	for depth > 0 {
		c := strings.Index(rest[i:], closing)
		if c < 0 {
			return ""
		}
		if o := open.FindStringIndex(rest[i:]); o != nil && o[0] < c {
			depth++
			i += o[1]
			continue
		}
		depth--
		i += c + len(closing)
	}
	return text(rest[:i-len(closing)])
}
