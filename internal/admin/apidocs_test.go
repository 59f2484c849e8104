package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The embedded page renders this openapi.json: the definition Redoc
// hydrates is the document itself, so editing openapi.json without `make
// docs` fails here, without npm (`make docs-check` also catches a changed
// renderer or option).
func TestAPIDocsEmbedded(t *testing.T) {
	t.Parallel()

	require.True(t, bytes.HasPrefix(apiDocs, []byte("<!DOCTYPE html>")), "internal/admin/apidocs/index.html is not the rendered page: run `make docs`")
	const marker = "const __redoc_definition = "
	_, rest, ok := bytes.Cut(apiDocs, []byte(marker))
	require.True(t, ok, "internal/admin/apidocs/index.html has no %q: run `make docs`", marker)
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	var rendered, doc any
	require.NoError(t, json.Unmarshal(bytes.TrimSuffix(bytes.TrimSpace(line), []byte(";")), &rendered))
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	require.Equal(t, doc, rendered, "internal/admin/apidocs/index.html is stale against internal/admin/openapi.json: run `make docs`")

	for path := range parseOpenAPI(t).Paths {
		require.Contains(t, string(apiDocs), `"`+path+`"`)
	}

	// Nothing is loaded from another origin (the CSP would refuse it
	// anyway): no src or href to one but the attribution link, and no
	// Redocly logo from its CDN (make docs drops it).
	for _, m := range regexp.MustCompile(`(?i)\b(src|href)\s*=\s*["']?(https?:)?//[^"'\s>]*`).FindAllString(string(apiDocs), -1) {
		require.Equal(t, `href="https://redocly.com/redoc/`, m)
	}
	require.NotContains(t, string(apiDocs), "cdn.redoc.ly")
}

// Every operation shows an example of its request body and of each answer
// that has one, its error answers included.
func TestOpenAPIExamples(t *testing.T) {
	t.Parallel()

	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody *struct {
				Content map[string]json.RawMessage `json:"content"`
			} `json:"requestBody"`
			Responses map[string]struct {
				Ref     string                     `json:"$ref"`
				Content map[string]json.RawMessage `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
		Components struct {
			Responses map[string]struct {
				Content map[string]json.RawMessage `json:"content"`
			} `json:"responses"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	hasExample := func(t *testing.T, where string, content map[string]json.RawMessage) {
		t.Helper()
		for mediaType, raw := range content {
			var media struct {
				Example  json.RawMessage            `json:"example"`
				Examples map[string]json.RawMessage `json:"examples"`
			}
			require.NoError(t, json.Unmarshal(raw, &media))
			require.True(t, media.Example != nil || len(media.Examples) > 0, "%s %s: no example", where, mediaType)
		}
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + path
			if op.RequestBody != nil {
				hasExample(t, key+" request", op.RequestBody.Content)
			}
			for status, resp := range op.Responses {
				content := resp.Content
				if name, ok := strings.CutPrefix(resp.Ref, "#/components/responses/"); ok {
					content = doc.Components.Responses[name].Content
				}
				hasExample(t, key+" "+status, content)
			}
		}
	}
}

// GET /docs is the page, without a key, under its own CSP, which allows
// each of its inline scripts by hash and nothing from elsewhere.
func TestServeDocs(t *testing.T) {
	t.Parallel()

	rec := httptest.NewRecorder()
	(&API{}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	require.Equal(t, apiDocs, rec.Body.Bytes())

	csp := rec.Header().Get("Content-Security-Policy")
	require.Equal(t, apiDocsCSP, csp)
	for _, directive := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		require.Contains(t, csp, directive)
	}
	require.NotContains(t, csp, "unsafe-eval")
	require.NotContains(t, csp, "http")
	script := regexp.MustCompile(`script-src ([^;]*)`).FindStringSubmatch(csp)[1]
	require.NotContains(t, script, "unsafe-inline")
	require.Len(t, strings.Fields(script), bytes.Count(apiDocs, []byte("</script>")))
}

// scriptHashes reads scripts as a browser does: a script's text ends at
// its first </script>, whatever it holds.
func TestScriptHashes(t *testing.T) {
	t.Parallel()

	page := []byte(`<html><head><script>let a = "<b>";</script><style>p{}</style></head>` +
		`<body><script type="module">x()</script><p>text</p><script src="/x.js"></script></body></html>`)
	require.Equal(t, []string{
		"'sha256-Yec60kKRbfUEVY+af2er7srYeGCy7INO1VppjnXhVdM='", // let a = "<b>";
		"'sha256-D6IGS8VMvCoyaR/l0h9tERrBTATY01CoPS7l6xDv0kI='", // x()
	}, scriptHashes(page))
}
