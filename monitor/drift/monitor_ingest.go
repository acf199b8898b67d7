// Ingestion: Apply takes one event's features and outputs apart and adds
// each value to its feature's window.

package drift

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/monitor/event"
)

// Apply adds one event's features and outputs to the windows of its model
// version. Events of failed inferences, and events without a model or
// version, are ignored.
func (m *Monitor) Apply(ev *monitor.Event) {
	if !ev.OK() || ev.Model == "" || ev.Version == "" {
		m.ignored.Add(1)
		return
	}
	ts := ev.TS.UnixNano()
	if ev.TS.IsZero() {
		ts = time.Now().UnixNano()
	}
	vs := m.versionFor(ev.Model, ev.Version)
	if vs == nil { // deleted
		m.ignored.Add(1)
		return
	}
	vs.mu.Lock()
	for name, v := range ev.Features {
		m.addValue(vs, vs.inputs, false, name, v, ts)
	}
	for name, v := range ev.Outputs {
		m.addValue(vs, vs.outputs, true, name, v, ts)
	}
	vs.mu.Unlock()
	if vs.untracked > 0 {
		m.met.untracked.WithLabelValues(vs.model).Add(float64(vs.untracked))
		vs.untracked = 0
	}
	m.applied.Add(1)
}

// addValue adds one JSON value: scalars directly, arrays one element per
// "<name>[i]" feature (flattened row-major, the first MaxElements), and a
// wide tensor's summary as its "<name>.<stat>" and "<name>.c<i>.<stat>"
// series (event.SummarySeries).
func (m *Monitor) addValue(vs *versionState, set map[string]*featureState, output bool, name string, v any, ts int64) {
	if c, ok := scalarCell(v); ok {
		m.addCell(vs, set, output, name, c, ts)
		return
	}
	if event.SummarySeries(name, v, func(series string, f float64) {
		if c, ok := scalarCell(f); ok {
			m.addCell(vs, set, output, series, c, ts)
		}
	}) {
		return
	}
	arr, ok := v.([]any)
	if !ok {
		return // objects and nulls are not features
	}
	i := 0
	m.addArray(vs, set, output, name, arr, &i, ts)
}

// addArray adds the elements of a (nested) array, *i counting the scalars
// seen so far in row-major order.
func (m *Monitor) addArray(vs *versionState, set map[string]*featureState, output bool, name string, arr []any, i *int, ts int64) {
	for _, e := range arr {
		if *i >= m.opts.MaxElements {
			return
		}
		if sub, ok := e.([]any); ok {
			m.addArray(vs, set, output, name, sub, i, ts)
			continue
		}
		// A null keeps its position: element i is always "<name>[i]".
		if c, ok := scalarCell(e); ok {
			names := vs.elemNames[name]
			if len(names) <= *i {
				for len(names) <= *i {
					names = append(names, name+"["+strconv.Itoa(len(names))+"]")
				}
				vs.elemNames[name] = names
			}
			m.addCell(vs, set, output, names[*i], c, ts)
		}
		*i++
	}
}

// scalarCell converts a decoded JSON scalar (or a Go number, for callers of
// Apply that did not go through JSON).
func scalarCell(v any) (cell, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		if x == "" {
			return cell{}, false
		}
		return cell{str: x}, true
	case bool:
		return cell{str: strconv.FormatBool(x)}, true
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case json.Number:
		g, err := x.Float64()
		if err != nil {
			return cell{}, false
		}
		f = g
	default:
		return cell{}, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return cell{}, false
	}
	return cell{num: f, isNum: true}, true
}

func (m *Monitor) addCell(vs *versionState, set map[string]*featureState, output bool, name string, c cell, ts int64) {
	fs := set[name]
	if fs == nil {
		if len(vs.inputs)+len(vs.outputs) >= maxFeaturesPerVersion {
			vs.untracked++
			return
		}
		fs = &featureState{name: name, output: output}
		set[name] = fs
	}
	if fs.ref == nil {
		fs.pending = append(fs.pending, c)
		if len(fs.pending) >= m.opts.InferCount {
			ref, err := buildFeatureRef(fs.pending, m.opts.MaxCategories)
			if err != nil { // cannot happen: pending holds no missing cells
				m.log.Warn("drift: cannot infer reference", "model", vs.model, "version", vs.version, "feature", name, "err", err)
				fs.pending = fs.pending[:0]
				return
			}
			fs.ref = ref
			fs.refSource = fmt.Sprintf("inferred from first %d events", m.opts.InferCount)
			fs.pending = nil
			fs.initWindow(vs.cfg)
		}
		return
	}
	var bin int
	if fs.ref.numeric {
		v := c.num
		if !c.isNum {
			f, err := strconv.ParseFloat(c.str, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return // a word in a numeric feature: not comparable
			}
			v = f
		}
		if output {
			if len(fs.recent) < m.opts.InferCount {
				fs.recent = append(fs.recent, v)
			} else {
				fs.recent[fs.recentNext] = v
				fs.recentNext = (fs.recentNext + 1) % len(fs.recent)
			}
		}
		bin = fs.ref.binOf(v)
	} else {
		bin = fs.ref.catBin(c.catKey())
	}
	if !fs.win.add(bin, ts) {
		return // older than the window: not part of the present
	}
	fs.dirty++
	if fs.dirty >= m.opts.RecomputeEvery {
		m.recompute(vs, fs)
	}
}
