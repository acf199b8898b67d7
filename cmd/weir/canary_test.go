package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
)

// `weir canary start --max-drift off` reaches the gateway as the contract's
// "off": a deliberately different model can be rolled out without the
// default answers gate, from the command line too.
func TestCanaryStartMaxDriftOff(t *testing.T) {
	g := testgw.Start(t)
	ctx := context.Background()
	for _, v := range []string{"1", "2"} {
		m, err := onnx.LogisticRegression("m", []string{"a"}, []float32{1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Client.PushModel(ctx, "m", v, bytes.NewReader(m), []string{"a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Client.SetRoute(ctx, "r", json.RawMessage(`{"variants":[{"name":"stable","model":"m","version":"1","weight":100}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runWeir("canary", "start", "r", "--to", "m@2", "--max-drift", "off", "--server", g.URL, "--token", g.Token); err != nil {
		t.Fatalf("canary start --max-drift off: %v\n%s", err, stderr)
	}
	raw, err := g.Client.Rollout(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Spec struct {
			MaxDrift any `json:"max_drift"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || st.Spec.MaxDrift != "off" {
		t.Errorf("the rollout's max_drift is %v (%v), want \"off\": %s", st.Spec.MaxDrift, err, raw)
	}
}
