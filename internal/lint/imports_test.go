package lint

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/weirhq/weir/"

// A rule says what one package may import. only lists the weir packages it
// may import directly (nil: no such limit; empty: none); never lists weir
// packages and external import-path prefixes that must not appear anywhere
// among its dependencies, direct or not.
// tests: never applies to the package's tests too (for a package whose code
// is all tests).
type rule struct {
	pkg   string
	only  []string
	never []string
	tests bool
}

// The rules, as each package's doc.go states them.
var rules = []rule{
	{pkg: "internal/onnx", only: []string{"internal/weirerr"}},
	{pkg: "models", only: []string{"internal/weirerr", "internal/artifacts", "internal/onnx", "internal/lifecycle", "internal/jsonx", "internal/retry"},
		never: []string{"gateway", "router", "monitor", "plugins"}},
	{pkg: "monitor", only: []string{"internal/weirerr", "internal/lifecycle", "internal/jsonx", "internal/retry", "monitor/event"}},
	{pkg: "monitor/event", only: []string{}, never: []string{"github.com/", "golang.org/x/"}},
	{pkg: "monitor/drift", never: []string{"gateway", "models", "router", "canary"}},
	{pkg: "plugins", only: []string{"internal/weirerr", "internal/promx", "internal/artifacts", "internal/deadline"}},
	{pkg: "sdk/plugin", only: []string{}, never: []string{"github.com/", "golang.org/x/"}},
	{pkg: "router", never: []string{"gateway", "models", "plugins", "canary", "monitor"}},
	// canary needs the event contract's names, not the monitor's stats,
	// archive or Parquet stack, nor any HTTP framework.
	{pkg: "canary", never: []string{"gateway", "monitor", "monitor/drift",
		"github.com/gofiber/", "github.com/valyala/fasthttp", "github.com/parquet-go/"}},
	{pkg: "dashboard", never: []string{"gateway", "models", "router", "plugins", "features", "monitor", "canary"}},
	{pkg: "deploy/api/v1alpha1", never: []string{"deploy/controller", "sdk/client", "gateway"}},
	{pkg: "deploy/controller", never: []string{"gateway", "models", "plugins", "features", "monitor", "canary"}},
	{pkg: "internal/overload", only: []string{}, never: []string{"github.com/"}},
	{pkg: "features", never: []string{"gateway", "models", "plugins", "router", "monitor"}},
	{pkg: "chaos", never: []string{"gateway", "internal/testgw"}, tests: true},
	{pkg: "oipgrpc", only: []string{"models", "internal/weirerr", "oipgrpc/inferencepb"}, never: []string{"gateway"}},
	{pkg: "sdk/client", only: []string{}},
	{pkg: "internal/apidoc", only: []string{}},
	{pkg: "internal/clip", only: []string{}},
	{pkg: "internal/fnv1a", only: []string{}},
	{pkg: "internal/artifacts", only: []string{"internal/lifecycle", "internal/retry", "internal/weirerr"}},
	{pkg: "internal/deadline", only: []string{}},
	{pkg: "internal/golden", only: []string{}},
	{pkg: "internal/jsonx", only: []string{}},
	{pkg: "internal/leakcheck", only: []string{}},
	{pkg: "internal/lifecycle", only: []string{}},
	{pkg: "internal/natsx", only: []string{"internal/lifecycle", "internal/retry"}},
	{pkg: "internal/natsx/natstest", only: []string{"internal/natsx", "internal/testpoll"}},
	{pkg: "internal/promx", only: []string{}},
	{pkg: "internal/reqbody", only: []string{"internal/weirerr"}},
	{pkg: "internal/retry", only: []string{}},
	{pkg: "internal/testfs", only: []string{}},
	{pkg: "internal/testgw", only: []string{"gateway", "internal/testpoll", "sdk/client"}},
	{pkg: "internal/testpoll", only: []string{}},
	{pkg: "internal/weirerr", only: []string{}},
}

