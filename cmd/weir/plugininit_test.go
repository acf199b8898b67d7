package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// weir plugin init writes skeletons whose printed build commands, run as
// printed, build plugins that weir plugin run accepts.
func TestPluginInitBuilds(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lang, tool string
		args       []string
		want       string // in the plugin's output
	}{
		{"wat", "wat2wasm", nil, `"amount": 21`},
		{"go", "go", []string{"--weir-src", root}, `"amount_double": 42`},
		{"c", "clang", nil, `"amount": 21`},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Fatalf("%s skeletons build with %s: %v (make installs it)", tc.lang, tc.tool, err)
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "p1")
			out, _, err := runWeir(append([]string{"plugin", "init", tc.lang, "p1", "--dir", dir}, tc.args...)...)
			if err != nil {
				t.Fatalf("init: %v", err)
			}
			// The indented lines after "build it:" are the commands, run in
			// order by one shell, as a user would paste them.
			_, build, ok := strings.Cut(out, "build it:\n")
			if !ok {
				t.Fatalf("init printed no build commands:\n%s", out)
			}
			var cmds []string
			for _, line := range strings.Split(build, "\n") {
				if !strings.HasPrefix(line, "  ") {
					break
				}
				cmds = append(cmds, strings.TrimSpace(line))
			}
			sh := exec.Command("bash", "-e", "-c", strings.Join(cmds, "\n"))
			sh.Dir = parent
			sh.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=") // offline: --weir-src needs no download
			if b, err := sh.CombinedOutput(); err != nil {
				t.Fatalf("build as printed:\n%s\nfailed: %v\n%s", strings.Join(cmds, "\n"), err, b)
			}
			got, errOut, err := runWeir("plugin", "run", filepath.Join(dir, "p1.wasm"), "--input", `{"amount":21}`, "--timeout", "5s")
			if err != nil || !strings.Contains(got, tc.want) {
				t.Errorf("run the skeleton: %v\n%s%s\nwant output containing %s", err, got, errOut, tc.want)
			}
		})
	}
}

func TestPluginInitRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plugin", "init", "cobol", "p"}, `language "cobol": expected go, c, wat or rust`},
		{[]string{"plugin", "init", "go", "../p"}, `plugin name "../p": expected`},
		{[]string{"plugin", "init", "rust", "my-plugin"}, "a Rust crate name has no '.' or '-'"},
		{[]string{"plugin", "init", "wat", "p", "--dir", dir}, dir + " exists"},
		{[]string{"plugin", "init", "c", "p", "--weir-src", dir}, "--weir-src is for Go plugins"},
	} {
		if _, _, err := runWeir(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("weir %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// The Rust skeleton compiles: built as printed where rustc has the
// wasm32-wasip1 target, else (the code, not the link) for the host.
func TestPluginInitRustCompiles(t *testing.T) {
	if _, err := exec.LookPath("rustc"); err != nil {
		t.Skip("rustc is not installed (optional: docs/plugin-abi.md)")
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "p1")
	if _, _, err := runWeir("plugin", "init", "rust", "p1", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(buildCommands("rust", "p1", false), "\n")
	if lib, err := exec.Command("rustc", "--print", "target-libdir", "--target", "wasm32-wasip1").Output(); err != nil || !dirExists(strings.TrimSpace(string(lib))) {
		cmd = "rustc --edition 2021 --crate-type cdylib -o libp1.so p1.rs" // the imports stay undefined in a shared library
	}
	sh := exec.Command("bash", "-e", "-c", cmd)
	sh.Dir = dir
	if b, err := sh.CombinedOutput(); err != nil || len(b) > 0 {
		t.Fatalf("%s: %v\n%s (want no error and no warning)", cmd, err, b)
	}
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
