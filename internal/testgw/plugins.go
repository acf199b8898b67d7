package testgw

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	pluginsOnce sync.Once
	pluginsDir  string
	pluginsErr  error
)

// PluginDir builds the example plugins (examples/plugins' Makefile) once
// per test binary and returns the directory holding <name>.wasm.
func PluginDir(t testing.TB) string {
	t.Helper()
	pluginsOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			pluginsErr = err
			return
		}
		if pluginsDir, pluginsErr = os.MkdirTemp("", "weir-plugins-"); pluginsErr != nil {
			return
		}
		out, err := exec.Command("make", "-s", "-C", filepath.Join(root, "examples", "plugins"), "OUT="+pluginsDir).CombinedOutput()
		if err != nil {
			pluginsErr = fmt.Errorf("make -C examples/plugins (needs go, clang, lld, wasi-libc, wabt: make debs): %w\n%s", err, out)
		}
	})
	if pluginsErr != nil {
		t.Fatal(pluginsErr)
	}
	return pluginsDir
}

// Plugin returns an example plugin's Wasm bytes, or a test plugin of
// plugins/testdata (name.wat, assembled with wat2wasm, or a Go plugin in
// the directory name, built for wasip1).
func Plugin(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join(PluginDir(t), name+".wasm")
	if _, err := os.Stat(path); err != nil {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "plugins", "testdata", name)
		if _, err := os.Stat(filepath.Join(dir, "main.go")); err == nil {
			cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", path, ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build %s: %v\n%s", dir, err, out)
			}
		} else {
			wat := dir + ".wat"
			if out, err := exec.Command("wat2wasm", wat, "-o", path).CombinedOutput(); err != nil {
				t.Fatalf("wat2wasm %s: %v\n%s (install Debian's wabt)", wat, err, out)
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// repoRoot is the directory of weir's go.mod, above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
