package store_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/testdb"
)

// staticScan is one static query of the store and how many values the code
// scans from each of its rows.
type staticScan struct {
	where string // file:line of the scan
	query string // the const's name
	sql   string
	scans int
}

// Every static query of the store that the code scans (a named const,
// read with QueryRow(...).Scan, a scanXxx(row) helper, or Query and
// rows.Scan in the same function) returns exactly as many columns as the
// code scans, checked by PostgreSQL describing the statement on the
// migrated schema. This stands in for generated code (sqlc): a column
// added to a SELECT list but not to its Scan, or the other way round, fails
// here rather than at run time.
func TestStaticQueryColumnsMatchScans(t *testing.T) {
	t.Parallel()
	scans := findStaticScans(t)
	require.GreaterOrEqual(t, len(scans), 20, "the parser found too few static queries: is it still reading store?")

	tx := testdb.Tx(t)
	ctx := context.Background()
	for _, s := range scans {
		sd, err := tx.Prepare(ctx, "", s.sql)
		require.NoError(t, err, "%s: %s does not prepare", s.where, s.query)
		require.Len(t, sd.Fields, s.scans, "%s: %s returns %d columns, the code scans %d", s.where, s.query, len(sd.Fields), s.scans)
	}
	t.Logf("%d static queries checked", len(scans))
}

// findStaticScans reads the store's source for static queries and their
// scans.
func findStaticScans(t *testing.T) []staticScan {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var parsed []*ast.File
	consts := map[string]ast.Expr{}
	// scanners are the package's funcs taking one row (pgx.Row or
	// pgx.Rows) that scan it once: how many values.
	scanners := map[string]int{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		parsed = append(parsed, f)
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							consts[n.Name] = vs.Values[i]
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil && d.Type.Params.NumFields() == 1 && d.Body != nil {
					if n := scanCounts(d.Body); len(n) == 1 {
						scanners[d.Name.Name] = n[0]
					}
				}
			}
		}
	}

	var out []staticScan
	add := func(pos token.Pos, query ast.Expr, scans int) {
		id, ok := query.(*ast.Ident)
		if !ok {
			return
		}
		sql, ok := constString(consts, id)
		if !ok {
			return // not a static query (built, or from another package)
		}
		p := fset.Position(pos)
		out = append(out, staticScan{where: p.Filename + ":" + strconv.Itoa(p.Line), query: id.Name, sql: sql, scans: scans})
	}
	for _, f := range parsed {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			var queries []*ast.CallExpr // db.Query(ctx, q, ...) in this func
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				// db.QueryRow(ctx, q, ...).Scan(...)
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Scan" {
					if inner, ok := sel.X.(*ast.CallExpr); ok && isMethod(inner, "QueryRow") && len(inner.Args) >= 2 {
						add(call.Pos(), inner.Args[1], len(call.Args))
					}
				}
				// scanXxx(db.QueryRow(ctx, q, ...))
				if id, ok := call.Fun.(*ast.Ident); ok && len(call.Args) == 1 {
					if n, ok := scanners[id.Name]; ok {
						if inner, ok := call.Args[0].(*ast.CallExpr); ok && isMethod(inner, "QueryRow") && len(inner.Args) >= 2 {
							add(call.Pos(), inner.Args[1], n)
						}
					}
				}
				if isMethod(call, "Query") && len(call.Args) >= 2 {
					queries = append(queries, call)
				}
				return true
			})
			// One Query and one way of scanning its rows in the function.
			if len(queries) != 1 {
				continue
			}
			n := scanCounts(fn.Body)
			ast.Inspect(fn.Body, func(node ast.Node) bool {
				if call, ok := node.(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok {
						if c, ok := scanners[id.Name]; ok && len(call.Args) == 1 {
							n = append(n, c)
						}
					}
				}
				return true
			})
			if len(n) == 1 {
				add(queries[0].Pos(), queries[0].Args[1], n[0])
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].where < out[j].where })
	return out
}

// scanCounts returns the argument count of each x.Scan(...) in body that
// is not on a QueryRow (those are counted where they are).
func scanCounts(body *ast.BlockStmt) []int {
	var out []int
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Scan" {
			return true
		}
		if inner, ok := sel.X.(*ast.CallExpr); ok && isMethod(inner, "QueryRow") {
			return true
		}
		out = append(out, len(call.Args))
		return true
	})
	return out
}

func isMethod(call *ast.CallExpr, name string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == name
}

// constString evaluates a string const made of literals, other consts and
// +; false for anything else.
func constString(consts map[string]ast.Expr, e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.Ident:
		v, ok := consts[e.Name]
		if !ok {
			return "", false
		}
		return constString(consts, v)
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		l, ok := constString(consts, e.X)
		if !ok {
			return "", false
		}
		r, ok := constString(consts, e.Y)
		return l + r, ok
	case *ast.ParenExpr:
		return constString(consts, e.X)
	}
	return "", false
}
