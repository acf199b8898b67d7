// Package python_test runs the Python client's unittest suite
// (sdk/python/tests) against a real gateway, so that `make test` (go test
// ./...) covers it. The directory holds no Go code besides this test.
package python_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
)

func TestPythonClient(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("the Python client's tests need python3 (Debian: apt-get install -y python3): %v", err)
	}
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.CanaryTick = 50 * time.Millisecond }))
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	model := func(w0 float32) []byte {
		b, err := onnx.LogisticRegression("py", []string{"a", "b"}, []float32{w0, -1}, 0.1)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cmd := exec.Command(py, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	cmd.Dir = "." // sdk/python: the weir package is importable from here
	cmd.Env = append(os.Environ(),
		"WEIR_SERVER="+g.URL, "WEIR_ADMIN_TOKEN="+g.Token,
		"WEIR_TEST_MODEL_V1="+write("v1.onnx", model(2)),
		"WEIR_TEST_MODEL_V2="+write("v2.onnx", model(1.5)),
		"WEIR_TEST_PLUGIN="+write("echo.wasm", testgw.Plugin(t, "wat-echo")),
		"PYTHONDONTWRITEBYTECODE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("python3 -m unittest:\n%s", out.String())
	if err != nil {
		t.Fatalf("the Python client's tests failed: %v", err)
	}
	if !bytes.Contains(out.Bytes(), []byte("OK")) {
		t.Fatal("unittest did not report OK")
	}
}
