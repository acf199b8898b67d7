package fraud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/weirhq/weir/sdk/client"
)

// Names the demo installs.
const (
	ModelName      = "fraud"
	RouteName      = "fraud"
	FeatureSetName = "tx"
)

// DriftConfig is the demo model's drift policy.
var DriftConfig = map[string]any{"metric": "general_drift", "threshold": 0.5, "window_count": 1000}

// Plugins the demo route uses, built by `make plugins` into a directory.
var Plugins = []string{"fraud-features", "decision"}

// PluginLimits of the demo's plugins. They are built with the standard Go
// toolchain, whose runtime inside Wasm collects garbage now and then: a
// call that usually takes 50-100µs can take tens of milliseconds on a busy
// machine, past the 20ms default deadline.
var PluginLimits = client.PluginLimits{Timeout: 250 * time.Millisecond}

// Trained holds the demo's two model versions and their reference data.
type Trained struct {
	V1, V2       Model
	RefV1, RefV2 []byte
	ONNXv1       []byte
	ONNXv2       []byte
}

// TrainAll trains both versions on generated history (a few seconds).
func TrainAll() (*Trained, error) {
	h1 := History(1, 20000, FeaturesV1)
	h2 := History(1, 20000, FeaturesV2)
	t := &Trained{V1: Train(h1, 300), V2: Train(h2, 300)}
	t.RefV1, t.RefV2 = ReferenceCSV(h1, 5000), ReferenceCSV(h2, 5000)
	var err error
	if t.ONNXv1, err = t.V1.ONNX(ModelName); err != nil {
		return nil, err
	}
	if t.ONNXv2, err = t.V2.ONNX(ModelName); err != nil {
		return nil, err
	}
	return t, nil
}

// SetupModels uploads fraud@1 (and, with both, fraud@2) with reference
// data, unless they are there already. progress gets one line per step.
func SetupModels(ctx context.Context, c *client.Client, t *Trained, both bool, progress io.Writer) error {
	existing := map[string]bool{}
	list, err := c.ListModels(ctx)
	if err != nil {
		return err
	}
	for _, m := range list {
		for _, v := range m.Versions {
			existing[m.Name+"@"+v.Version] = true
		}
	}
	push := func(version string, onnx, ref []byte) error {
		if existing[ModelName+"@"+version] {
			fmt.Fprintf(progress, "model %s@%s already there\n", ModelName, version)
			return nil
		}
		if err := pushVersion(ctx, c, version, onnx, ref); err != nil {
			return err
		}
		fmt.Fprintf(progress, "model %s@%s trained on generated history, uploaded with reference data\n", ModelName, version)
		return nil
	}
	err = push("1", t.ONNXv1, t.RefV1)
	if both {
		err = errors.Join(err, push("2", t.ONNXv2, t.RefV2))
	}
	return err
}

// Setup installs the whole demo through the gateway's API: the feature set,
// the plugins (Wasm files in pluginDir), fraud@1 (and fraud@2 when both),
// and the route. Steps already done are skipped, so it can run at every
// start.
func Setup(ctx context.Context, c *client.Client, t *Trained, pluginDir string, both bool, progress io.Writer) error {
	if err := c.Send(ctx, "PUT", "/v1/featuresets/"+FeatureSetName, json.RawMessage(FeatureSetJSON), nil); err != nil {
		return fmt.Errorf("feature set %s: %w", FeatureSetName, err)
	}
	fmt.Fprintf(progress, "feature set %s: transactions per hour, mean and spread of amounts and distinct merchants per day, per account\n", FeatureSetName)
	have, err := c.ListPlugins(ctx)
	if err != nil {
		return err
	}
	loaded := map[string]bool{}
	for _, p := range have {
		loaded[p.Name] = true
	}
	for _, name := range Plugins {
		if loaded[name] {
			continue
		}
		wasm, err := os.ReadFile(filepath.Join(pluginDir, name+".wasm"))
		if err != nil {
			return fmt.Errorf("plugin %s: %w (run make plugins)", name, err)
		}
		if err := c.PushPluginLimits(ctx, name, "1", bytes.NewReader(wasm), PluginLimits); err != nil {
			return fmt.Errorf("push plugin %s: %w", name, err)
		}
		fmt.Fprintf(progress, "plugin %s@1 uploaded\n", name)
	}
	if err := SetupModels(ctx, c, t, both, progress); err != nil {
		return err
	}
	// Mean of total variation and Hellinger distance (MLRun's
	// general_drift, drifted at 0.5) over 1000 events: robust for the
	// small counts of windowed aggregates, where PSI's log ratio of sparse
	// bins is noisy.
	if err := c.Send(ctx, "PUT", "/v1/drift/"+ModelName+"/config", DriftConfig, nil); err != nil {
		return fmt.Errorf("drift config: %w", err)
	}
	if _, err := c.GetRoute(ctx, RouteName); err != nil {
		if err := c.SetRoute(ctx, RouteName, RouteJSON); err != nil {
			return fmt.Errorf("route %s: %w", RouteName, err)
		}
		fmt.Fprintf(progress, "route %s: fraud-features -> fraud@1 -> decision, sticky by account\n", RouteName)
	}
	return nil
}

// pushVersion uploads a model version and its reference data.
func pushVersion(ctx context.Context, c *client.Client, version string, onnx, ref []byte) error {
	if err := c.PushModel(ctx, ModelName, version, bytes.NewReader(onnx), nil); err != nil {
		return fmt.Errorf("push %s@%s: %w", ModelName, version, err)
	}
	if err := c.PushReference(ctx, ModelName, version, bytes.NewReader(ref), "text/csv"); err != nil {
		return fmt.Errorf("reference for %s@%s: %w", ModelName, version, err)
	}
	return nil
}
