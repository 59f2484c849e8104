package apitype_test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
)

func TestPageMarshalJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		page apitype.Page[apitype.WebhookSecret]
		want string
	}{
		{"LastPage", apitype.Page[apitype.WebhookSecret]{Data: []apitype.WebhookSecret{{Secret: "a"}}}, `{"data":[{"secret":"a"}],"next_cursor":null}`},
		{"NextPage", apitype.Page[apitype.WebhookSecret]{Data: []apitype.WebhookSecret{{Secret: "a"}}, NextCursor: "c"}, `{"data":[{"secret":"a"}],"next_cursor":"c"}`},
		{"Empty", apitype.Page[apitype.WebhookSecret]{}, `{"data":[],"next_cursor":null}`},
		// The API writes <, > and & as they are (SetEscapeHTML(false)); the
		// page must not escape them on its own.
		{"HTML", apitype.Page[apitype.WebhookSecret]{Data: []apitype.WebhookSecret{{Secret: "<&>"}}}, `{"data":[{"secret":"<&>"}],"next_cursor":null}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			require.NoError(t, enc.Encode(tt.page))
			require.Equal(t, tt.want+"\n", b.String())

			var back apitype.Page[apitype.WebhookSecret]
			require.NoError(t, json.Unmarshal([]byte(tt.want), &back))
			require.Equal(t, tt.page.NextCursor, back.NextCursor)
		})
	}
}

// A delivery as listed has no attempts or replays; with them (even none),
// it has both.
func TestDeliveryAttemptsOmitted(t *testing.T) {
	t.Parallel()
	listed, err := json.Marshal(apitype.Delivery{ID: "dlv_1"})
	require.NoError(t, err)
	require.NotContains(t, string(listed), "attempts")
	require.NotContains(t, string(listed), "replays")

	detail, err := json.Marshal(apitype.Delivery{ID: "dlv_1", Attempts: []apitype.Attempt{}, Replays: []apitype.Replay{}})
	require.NoError(t, err)
	require.Contains(t, string(detail), `"attempts":[],"replays":[]`)
}

// apitype imports only the standard library, and client only that,
// apitype, uuid and backoff: a producer importing client pulls in neither pgx, nor
// River, nor any other package of webhookd's.
func TestImports(t *testing.T) {
	t.Parallel()
	for dir, allowed := range map[string][]string{
		".":         nil,
		"../client": {"github.com/mono/webhookd/apitype", "github.com/google/uuid", "github.com/cenkalti/backoff/v4"},
	} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
			require.NoError(t, err)
			for _, imp := range f.Imports {
				path, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				first, _, _ := strings.Cut(path, "/")
				std := !strings.Contains(first, ".")
				require.True(t, std || slices.Contains(allowed, path), "%s imports %s", file, path)
			}
		}
	}
}
