package admin

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of every route Handler serves, served
// at GET /v1/openapi.json. TestOpenAPIMatchesRoutes holds it to routes.
//
//go:embed openapi.json
var openAPI []byte

// serveOpenAPI is GET /v1/openapi.json, without auth.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}
