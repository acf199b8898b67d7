package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// weir events export asks the gateway (GET /v1/events), found as every
// client command finds it, with no NATS address anywhere.
func TestEventsExportThroughGateway(t *testing.T) {
	g := testgw.Start(t)
	ctx := context.Background()
	model, err := onnx.LogisticRegression("scorer", []string{"x"}, []float32{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Client.PushModel(ctx, "scorer", "1", strings.NewReader(string(model)), nil); err != nil {
		t.Fatal(err)
	}
	if err := g.Client.SetRoute(ctx, "ex", json.RawMessage(`{"variants":[{"name":"stable","model":"scorer","version":"1","weight":100}]}`)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := g.Client.Send(ctx, "POST", "/v1/routes/ex/predict", map[string]any{"x": i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WEIR_SERVER", g.URL)
	t.Setenv("WEIR_ADMIN_TOKEN", g.Token)
	t.Setenv("WEIR_NATS_URL", "")
	dir := t.TempDir()
	t.Chdir(dir)

	out := filepath.Join(dir, "ex.jsonl")
	testpoll.For(t, 60*time.Second, "2 events exported", func() error {
		if _, errOut, err := runWeir("events", "export", "ex", "-o", out); err != nil {
			return fmt.Errorf("%v %s", err, errOut)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if n := strings.Count(string(b), "\n"); n != 2 {
			return fmt.Errorf("%d lines, want 2: %s", n, b)
		}
		return nil
	})

	_, errOut, err := runWeir("events", "export", "--route", "ex", "--since", "", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.ReadFile(filepath.Join(dir, "ex-events.csv"))
	if err != nil {
		t.Fatalf("%v (%s)", err, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(string(f))).ReadAll()
	if err != nil || len(recs) != 3 || !strings.Contains(strings.Join(recs[0], ","), "features.x") {
		t.Errorf("csv export: %v %q", err, f)
	}
	if !strings.Contains(errOut, "written to ex-events.csv") {
		t.Errorf("the command said %q, want where it wrote", errOut)
	}

	// An unknown route fails, names the routes, and writes nothing.
	_, _, err = runWeir("events", "export", "nope", "-o", "nope.parquet")
	if err == nil || !strings.Contains(err.Error(), `route "nope" not found: the routes are ex`) {
		t.Errorf("unknown route: %v, want a 404 naming ex", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("files after the failed export: %v, want ex.jsonl and ex-events.csv only", ents)
	}
	if _, _, err = runWeir("events", "export", "ex", "--since", "last week"); err == nil || !strings.Contains(err.Error(), `--since "last week"`) {
		t.Errorf("a bad --since: %v", err)
	}
}
