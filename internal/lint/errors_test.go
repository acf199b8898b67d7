package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// verb matches one fmt verb (flags, width, precision and the letter).
var verb = regexp.MustCompile(`%[-+# 0]*[0-9*]*(?:\.[0-9*]*)?[a-zA-Z%]`)

// wrappers are the calls whose format may carry a cause with %w.
func wraps(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	switch pkg.Name {
	case "fmt":
		return sel.Sel.Name == "Errorf"
	case "weirerr":
		return strings.HasSuffix(sel.Sel.Name, "f")
	}
	return false
}

// isErr reports whether e looks like an error value: err, fooErr, x.err, x.Err.
func isErr(e ast.Expr) bool {
	var name string
	switch e := e.(type) {
	case *ast.Ident:
		name = e.Name
	case *ast.SelectorExpr:
		name = e.Sel.Name
	default:
		return false
	}
	return name == "err" || name == "Err" || strings.HasSuffix(name, "Err")
}

// TestErrorsKeepTheirCause: an error formatted with %v into another error
// loses its identity, so errors.Is(err, context.DeadlineExceeded) fails on
// the way up. Wrap with %w (weirerr's constructors keep it as the cause).
func TestErrorsKeepTheirCause(t *testing.T) {
	root := moduleRoot(t)
	walkGo(t, root, func(fset *token.FileSet, path string, f *ast.File) {
		if strings.HasSuffix(path, "_test.go") {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !wraps(call) || len(call.Args) < 2 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			format, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			var verbs []string
			for _, v := range verb.FindAllString(format, -1) {
				if v != "%%" {
					verbs = append(verbs, v)
				}
			}
			for i, arg := range call.Args[1:] {
				if i < len(verbs) && isErr(arg) && verbs[i] == "%v" {
					rel, _ := filepath.Rel(root, fset.Position(call.Pos()).Filename)
					t.Errorf("%s:%d: an error formatted with %%v loses its cause; use %%w", rel, fset.Position(call.Pos()).Line)
				}
			}
			return true
		})
	})
}

// walkGo parses every Go file of the module under root (not testdata,
// build outputs or hidden folders) and hands it to fn.
func walkGo(t *testing.T, root string, fn func(fset *token.FileSet, path string, f *ast.File)) {
	t.Helper()
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "build") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		fn(fset, path, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
