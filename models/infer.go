package models

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/weirhq/weir/internal/weirerr"
)

// Infer validates and runs an OIP request on v. Inputs that the caller
// gave as an object of named features (see PackFeatures) are already packed.
// ctx is the caller's: with dynamic batching on, the request may wait for a
// batch until ctx ends.
func (v *Version) Infer(ctx context.Context, req *InferRequest) (*InferResponse, []Tensor, error) {
	if v.Session == nil {
		return nil, nil, weirerr.Unavailablef("model %s@%s is not loaded", v.Name, v.Version)
	}
	if len(req.Inputs) == 0 {
		return nil, nil, weirerr.Invalidf("the request has no inputs: the model's inputs are %s", v.Session.inputList())
	}
	if err := CheckOutputs(req.Outputs, v.Session.Outputs()); err != nil {
		return nil, nil, err
	}
	inputs, err := v.Session.Prepare(req.Inputs)
	if err != nil {
		return nil, nil, err
	}
	outs, err := v.RunTensors(ctx, inputs)
	if err != nil {
		return nil, inputs, err
	}
	resp := &InferResponse{ModelName: v.Name, ModelVersion: v.Version, ID: req.ID}
	if len(req.Outputs) == 0 {
		resp.Outputs = make([]OutputTensor, len(outs))
		for i, o := range outs {
			resp.Outputs[i] = OutputTensor{Name: o.Name, Shape: o.Shape, Datatype: o.Datatype, Data: o.Data}
		}
		return resp, inputs, nil
	}
	for _, want := range req.Outputs {
		for _, o := range outs {
			if o.Name == want.Name {
				resp.Outputs = append(resp.Outputs, OutputTensor{Name: o.Name, Shape: o.Shape, Datatype: o.Datatype, Data: o.Data})
				break
			}
		}
	}
	return resp, inputs, nil
}

// CheckOutputs refuses requested outputs that the model does not have, or
// that name one output twice (each copy would carry the whole tensor). It
// stops at the first such output, so it looks at no more of the request
// than the model's outputs plus one; matching the outputs it let through
// then costs at most the square of the model's outputs, whatever was sent.
func CheckOutputs(wanted []RequestedOutput, have []TensorInfo) error {
	seen := make(map[string]bool, len(wanted))
	for _, want := range wanted {
		if !slices.ContainsFunc(have, func(t TensorInfo) bool { return t.Name == want.Name }) {
			return weirerr.Invalidf("unknown output %q requested: the model's outputs are %s", want.Name, names(have))
		}
		if seen[want.Name] {
			return weirerr.Invalidf("output %q is requested twice: name each output once", want.Name)
		}
		seen[want.Name] = true
	}
	return nil
}

// RunTensors runs prepared inputs, batched with other callers' when the
// version's dynamic batching is on (Session.RunContext).
func (v *Version) RunTensors(ctx context.Context, inputs []Tensor) ([]Tensor, error) {
	if v.Session == nil {
		return nil, weirerr.Unavailablef("model %s@%s is not loaded", v.Name, v.Version)
	}
	return v.Session.RunContext(ctx, inputs)
}

// names lists tensors' names, quoted, for errors.
func names(ts []TensorInfo) string {
	out := ""
	for i, t := range ts {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(t.Name)
	}
	return out
}

// PackFeatures turns rows of named features into the model's first input,
// shape [len(rows), n], in the order of the version's feature list. A
// missing or non-numeric feature is a 400 that names it.
func (v *Version) PackFeatures(rows []map[string]any) (Tensor, error) {
	if len(v.Features) == 0 {
		return Tensor{}, weirerr.Invalidf("model %s@%s has no feature list: upload it with ?features=a,b,c or upload reference data with a header row", v.Name, v.Version)
	}
	in := v.Session.Inputs()[0]
	n := len(v.Features)
	switch in.Datatype {
	case FP32, FP16:
		data := make([]float32, 0, len(rows)*n)
		for r, row := range rows {
			for _, f := range v.Features {
				x, err := featureValue(row, f, r, len(rows))
				if err != nil {
					return Tensor{}, err
				}
				data = append(data, float32(x))
			}
		}
		return Tensor{Name: in.Name, Datatype: in.Datatype, Shape: []int64{int64(len(rows)), int64(n)}, Data: TensorData{Values: data}}, nil
	case FP64:
		data := make([]float64, 0, len(rows)*n)
		for r, row := range rows {
			for _, f := range v.Features {
				x, err := featureValue(row, f, r, len(rows))
				if err != nil {
					return Tensor{}, err
				}
				data = append(data, x)
			}
		}
		return Tensor{Name: in.Name, Datatype: in.Datatype, Shape: []int64{int64(len(rows)), int64(n)}, Data: TensorData{Values: data}}, nil
	}
	// Integer inputs: go through the JSON path, which range-checks.
	vals := make([]any, 0, len(rows)*n)
	for r, row := range rows {
		for _, f := range v.Features {
			x, err := featureValue(row, f, r, len(rows))
			if err != nil {
				return Tensor{}, err
			}
			vals = append(vals, x)
		}
	}
	raw, _ := json.Marshal(vals)
	t, err := v.Session.prepareOne(in, InputTensor{Name: in.Name, Datatype: in.Datatype, Shape: []int64{int64(len(rows)), int64(n)}, Data: raw})
	return t, err
}

// FeatureError is a model feature that PackFeatures could not read from a
// row: missing (absent or null) or not a number. PackFeatures returns it
// wrapped in a weirerr Invalid error; callers that know where the row came
// from (a plugin chain) find it with errors.As and say so.
type FeatureError struct {
	Feature string
	Row     int // index of the row, when Rows > 1
	Rows    int
	Missing bool
	Value   any // the value, when not Missing
}

func (e *FeatureError) Error() string {
	where := ""
	if e.Rows > 1 {
		where = fmt.Sprintf(" in row %d", e.Row)
	}
	if e.Missing {
		return fmt.Sprintf("missing feature %q%s", e.Feature, where)
	}
	return fmt.Sprintf("feature %q%s is %v (%T), expected a number", e.Feature, where, e.Value, e.Value)
}

func featureValue(row map[string]any, name string, r, rows int) (float64, error) {
	raw, ok := row[name]
	if !ok || raw == nil {
		return 0, weirerr.Invalidf("%w", &FeatureError{Feature: name, Row: r, Rows: rows, Missing: true})
	}
	switch x := raw.(type) {
	case float64:
		return x, nil
	case json.Number:
		f, err := x.Float64()
		if err == nil {
			return f, nil
		}
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil && !math.IsNaN(f) {
			return f, nil
		}
	}
	return 0, weirerr.Invalidf("%w", &FeatureError{Feature: name, Row: r, Rows: rows, Value: raw})
}
