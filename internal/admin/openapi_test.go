package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/engine"
)

// RouteForTest is one entry of Handler's route list, for the tests of
// package admin_test (the auth matrix): Scopes is nil for a route that
// needs no key.
type RouteForTest struct {
	Method, Pattern string
	Scopes          []string
}

// RoutesForTest is Handler's route list, without the handlers.
func RoutesForTest() []RouteForTest {
	var out []RouteForTest
	for _, rt := range (&API{}).routes() {
		out = append(out, RouteForTest{Method: rt.method, Pattern: rt.pattern, Scopes: rt.scopes})
	}
	return out
}

// openAPIDoc is as much of an OpenAPI 3 document as the tests check.
type openAPIDoc struct {
	OpenAPI    string                                 `json:"openapi"`
	Paths      map[string]map[string]openAPIOperation `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Parameters map[string]openAPIParameter `json:"parameters"`
		Schemas    map[string]json.RawMessage  `json:"schemas"`
	} `json:"components"`
}

type openAPIOperation struct {
	OperationID string                 `json:"operationId"`
	Security    *[]map[string][]string `json:"security"`
	Scopes      []string               `json:"x-scopes"`
	Parameters  []openAPIParameter     `json:"parameters"`
	Responses   map[string]struct {
		Ref string `json:"$ref"`
	} `json:"responses"`
}

type openAPIParameter struct {
	Ref    string `json:"$ref"`
	Name   string `json:"name"`
	In     string `json:"in"`
	Schema struct {
		Default *int `json:"default"`
		Maximum *int `json:"maximum"`
	} `json:"schema"`
}

func parseOpenAPI(t *testing.T) *openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "openapi: %q", doc.OpenAPI)
	return &doc
}

// The document describes exactly the routes Handler registers, each with
// the scopes it accepts, its path parameters and its error answers.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()

	doc := parseOpenAPI(t)
	bearer, ok := doc.Components.SecuritySchemes["bearerAuth"]
	require.True(t, ok, "components.securitySchemes.bearerAuth is missing")
	require.Equal(t, "http", bearer.Type)
	require.Equal(t, "bearer", bearer.Scheme)

	// resolve follows a parameter's $ref into components.parameters.
	resolve := func(p openAPIParameter) openAPIParameter {
		name, isRef := strings.CutPrefix(p.Ref, "#/components/parameters/")
		if !isRef {
			return p
		}
		resolved, ok := doc.Components.Parameters[name]
		require.True(t, ok, "no parameter %s", p.Ref)
		return resolved
	}

	registered := map[string]bool{}
	for _, rt := range RoutesForTest() {
		key := rt.Method + " " + rt.Pattern
		registered[key] = true
		t.Run(strings.NewReplacer(" /", "_", "/", "_", "{", "", "}", "").Replace(key), func(t *testing.T) {
			op, ok := doc.Paths[rt.Pattern][strings.ToLower(rt.Method)]
			require.True(t, ok, "route %s is registered in Handler but missing from openapi.json", key)
			require.NotEmpty(t, op.OperationID)
			require.NotNil(t, op.Security, "%s: say security explicitly ([] for none)", key)
			if rt.Scopes == nil {
				require.Empty(t, *op.Security, "%s needs no key", key)
				require.Empty(t, op.Scopes)
			} else {
				require.Equal(t, []map[string][]string{{"bearerAuth": {}}}, *op.Security)
				require.Equal(t, rt.Scopes, op.Scopes, "%s: x-scopes", key)
				// 429: the key's rate limits and the failed-key throttle;
				// 503: a database that is away (database_unavailable).
				for _, status := range []string{"401", "403", "429", "503"} {
					require.Contains(t, op.Responses, status, "%s", key)
				}
			}
			require.Contains(t, op.Responses, "500", "%s", key)
			if strings.Contains(rt.Pattern, "{id}") {
				require.Contains(t, op.Responses, "404", "%s", key)
			}

			// Every {name} of the pattern is a documented path parameter.
			var pathParams []string
			for _, p := range op.Parameters {
				if p = resolve(p); p.In == "path" {
					pathParams = append(pathParams, p.Name)
				}
			}
			var want []string
			for _, seg := range strings.Split(rt.Pattern, "/") {
				if name, ok := strings.CutPrefix(seg, "{"); ok {
					want = append(want, strings.TrimSuffix(name, "}"))
				}
			}
			require.ElementsMatch(t, want, pathParams, "%s: path parameters", key)
		})
	}

	for path, ops := range doc.Paths {
		for method := range ops {
			key := strings.ToUpper(method) + " " + path
			require.True(t, registered[key], "openapi.json documents %s, which Handler does not register", key)
		}
	}
}

// Every $ref points at something, and the documented limits are the code's.
func TestOpenAPIReferencesAndLimits(t *testing.T) {
	t.Parallel()

	var tree any
	require.NoError(t, json.Unmarshal(openAPI, &tree))
	var walk func(v any)
	refs := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				require.True(t, strings.HasPrefix(ref, "#/"), "only local $refs: %s", ref)
				var at any = tree //nolint:staticcheck // at walks into other types below
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, ok := at.(map[string]any)
					require.True(t, ok, "$ref %s does not resolve", ref)
					at, ok = m[part]
					require.True(t, ok, "$ref %s does not resolve", ref)
				}
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(tree)
	require.Positive(t, refs)

	doc := parseOpenAPI(t)
	limit := doc.Components.Parameters["Limit"]
	require.Equal(t, LimitDefault, *limit.Schema.Default)
	require.Equal(t, LimitMax, *limit.Schema.Maximum)

	var batch struct {
		Properties struct {
			Events struct {
				MaxItems int `json:"maxItems"`
			} `json:"events"`
		} `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(doc.Components.Schemas["EventBatch"], &batch))
	require.Equal(t, engine.MaxBatchSize, batch.Properties.Events.MaxItems)

	var errShape struct {
		Properties struct {
			Error struct {
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"error"`
		} `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(doc.Components.Schemas["Error"], &errShape))
	require.ElementsMatch(t, []string{"code", "message"}, errShape.Properties.Error.Required)
	require.Len(t, errShape.Properties.Error.Properties, 3)
}

// The served document is the embedded one, without a key.
func TestServeOpenAPI(t *testing.T) {
	t.Parallel()

	rec := httptest.NewRecorder()
	serveOpenAPI(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.Equal(t, openAPI, rec.Body.Bytes())
	require.True(t, slices.ContainsFunc(RoutesForTest(), func(rt RouteForTest) bool {
		return rt.Method == http.MethodGet && rt.Pattern == "/v1/openapi.json" && rt.Scopes == nil
	}), "GET /v1/openapi.json must be registered without auth")
}
