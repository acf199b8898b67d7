package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
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

// Output the gateway would refuse fails the run, as it fails a request: not
// one JSON object, or (with --model) lacking a feature the model reads.
func TestPluginRunChecksOutputAsGateway(t *testing.T) {
	dir := t.TempDir()
	bad := wat2wasm(t, "../../plugins/testdata/badjson.wat", dir)
	_, errOut, err := runWeir("plugin", "run", bad, "--input", `{}`, "--timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), `plugin "badjson@local" returned output the gateway refuses (502): not one JSON object`) || strings.Contains(errOut, "ok in") {
		t.Errorf("invalid JSON output: %v (stderr %q), want a failure", err, errOut)
	}

	g := testgw.Start(t)
	m, err := onnx.LogisticRegression("m", []string{"a", "b", "c"}, []float32{1, 1, 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Client.PushModel(context.Background(), "m", "1", bytes.NewReader(m), []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	echo := wat2wasm(t, "../../examples/plugins/wat-echo/echo.wat", dir)
	run := func(input, model string) error {
		_, _, err := runWeir("plugin", "run", echo, "--input", input, "--timeout", "2s", "--model", model, "--server", g.URL)
		return err
	}
	err = run(`{"a":1,"c":"high"}`, "m@1")
	for _, want := range []string{`plugin "echo@local": its output lacks what model m@1 needs`, `missing feature "b"`, `feature "c" is high (string), expected a number`, "output's keys [a c]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("an output lacking features: %v, want %q", err, want)
		}
	}
	if err := run(`{"a":1,"b":true,"c":"2.5"}`, "m@latest"); err != nil {
		t.Errorf("an output the model reads: %v", err)
	}
	if err := run(`{}`, "m@9"); err == nil || !strings.Contains(err.Error(), `model m has no version "9"`) {
		t.Errorf("--model of a missing version: %v", err)
	}
	if err := run(`{}`, "m"); err == nil || !strings.Contains(err.Error(), "expected NAME@VERSION") {
		t.Errorf("--model without a version: %v", err)
	}
}
