package lint

import (
	"go/ast"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// noLeakCheck names the packages whose code starts goroutines but whose
// tests do not end with internal/leakcheck's check, and why.
var noLeakCheck = map[string]string{
	"internal/natsx/natstest": "a test helper without tests of its own: the packages whose tests use it check",
	"internal/testgw":         "a test helper without tests of its own: the packages whose tests use it check",
}

// TestGoroutineOwnersCheckForLeaks: a package whose code has a go statement
// ends its tests with leakcheck.Main (or MainThen) from TestMain, so that a
// goroutine without an owner that stops it fails the tests (docs/rationale.md,
// "One lifecycle"); or it is listed in noLeakCheck with a reason.
func TestGoroutineOwnersCheckForLeaks(t *testing.T) {
	root := moduleRoot(t)
	starts, checks := map[string]bool{}, map[string]bool{}
	walkGo(t, root, func(_ *token.FileSet, path string, f *ast.File) {
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		dir = filepath.ToSlash(dir)
		test := strings.HasSuffix(path, "_test.go")
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				if !test {
					starts[dir] = true
				}
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && test && id.Name == "leakcheck" && strings.HasPrefix(n.Sel.Name, "Main") {
					checks[dir] = true
				}
			}
			return true
		})
	})
	for dir := range starts {
		if _, listed := noLeakCheck[dir]; !checks[dir] && !listed {
			t.Errorf("%s starts goroutines but its tests do not end with the leak check: add a main_test.go with func TestMain(m *testing.M) { leakcheck.Main(m) }", dir)
		}
	}
	for dir := range noLeakCheck {
		if checks[dir] || !starts[dir] {
			t.Errorf("noLeakCheck lists %s, which has the leak check or starts no goroutine (update the table)", dir)
		}
	}
}
