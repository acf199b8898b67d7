package fraud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/weirhq/weir/sdk/client"
)

// ModelName is the demo model's name.
const ModelName = "fraud"

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
		if err := c.PushModel(ctx, ModelName, version, bytes.NewReader(onnx), nil); err != nil {
			return fmt.Errorf("push %s@%s: %w", ModelName, version, err)
		}
		if err := c.PushReference(ctx, ModelName, version, bytes.NewReader(ref), "text/csv"); err != nil {
			return fmt.Errorf("reference for %s@%s: %w", ModelName, version, err)
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
