package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wat2wasm assembles a WAT file into dir and returns the .wasm path.
func wat2wasm(t *testing.T, wat, dir string) string {
	t.Helper()
	out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(wat), ".wat")+".wasm")
	if b, err := exec.Command("wat2wasm", wat, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s (install Debian's wabt)", wat, err, b)
	}
	return out
}

// runWeir runs the weir command line in process, as main does, and
// returns what it wrote and its error.
func runWeir(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	root, cf := newRootFlags()
	root.SetArgs(args)
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetIn(strings.NewReader(""))
	err = cf.explainAuth(root.ExecuteContext(context.Background()))
	return o.String(), e.String(), err
}

func TestPluginRun(t *testing.T) {
	dir := t.TempDir()
	echo := wat2wasm(t, "../../examples/plugins/wat-echo/echo.wat", dir)
	// A generous deadline: test machines are loaded.
	out, errOut, err := runWeir("plugin", "run", echo, "--input", `{"amount":5}`, "--timeout", "2s")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut)
	}
	if strings.TrimSpace(out) != "{\n  \"amount\": 5\n}" {
		t.Errorf("stdout %q", out)
	}
	if !strings.Contains(errOut, "ok in ") || !strings.Contains(errOut, "timeout 2s, memory 16 MiB") {
		t.Errorf("stderr %q lacks the time and limits", errOut)
	}

	failing := wat2wasm(t, "../../plugins/testdata/guesterr.wat", dir)
	_, _, err = runWeir("plugin", "run", failing, "--input", `{}`, "--timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), `plugin "guesterr@local": failed (status 7): amount is missing`) {
		t.Errorf("a failing call: %v, want the plugin's error", err)
	}
	_, _, err = runWeir("plugin", "run", echo, "--input", `{}`, "--features", "no-equals")
	if err == nil || !strings.Contains(err.Error(), "expected ENTITY=JSON") {
		t.Errorf("bad --features: %v", err)
	}
}
