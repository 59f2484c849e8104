package admin

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"

	"golang.org/x/net/html"
)

// apiDocs is the API reference, rendered from openapi.json by `make docs`
// (Redoc, through @redocly/cli build-docs; see internal/admin/apidocs) into one
// self-contained page: its scripts, styles and the document are inline, so
// it loads nothing from anywhere. `make docs-check` fails when it is stale.
//
//go:embed apidocs/index.html
var apiDocs []byte

// apiDocsCSP is the Content-Security-Policy of /docs, looser than the
// dashboard's where Redoc needs it and only on this page: its two inline
// scripts, each allowed by its hash (computed here from the embedded page,
// so `make docs` never has to touch Go); inline styles (styled-components
// writes <style> elements at run time and the prerendered markup has style
// attributes); a data: font and data: images. Nothing from another origin,
// no eval, no connections, no forms, no framing.
var apiDocsCSP = "default-src 'none'; script-src " + strings.Join(scriptHashes(apiDocs), " ") +
	"; style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serveDocs is GET /docs, without auth: the API reference page.
func serveDocs(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", apiDocsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(apiDocs)
}

// scriptHashes returns the CSP source ('sha256-...') of each inline script
// of page, in order, as the browser's HTML parser splits them out.
func scriptHashes(page []byte) []string {
	var hashes []string
	z := html.NewTokenizer(bytes.NewReader(page))
	inScript := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if !errors.Is(z.Err(), io.EOF) {
				panic("admin: apidocs/index.html does not parse: " + z.Err().Error())
			}
			return hashes
		case html.StartTagToken:
			name, _ := z.TagName()
			inScript = string(name) == "script"
		case html.TextToken:
			if inScript {
				sum := sha256.Sum256(z.Raw())
				hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
			}
		case html.EndTagToken:
			inScript = false
		}
	}
}
