// Package docs_test checks that webhookd's documentation stays true: every
// relative link in README.md, BENCHMARKS.md, RELIABILITY.md and docs/*.md
// resolves (links_test.go), and every shell example in docs/*.md runs
// against a real webhookd (examples_test.go).
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// repoRoot is the repository, relative to this package's directory.
const repoRoot = ".."

// pages are the Markdown files whose links are checked, relative to the
// repository root.
func pages(t *testing.T) []string {
	t.Helper()
	guides, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, guides, "docs/*.md: no guides found")
	out := []string{"README.md", "BENCHMARKS.md", "RELIABILITY.md"}
	for _, g := range guides {
		rel, err := filepath.Rel(repoRoot, g)
		require.NoError(t, err)
		out = append(out, rel)
	}
	return out
}

// fence is one fenced code block of a Markdown page.
type fence struct {
	lang  string // the info string's first word: sh, json, go, …
	line  int    // 1-based line of the opening fence
	body  string // the lines between the fences, indentation of the fence removed
	first string // the first line of body, for messages and the allow-list
}

var fenceRE = regexp.MustCompile("^( *)(```+|~~~+)(.*)$")

// parse splits a Markdown page into its prose lines (code blocks blanked,
// so line numbers still match) and its fenced code blocks.
func parse(text string) (prose []string, fences []fence) {
	lines := strings.Split(text, "\n")
	prose = make([]string, len(lines))
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			prose[i] = lines[i]
			continue
		}
		indent, marker := len(m[1]), m[2]
		f := fence{line: i + 1}
		if fields := strings.Fields(m[3]); len(fields) > 0 {
			f.lang = fields[0]
		}
		var body []string
		j := i + 1
		for ; j < len(lines); j++ {
			if strings.HasPrefix(strings.TrimLeft(lines[j], " "), marker) && strings.TrimSpace(strings.TrimLeft(lines[j], " ")) == marker {
				break
			}
			l := lines[j]
			for k := 0; k < indent && strings.HasPrefix(l, " "); k++ {
				l = l[1:]
			}
			body = append(body, l)
		}
		f.body = strings.Join(body, "\n") + "\n"
		if len(body) > 0 {
			f.first = body[0]
		}
		fences = append(fences, f)
		i = j
	}
	return prose, fences
}

var (
	// inlineCode is a code span; links inside one are not links.
	inlineCode = regexp.MustCompile("`[^`]*`")
	// mdLink is [text](target) or ![alt](target), target without spaces.
	mdLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// htmlLink is src="…" or href="…" in inline HTML.
	htmlLink = regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	heading  = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	// headingMarkup is what GitHub's renderer takes out of a heading's text
	// before it makes the slug: links keep their text, code spans their
	// content, emphasis markers go.
	headingLink = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// slug is GitHub's anchor for a heading: lowercase, punctuation removed
// (letters, digits, spaces, hyphens and underscores stay), spaces as
// hyphens.
func slug(text string) string {
	text = headingLink.ReplaceAllString(text, "$1")
	text = strings.NewReplacer("`", "", "**", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '_', r == '-':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// anchors are the heading slugs of a page, with GitHub's -1, -2 … for
// repeated headings.
func anchors(prose []string) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	for _, l := range prose {
		m := heading.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		s := slug(m[2])
		if n := seen[s]; n > 0 {
			out[s+"-"+itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// link is one relative link found on a page.
type link struct {
	line   int
	target string
}

func links(prose []string) []link {
	var out []link
	for i, l := range prose {
		l = inlineCode.ReplaceAllString(l, "")
		for _, re := range []*regexp.Regexp{mdLink, htmlLink} {
			for _, m := range re.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				out = append(out, link{line: i + 1, target: target})
			}
		}
	}
	return out
}

// Every relative link of the documentation points at a file or directory
// that exists, and every #anchor at a heading of its page.
func TestLinks(t *testing.T) {
	t.Parallel()

	headings := map[string]map[string]bool{} // page (cleaned, from the root) → anchors
	anchorsOf := func(page string) map[string]bool {
		if a, ok := headings[page]; ok {
			return a
		}
		raw, err := os.ReadFile(filepath.Join(repoRoot, page))
		require.NoError(t, err)
		prose, _ := parse(string(raw))
		headings[page] = anchors(prose)
		return headings[page]
	}

	checked := 0
	for _, page := range pages(t) {
		raw, err := os.ReadFile(filepath.Join(repoRoot, page))
		require.NoError(t, err, "%s is linked from the README and must exist", page)
		prose, _ := parse(string(raw))
		for _, l := range links(prose) {
			checked++
			where := page + ":" + itoa(l.line)
			path, frag, _ := strings.Cut(l.target, "#")
			target := page
			if path != "" {
				target = filepath.Clean(filepath.Join(filepath.Dir(page), path))
				if strings.HasPrefix(target, "..") {
					t.Errorf("%s: link %q leaves the repository", where, l.target)
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot, target)); err != nil {
					t.Errorf("%s: link %q: %s does not exist", where, l.target, target)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				t.Errorf("%s: link %q: an anchor on a file that is not Markdown", where, l.target)
				continue
			}
			if !anchorsOf(target)[frag] {
				t.Errorf("%s: link %q: %s has no heading with the anchor #%s", where, l.target, target, frag)
			}
		}
	}
	require.Greater(t, checked, 50, "the link parser found almost no links; is it broken?")
}

// The slug function makes GitHub's anchors.
func TestSlug(t *testing.T) {
	t.Parallel()

	for heading, want := range map[string]string{
		"Quick start": "quick-start",
		"Send a test event: `POST /v1/webhooks/{id}/test`":                           "send-a-test-event-post-v1webhooksidtest",
		"Isolation: one slow endpoint can't take every worker":                       "isolation-one-slow-endpoint-cant-take-every-worker",
		"Test receivers listen on 127.0.0.2":                                         "test-receivers-listen-on-127002",
		"The Go client (package `client`)":                                           "the-go-client-package-client",
		"`webhookd receiver` (the demo receiver)":                                    "webhookd-receiver-the-demo-receiver",
		"Look at an event: `GET /v1/events/{id}`, `GET /v1/events?idempotency_key=`": "look-at-an-event-get-v1eventsid-get-v1eventsidempotency_key",
	} {
		require.Equal(t, want, slug(heading), heading)
	}
	require.True(t, anchors([]string{"## A", "## A", "### B"})["a-1"], "a repeated heading gets -1")
}