// ruleFree names the packages with no import rule, and why. Every package of
// the module is in rules or here (TestEveryPackageHasARule).
var ruleFree = map[string]string{
	"gateway":                         "it wires every package and may import any; TestNothingImportsGateway keeps the other direction",
	"cmd/weir":                        "the binary: flags, then the gateway, the controller and the CLI",
	"oipgrpc/inferencepb":             "generated from inference.proto",
	"internal/lint":                   "holds no code, only these tests",
	"sdk/python":                      "holds no Go code but a test that runs the Python SDK against a gateway",
	"examples/fraud":                  "an example, importing what its story needs",
	"examples/plugins/decision":       "an example plugin; the Go toolchain for wasip1 limits what it can import",
	"examples/plugins/fraud-features": "an example plugin; the Go toolchain for wasip1 limits what it can import",
}

type pkgInfo struct {
	ImportPath                string
	Imports, Deps             []string
	TestImports, XTestImports []string
}

// list returns every package of the module with its imports and deps.
func list(t *testing.T) map[string]pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps,TestImports,XTestImports", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkgInfo{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

// matches reports whether import path dep is the weir package or external
// prefix pattern names.
func matches(dep, pattern string) bool {
	if strings.Contains(pattern, ".") { // an external prefix such as github.com/gofiber/
		return strings.HasPrefix(dep, pattern)
	}
	return dep == module+pattern
}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("rule for %s: no such package (update the table)", r.pkg)
			continue
		}
		if r.only != nil {
			for _, imp := range p.Imports {
				name, weir := strings.CutPrefix(imp, module)
				if weir && !slices.Contains(r.only, name) {
					t.Errorf("%s imports %s; it may import only %v of weir", r.pkg, name, r.only)
				}
			}
		}
		deps := p.Deps
		if r.tests {
			deps = append(slices.Clone(deps), testDeps(pkgs, p)...)
		}
		for _, pattern := range r.never {
			if i := slices.IndexFunc(deps, func(dep string) bool { return matches(dep, pattern) }); i >= 0 {
				t.Errorf("%s depends on %s, which its doc.go rules out (%s)", r.pkg, deps[i], pattern)
			}
		}
	}
}

// testDeps returns what p's tests import, with the dependencies of each weir
// package among them.
func testDeps(pkgs map[string]pkgInfo, p pkgInfo) []string {
	var deps []string
	for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
		deps = append(deps, imp)
		if name, weir := strings.CutPrefix(imp, module); weir {
			deps = append(deps, pkgs[name].Deps...)
		}
	}
	return deps
}

// TestEveryPackageHasARule: a new package states its import rule in its
// doc.go and gets an entry in rules, or is listed in ruleFree with a reason.
func TestEveryPackageHasARule(t *testing.T) {
	pkgs := list(t)
	for name := range pkgs {
		ruled := slices.ContainsFunc(rules, func(r rule) bool { return r.pkg == name })
		_, free := ruleFree[name]
		switch {
		case !ruled && !free:
			t.Errorf("%s has no import rule: state one in its doc.go and add it to rules in internal/lint/imports_test.go, or list it in ruleFree with a reason", name)
		case ruled && free:
			t.Errorf("%s is both in rules and in ruleFree", name)
		}
	}
	for name := range ruleFree {
		if _, ok := pkgs[name]; !ok {
			t.Errorf("ruleFree names %s: no such package (update the table)", name)
		}
	}
}

// TestNothingImportsGateway: the gateway wires every package together, so no
// package but the binary (and test harnesses) may depend on it.
func TestNothingImportsGateway(t *testing.T) {
	allowed := []string{"gateway", "cmd/weir", "internal/testgw"}
	for name, p := range list(t) {
		if slices.Contains(allowed, name) || strings.HasPrefix(name, "gateway/") {
			continue
		}
		if slices.Contains(p.Deps, module+"gateway") {
			t.Errorf("%s depends on the gateway; only %v may", name, allowed)
		}
	}
}
