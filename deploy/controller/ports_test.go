package controller

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// bindFlags names, per `weir` subcommand, the source file that declares its
// flags and the flags whose address the process listens on. The defaults
// are read from that file, so changing one in cmd/weir changes what the
// manifest test checks. TestBindFlagsInSync fails when cmd/weir grows a
// listen flag this table does not name.
var bindFlags = map[string]struct {
	file  string
	flags []string
	// unless: the flag binds nothing when this flag or env variable is set
	// (the embedded NATS server only runs without --nats-url).
	unless map[string][]string
}{
	"serve": {
		file:   "cmd/weir/serve.go",
		flags:  []string{"listen", "grpc-listen", "nats-listen"},
		unless: map[string][]string{"nats-listen": {"--nats-url", "$WEIR_NATS_URL"}},
	},
	"controller": {
		file:  "cmd/weir/controller.go",
		flags: []string{"metrics-addr", "health-addr"},
	},
}

// flagDefaults reads the string flags declared in a cmd/weir source file:
// every f.StringVar(&x, "name", "default", ...) call with a literal default.
func flagDefaults(t *testing.T, rel string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot(), rel), nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", rel, err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 3 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "StringVar" && sel.Sel.Name != "StringVarP") {
			return true
		}
		nameArg, defArg := call.Args[1], call.Args[2]
		if sel.Sel.Name == "StringVarP" && len(call.Args) >= 4 {
			defArg = call.Args[3]
		}
		name, ok1 := nameArg.(*ast.BasicLit)
		def, ok2 := defArg.(*ast.BasicLit)
		if !ok1 || !ok2 || name.Kind != token.STRING || def.Kind != token.STRING {
			return true
		}
		n1, _ := strconv.Unquote(name.Value)
		d, _ := strconv.Unquote(def.Value)
		out[n1] = d
		return true
	})
	return out
}

// TestBindFlagsInSync: every flag of the listed subcommands that names a
// listen address is in bindFlags, with a default the test can read.
func TestBindFlagsInSync(t *testing.T) {
	for sub, b := range bindFlags {
		defs := flagDefaults(t, b.file)
		for name := range defs {
			if (strings.Contains(name, "listen") || strings.HasSuffix(name, "-addr")) && !slices.Contains(b.flags, name) {
				t.Errorf("weir %s --%s (%s) looks like a listen address but bindFlags does not name it", sub, name, b.file)
			}
		}
		for _, name := range b.flags {
			if _, ok := defs[name]; !ok {
				t.Errorf("bindFlags names weir %s --%s, which %s does not declare with a literal default", sub, name, b.file)
			}
		}
	}
}

// boundPorts returns port -> flag for what a `weir` container listens on:
// its args, else the flag's default from cmd/weir. Unknown commands are
// skipped (third-party images declare their ports).
func boundPorts(t *testing.T, c map[string]any) map[int]string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	cmd, _, _ := unstructured.NestedStringSlice(c, "command")
	args = append(cmd, args...)
	if len(args) == 0 {
		return nil
	}
	b, ok := bindFlags[args[0]]
	if !ok {
		return nil
	}
	given := map[string]string{}
	for i := 1; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			val = args[i+1]
			i++
		}
		given["--"+name] = val
	}
	envs, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range envs {
		given["$"+e.(map[string]any)["name"].(string)] = "set"
	}
	defs := flagDefaults(t, b.file)
	ports := map[int]string{}
flags:
	for _, name := range b.flags {
		for _, cond := range b.unless[name] {
			if given[cond] != "" {
				continue flags
			}
		}
		addr, ok := given["--"+name]
		if !ok {
			addr = defs[name]
		}
		if addr == "" || addr == "0" {
			continue
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("container %v --%s=%q: %v", c["name"], name, addr, err)
			continue
		}
		port, err := strconv.Atoi(p)
		if err != nil || port == 0 {
			continue // a named or random port cannot collide
		}
		ports[port] = "--" + name
	}
	return ports
}

// TestManifestsPodPortsDistinct: the containers of a pod share one network
// namespace, so no two may listen on one port, whether it is set by a flag
// in the manifest or left to the flag's default; and every containerPort a
// weir container declares is one its process listens on.
func TestManifestsPodPortsDistinct(t *testing.T) {
	for _, o := range renderManifests(t) {
		if o.GetKind() != "Deployment" && o.GetKind() != "StatefulSet" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		owner := map[int]string{}
		claim := func(port int, who string) {
			if prev, ok := owner[port]; ok {
				t.Errorf("%s %s: port %d is bound by %s and by %s: the second exits and the pod crash-loops", o.GetKind(), o.GetName(), port, prev, who)
				return
			}
			owner[port] = who
		}
		for _, c := range containers {
			c := c.(map[string]any)
			bound := boundPorts(t, c)
			for port, flag := range bound {
				claim(port, fmt.Sprintf("container %v (%s)", c["name"], flag))
			}
			declared, _, _ := unstructured.NestedSlice(c, "ports")
			for _, p := range declared {
				p := p.(map[string]any)
				port, _ := strconv.Atoi(fmt.Sprint(p["containerPort"]))
				if bound == nil {
					claim(port, fmt.Sprintf("container %v (port %v)", c["name"], p["name"]))
					continue
				}
				if _, ok := bound[port]; !ok {
					t.Errorf("%s %s container %v declares port %v (%d), which its process does not listen on (it listens on %v)", o.GetKind(), o.GetName(), c["name"], p["name"], port, bound)
				}
			}
		}
	}
}
