// Command decision is an example weir post-processing plugin: it turns a
// model score into a decision.
//
// Input: {"event":{...},"features":{...},"outputs":{"probability":[[0.93]]}}
// (outputs may also be a KServe-style array of {"name","data"}).
// Output: {"decision":"allow|review|block","score":0.93}.
//
// Config: {"review":0.5,"block":0.8,"score_output":"probability","score_index":0}.
// Without score_output the only output is used, or, when there are several,
// the one whose name sorts first. score_index picks the element of that
// output's flattened data (default 0).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o decision.wasm .
package main

import (
	"errors"
	"slices"
	"strconv"

	"github.com/weirhq/weir/sdk/plugin"
)

func init() { plugin.Handle(decide) }

// main is never called: the plugin is a reactor (-buildmode=c-shared).
func main() {}

func decide(in plugin.Event) (plugin.Event, error) {
	cfg := plugin.Config()
	name, _ := cfg["score_output"].(string)
	index := int(num(cfg, "score_index", 0))
	data, err := pickOutput(in["outputs"], name)
	if err != nil {
		return nil, err
	}
	var flat []float64
	flatten(data, &flat)
	if index < 0 || index >= len(flat) {
		return nil, errors.New("score_index " + strconv.Itoa(index) + " is out of range: the output has " +
			strconv.Itoa(len(flat)) + " numbers")
	}
	score := flat[index]
	decision := "allow"
	switch {
	case score >= num(cfg, "block", 0.8):
		decision = "block"
	case score >= num(cfg, "review", 0.5):
		decision = "review"
	}
	return plugin.Event{"decision": decision, "score": score}, nil
}

// pickOutput finds the named output's data in either output shape.
func pickOutput(outputs any, name string) (any, error) {
	switch o := outputs.(type) {
	case map[string]any:
		if len(o) == 0 {
			return nil, errors.New(`"outputs" is empty`)
		}
		if name == "" {
			names := make([]string, 0, len(o))
			for k := range o {
				names = append(names, k)
			}
			name = slices.Min(names)
		}
		d, ok := o[name]
		if !ok {
			return nil, errors.New("no output named " + strconv.Quote(name))
		}
		if m, ok := d.(map[string]any); ok { // {"name":{"data":[...]}}
			return m["data"], nil
		}
		return d, nil
	case []any:
		for _, e := range o {
			m, _ := e.(map[string]any)
			if n, _ := m["name"].(string); m != nil && (name == "" || n == name) {
				return m["data"], nil
			}
		}
		return nil, errors.New("no output named " + strconv.Quote(name))
	}
	return nil, errors.New(`"outputs" must be an object or an array of outputs`)
}

func flatten(v any, dst *[]float64) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			flatten(e, dst)
		}
	default:
		if f, ok := plugin.Number(x); ok {
			*dst = append(*dst, f)
		}
	}
}

func num(m map[string]any, key string, def float64) float64 {
	if f, ok := plugin.Number(m[key]); ok {
		return f
	}
	return def
}
