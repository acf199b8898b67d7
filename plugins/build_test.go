package plugins

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/leakcheck"
)

// wasmDir holds every plugin the tests use, built by TestMain from source:
// the examples (Go, C, WAT) and the WAT test plugins in testdata. cacheDir is
// a compilation cache the tests share, so each module compiles once per run.
var wasmDir, cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-plugins-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wasmDir = dir
	cacheDir = filepath.Join(dir, "cache")
	if err := buildPlugins(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building test plugins:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// Every goroutine a test starts has an owner that stops it: none may
	// outlive the tests.
	leakcheck.MainThen(m, func() { os.RemoveAll(dir) })
}

func tool(name, debianPackage string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is needed to build the test plugins and is not on PATH (Debian package %s; `make debs` installs it)", name, debianPackage)
	}
	return p, nil
}

func buildPlugins(out string) error {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = tool("go", "golang"); err != nil {
			return err
		}
	}
	wat2wasm, err := tool("wat2wasm", "wabt")
	if err != nil {
		return err
	}
	clang, err := tool("clang", "clang, lld, wasi-libc and libclang-rt-14-dev-wasm32")
	if err != nil {
		return err
	}
	run := func(dir string, env []string, name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
		}
		return nil
	}
	examples := filepath.Join("..", "examples", "plugins")
	if fuzzWorker() {
		// A fuzz worker runs one fuzz target on WAT plugins: the Go and C
		// builds would only slow each worker's start.
		goTool, clang = "", ""
	}
	for _, p := range []string{"fraud-features", "decision"} {
		if goTool == "" {
			break
		}
		if err := run(filepath.Join(examples, p), []string{"GOOS=wasip1", "GOARCH=wasm"},
			goTool, "build", "-buildmode=c-shared", "-o", filepath.Join(out, p+".wasm"), "."); err != nil {
			return err
		}
	}
	if goTool != "" {
		if err := run(filepath.Join("testdata", "goplugin"), []string{"GOOS=wasip1", "GOARCH=wasm"},
			goTool, "build", "-buildmode=c-shared", "-o", filepath.Join(out, "goplugin.wasm"), "."); err != nil {
			return err
		}
	}
	if clang != "" {
		if err := run(".", nil, clang, "--target=wasm32-wasi", "-mexec-model=reactor", "-O2",
			"-o", filepath.Join(out, "c-normalize.wasm"), filepath.Join(examples, "c-normalize", "normalize.c")); err != nil {
			return fmt.Errorf("%w\n(the C plugin needs clang, lld, wasi-libc and libclang-rt-14-dev-wasm32)", err)
		}
	}
	if err := run(".", nil, wat2wasm, filepath.Join(examples, "wat-echo", "echo.wat"), "-o", filepath.Join(out, "wat-echo.wasm")); err != nil {
		return err
	}
	wats, _ := filepath.Glob(filepath.Join("testdata", "*.wat"))
	for _, w := range wats {
		name := strings.TrimSuffix(filepath.Base(w), ".wat")
		if err := run(".", nil, wat2wasm, w, "-o", filepath.Join(out, name+".wasm")); err != nil {
			return err
		}
	}
	return nil
}

// fuzzWorker reports whether this process is a fuzzing worker.
func fuzzWorker() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzzworker") {
			return true
		}
	}
	return false
}

func wasmFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(wasmDir, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
