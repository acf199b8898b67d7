package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/sdk/client"
)

// statusOf returns the HTTP status of a *client.Error, or 0.
func statusOf(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

// The client against a real gateway: every call reaches the endpoint the
// contract names, and every refusal comes back as a *client.Error with the
// gateway's status and its message (not its JSON).
func TestClientAgainstGateway(t *testing.T) {
	g := testgw.Start(t)
	c := g.Client
	ctx := context.Background()
	model, err := onnx.LogisticRegression("m", []string{"a", "b"}, []float32{1, -1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PushModel(ctx, "m", "1", bytes.NewReader(model), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	models, err := c.ListModels(ctx)
	if err != nil || len(models) != 1 || models[0].Name != "m" || len(models[0].Versions) != 1 {
		t.Fatalf("ListModels = %+v, %v", models, err)
	}
	if err := c.PushReference(ctx, "m", "1", strings.NewReader("a,b\n1,2\n3,4\n"), "text/csv"); err != nil {
		t.Fatal(err)
	}
	out, err := c.Predict(ctx, "m", json.RawMessage(`{"a":1,"b":1}`))
	if err != nil || !bytes.Contains(out, []byte(`"outputs"`)) {
		t.Fatalf("Predict = %s, %v", out, err)
	}
	route := json.RawMessage(`{"variants":[{"name":"stable","model":"m","version":"1","weight":100}]}`)
	if err := c.SetRoute(ctx, "r", route); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetRoute(ctx, "r"); err != nil || !bytes.Contains(got, []byte(`"stable"`)) {
		t.Fatalf("GetRoute = %s, %v", got, err)
	}
	// Dynamic batching: at upload, changed, listed, off.
	if err := c.PushModelWith(ctx, "m", "b", bytes.NewReader(model), client.PushOptions{Features: []string{"a", "b"},
		Batching: &client.Batching{MaxBatchSize: 16, MaxQueueDelay: "1ms", PreferredBatchSizes: []int{4, 8}}}); err != nil {
		t.Fatal(err)
	}
	batching := func() *client.Batching {
		t.Helper()
		models, err := c.ListModels(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range models[0].Versions {
			if v.Version == "b" {
				return v.Batching
			}
		}
		t.Fatal("version b not listed")
		return nil
	}
	if b := batching(); b == nil || b.MaxBatchSize != 16 || b.MaxQueueDelay != "1ms" || len(b.PreferredBatchSizes) != 2 {
		t.Fatalf("batching after upload: %+v", b)
	}
	if err := c.SetBatching(ctx, "m", "b", client.Batching{MaxBatchSize: 8, MaxQueueDelay: "500us"}); err != nil {
		t.Fatal(err)
	}
	if b := batching(); b == nil || b.MaxBatchSize != 8 || b.MaxQueueDelay != "500us" {
		t.Fatalf("batching after SetBatching: %+v", b)
	}
	if err := c.SetBatching(ctx, "m", "b", client.Batching{}); err != nil {
		t.Fatal(err)
	}
	if b := batching(); b != nil {
		t.Fatalf("batching after turning it off: %+v", b)
	}
	if err := c.DeleteModel(ctx, "m", "b"); err != nil {
		t.Fatal(err)
	}

	if metrics, err := c.Metrics(ctx); err != nil || !strings.Contains(metrics, "weir_") {
		t.Fatalf("Metrics: %v (%d bytes)", err, len(metrics))
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		msg    string // part of the gateway's message
	}{
		{"unknown version", func() error { return c.DeleteModel(ctx, "m", "9") }, 404, `no version "9"`},
		{"not ONNX", func() error { return c.PushModel(ctx, "m", "2", strings.NewReader("not onnx"), nil) }, 400, "ONNX"},
		{"batching past the limit", func() error {
			return c.SetBatching(ctx, "m", "1", client.Batching{MaxBatchSize: 1 << 20})
		}, 400, "max_batch_size"},
		{"bad route", func() error { return c.SetRoute(ctx, "r", json.RawMessage(`{"variants":[]}`)) }, 400, "variant"},
		{"model in use", func() error { return c.DeleteModel(ctx, "m", "1") }, 409, ""},
		{"bad name", func() error { return c.DeleteRoute(ctx, "../etc") }, 0, ""},
		{"no rollout", func() error { _, err := c.Rollout(ctx, "r"); return err }, 404, ""},
		{"wrong token", func() error {
			return client.New(g.URL, "wrong").PushModel(ctx, "x", "1", bytes.NewReader(model), nil)
		}, 401, ""},
	} {
		err := tc.call()
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		var ce *client.Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: %T %v, want a *client.Error", tc.name, err, err)
			continue
		}
		if tc.status != 0 && ce.Status != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.name, ce.Status, ce.Message, tc.status)
		}
		if ce.Status < 400 || strings.HasPrefix(ce.Message, "{") || !strings.Contains(ce.Message, tc.msg) {
			t.Errorf("%s: message %q, want the gateway's words containing %q", tc.name, ce.Message, tc.msg)
		}
	}
	if err := c.DeleteRoute(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteModel(ctx, "m", "1"); err != nil {
		t.Fatalf("delete once no route uses it: %v", err)
	}
}

// A gateway that cannot be reached is named in the error, so a CLI user
// sees which --server was wrong.
func TestClientNamesUnreachableGateway(t *testing.T) {
	c := client.New("http://127.0.0.1:1", "").WithHTTPClient(&http.Client{})
	_, err := c.ListModels(context.Background())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || statusOf(err) != 0 {
		t.Fatalf("ListModels of a closed port: %v", err)
	}
}
