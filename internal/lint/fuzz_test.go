package lint

import (
	"go/ast"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fuzzTargets returns the Makefile's FUZZ_TARGETS, each as "FuzzName:./dir".
func fuzzTargets(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FUZZ_TARGETS\s*:?=((?:.*\\\n)*.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the Makefile has no FUZZ_TARGETS")
	}
	return strings.Fields(strings.ReplaceAll(string(m[1]), "\\\n", " "))
}

// TestEveryFuzzTargetIsFuzzed: `go test` runs only a fuzz target's seed
// corpus; `make fuzz` (and `make test`, briefly) fuzzes the targets the
// Makefile lists, so every func Fuzz of the module is listed there, and
// every entry there names one.
func TestEveryFuzzTargetIsFuzzed(t *testing.T) {
	root := moduleRoot(t)
	listed := fuzzTargets(t, root)
	var found []string
	walkGo(t, root, func(_ *token.FileSet, path string, f *ast.File) {
		if !strings.HasSuffix(path, "_test.go") {
			return
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") {
				continue
			}
			dir, _ := filepath.Rel(root, filepath.Dir(path))
			target := fn.Name.Name + ":./" + filepath.ToSlash(dir)
			found = append(found, target)
			if !slices.Contains(listed, target) {
				t.Errorf("%s is not in the Makefile's FUZZ_TARGETS: add %s", fn.Name.Name, target)
			}
		}
	})
	for _, target := range listed {
		if !slices.Contains(found, target) {
			t.Errorf("the Makefile's FUZZ_TARGETS lists %s: no such fuzz target", target)
		}
	}
}
