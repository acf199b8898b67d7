package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weirhq/weir/internal/weirerr"
)

// TestPanicRecovery pins issue 11 defect 2: a panic in a handler answers
// 500 with a request id, is logged once with its stack, counted in
// weir_panics_total, and the server keeps serving.
func TestPanicRecovery(t *testing.T) {
	var logs bytes.Buffer
	g := &Gateway{log: slog.New(slog.NewTextHandler(&logs, nil)), met: newMetrics(prometheus.NewRegistry())}
	app := fiber.New(fiber.Config{ErrorHandler: errorHandler(g.log)})
	app.Use(g.recoverPanics)
	app.Get("/boom", func(c *fiber.Ctx) error {
		var m map[string]int
		m["x"] = 1 // nil map write: a real runtime panic
		return nil
	})
	app.Get("/ok", func(c *fiber.Ctx) error { return c.SendString("fine") })

	for i := 1; i <= 2; i++ {
		resp, err := app.Test(httptest.NewRequest("GET", "/boom", nil), -1)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		var body map[string]string
		if resp.StatusCode != 500 || json.Unmarshal(raw, &body) != nil {
			t.Fatalf("panic answered %d %s, want 500 with a JSON error", resp.StatusCode, raw)
		}
		id := resp.Header.Get("X-Request-Id")
		if id == "" || body["request_id"] != id || !strings.Contains(body["error"], id) {
			t.Errorf("answer %s (X-Request-Id %q) does not carry the request id", raw, id)
		}
		if strings.Contains(body["error"], "nil map") || strings.Contains(body["error"], "goroutine") {
			t.Errorf("answer leaks the panic's internals: %s", raw)
		}
		if got := testutil.ToFloat64(g.met.panics); got != float64(i) {
			t.Errorf("weir_panics_total = %v after %d panics", got, i)
		}
		if n := strings.Count(logs.String(), "recover_test.go"); n != i {
			t.Errorf("after %d panics the log shows the stack %d times:\n%s", i, n, logs.String())
		}
		if !strings.Contains(logs.String(), id) {
			t.Errorf("log does not name request id %s", id)
		}
	}
	resp, err := app.Test(httptest.NewRequest("GET", "/ok", nil), -1)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the panics, /ok: %v %v", resp, err)
	}
}

// TestErrorsHideHostPaths pins part of issue 11 defect 10: an error that
// names a file under the data dir does not show the host's path.
func TestErrorsHideHostPaths(t *testing.T) {
	dir := t.TempDir()
	app := fiber.New(fiber.Config{ErrorHandler: errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), dataDirPaths(dir)...)})
	app.Get("/", func(c *fiber.Ctx) error {
		return weirerr.Invalidf("ONNX Runtime cannot load the model: open %s/cache/models/abc.onnx.data: no such file", dir)
	})
	resp, err := app.Test(httptest.NewRequest("GET", "/", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(raw), dir) || !strings.Contains(string(raw), "[data-dir]/cache/models/abc.onnx.data") {
		t.Errorf("error shows the host path: %s", raw)
	}
	if got := dataDirPaths("weir-data"); len(got) != 2 || got[1] != "weir-data/" {
		t.Errorf("spellings of a relative data dir: %q", got)
	}
}

// TestInternalErrorsAreLoggedNotShown pins issue 31's error policy: a bug's
// error (one of no weir kind) answers 500 with a request id only, and its
// details are logged under that id, as a panic's are and as gRPC does.
func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	var logs bytes.Buffer
	app := fiber.New(fiber.Config{ErrorHandler: errorHandler(slog.New(slog.NewTextHandler(&logs, nil)))})
	app.Get("/", func(c *fiber.Ctx) error { return errors.New("open /srv/secret/state.db: permission denied") })
	resp, err := app.Test(httptest.NewRequest("GET", "/", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]string
	if resp.StatusCode != 500 || json.Unmarshal(raw, &body) != nil {
		t.Fatalf("answered %d %s, want 500 with a JSON error", resp.StatusCode, raw)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" || body["request_id"] != id || !strings.Contains(body["error"], id) {
		t.Errorf("answer %s (X-Request-Id %q) does not carry the request id", raw, id)
	}
	if strings.Contains(string(raw), "secret") {
		t.Errorf("answer shows the internal error's details: %s", raw)
	}
	if !strings.Contains(logs.String(), id) || !strings.Contains(logs.String(), "permission denied") {
		t.Errorf("log lacks the request id %s or the details:\n%s", id, logs.String())
	}
}
