package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// view is what every page's template gets: the layout's parts and the
// page's own Data.
type view struct {
	Title string
	// Nav is the main navigation entry to mark current: "settings", "dead".
	Nav    string
	Crumbs []crumb
	// Notice is a success message, Error a page-level error; both are
	// announced to screen readers (role="alert").
	Notice  string
	Error   string
	Session *session
	Data    any
}

type crumb struct{ Label, Href string }

// settingsNav is what the Settings side navigation gets.
type settingsNav struct {
	Current string
	Admin   bool
}

// pages holds one template set per page, each with the layout.
type pages struct {
	byName map[string]*template.Template
}

// staticVersion is a hash of the static files, appended to their URLs so
// that a new binary's CSS and JavaScript are fetched again.
var staticVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(staticFiles, "static", func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := staticFiles.ReadFile(path)
			h.Write([]byte(path))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

var funcs = template.FuncMap{
	"static": func(name string) string { return Prefix + "/static/" + name + "?v=" + staticVersion },
	// when is a time as shown: UTC to the second.
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	// iso is a time for <time datetime>.
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"field": newFilterField,
	// rateText is a key's rate limit in words (internal/dashboard/limits.go).
	"rateText": rateText,
	// nav is the Settings side navigation: the entry current, and whether
	// the admin-only entries are shown.
	"nav": func(current string, s *session) settingsNav {
		return settingsNav{Current: current, Admin: s != nil && s.Admin()}
	},
	"ms": func(d time.Duration) string {
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
	},
}

func parsePages() (*pages, error) {
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/_*.html", name)
		if err != nil {
			return nil, fmt.Errorf("error parsing dashboard template %s: %w", name, err)
		}
		p.byName[base] = t
	}
	return p, nil
}

// render writes page name with v, or a 500 if the template fails (into a
// buffer first, so that a failure never leaves half a page).
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	if v.Session == nil {
		v.Session = sessionFrom(r.Context())
	}
	t, ok := d.pages.byName[name]
	if !ok {
		d.logger.Error("no such dashboard template", zap.String("template", name))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		d.logger.Error("error rendering dashboard page", zap.String("template", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	Heading string
	Message string
	Back    string
}

func (d *Dashboard) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, message, back string) {
	d.render(w, r, status, "error", &view{Title: heading, Data: &errorData{Heading: heading, Message: message, Back: back}})
}

func (d *Dashboard) notFound(w http.ResponseWriter, r *http.Request) {
	d.errorPage(w, r, http.StatusNotFound, "Not found", "There is no such page, or it belongs to another account.", "")
}

func (d *Dashboard) forbidden(w http.ResponseWriter, r *http.Request) {
	d.errorPage(w, r, http.StatusForbidden, "Request refused",
		"The form was not sent from this dashboard page, or it has expired. Go back, reload the page and try again.", "")
}

func (d *Dashboard) serverError(w http.ResponseWriter, r *http.Request) {
	d.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "An internal error happened; the details are in the server log. Try again.", "")
}

// apiFailed answers an error from the API that the page can't show beside
// a field: not found, refused, or internal (logged, never shown).
func (d *Dashboard) apiFailed(w http.ResponseWriter, r *http.Request, e *apiError, back string) {
	switch {
	case e.Status == http.StatusNotFound:
		d.notFound(w, r)
	case e.Status >= 500:
		d.logger.Error("dashboard API call failed", zap.Int("status", e.Status), zap.String("code", e.Code), zap.String("error", e.Message))
		d.serverError(w, r)
	default:
		if e.RetryAfter != "" {
			// A 429 (the signed-in key over its rate limit) says when.
			w.Header().Set("Retry-After", e.RetryAfter)
		}
		d.errorPage(w, r, e.Status, "Not done", e.Message, back)
	}
}

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}

// filterField is one input of the dead view's filter form.
type filterField struct {
	Name, Label, Value, Error, Placeholder string
}

func newFilterField(name, label string, data *deadData) filterField {
	f := filterField{Name: name, Label: label, Value: data.Filter[name], Error: data.Errors[name]}
	switch name {
	case "created_after", "created_before":
		f.Placeholder = "2026-01-02T15:04:05Z"
	case "event_id":
		f.Placeholder = "evt_…"
	case "webhook_id":
		f.Placeholder = "wh_…"
	}
	return f
}
