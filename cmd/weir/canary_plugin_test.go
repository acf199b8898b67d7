package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
)

// A plugin-only canary from the CLI: weir canary start --plugin, the
// overrides shown by route get and canary status, and after promotion the
// route's own chain on the new version, so the old one can be removed.
func TestPluginCanaryFromCLI(t *testing.T) {
	g := testgw.Start(t)
	ctx := context.Background()
	model, err := onnx.LogisticRegression("scorer", []string{"x"}, []float32{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Client.PushModel(ctx, "scorer", "1", bytes.NewReader(model), nil); err != nil {
		t.Fatal(err)
	}
	echo := testgw.Plugin(t, "wat-echo")
	for _, v := range []string{"1", "2"} {
		if err := g.Client.PushPlugin(ctx, "echo", v, bytes.NewReader(echo)); err != nil {
			t.Fatal(err)
		}
	}
	route := `{"plugins":[{"name":"echo","version":"1"}],"variants":[{"name":"stable","model":"scorer","version":"1","weight":100}]}`
	if err := g.Client.SetRoute(ctx, "ex", json.RawMessage(route)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WEIR_SERVER", g.URL)
	t.Setenv("WEIR_ADMIN_TOKEN", g.Token)
	t.Chdir(t.TempDir())

	if _, _, err := runWeir("canary", "start", "ex", "--plugin", "nope@2"); err == nil ||
		!strings.Contains(err.Error(), `--plugin nope@2: variant "stable" of route ex runs no plugin nope (plugins: echo@1; postprocess: none)`) {
		t.Errorf("a plugin the route does not run: %v", err)
	}
	out, _, err := runWeir("canary", "start", "ex", "--plugin", "echo@2", "--steps", "50,100", "--interval", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "scorer@1") || !strings.Contains(out, "plugins: canary echo@2, stable echo@1") {
		t.Errorf("canary start says\n%s\nwant the model kept and the plugin versions named", out)
	}
	out, _, err = runWeir("canary", "status", "ex")
	if err != nil || !strings.Contains(out, "plugins: canary echo@2, stable echo@1") {
		t.Errorf("canary status: %v\n%s", err, out)
	}
	out, _, err = runWeir("route", "get", "ex")
	if err != nil || !strings.Contains(out, "own plugins: echo@2") {
		t.Errorf("route get during the canary: %v\n%s\nwant the canary's own plugins", err, out)
	}

	if _, _, err := runWeir("canary", "promote", "ex"); err != nil {
		t.Fatal(err)
	}
	out, _, err = runWeir("route", "get", "ex")
	if err != nil || !strings.Contains(out, "plugins      echo@2") || strings.Contains(out, "own plugins") || strings.Contains(out, "canary") {
		t.Errorf("route get after promotion: %v\n%s\nwant echo@2 as the route's chain", err, out)
	}
	if _, _, err := runWeir("plugin", "rm", "echo", "1"); err != nil {
		t.Errorf("removing the version no route runs any more: %v", err)
	}
}
