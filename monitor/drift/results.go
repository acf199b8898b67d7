package drift

import (
	"fmt"
	"slices"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// Feature states reported in FeatureDrift.State.
const (
	StateCollecting = "collecting_reference" // inferring the reference from first events
	StateWarmingUp  = "warming_up"           // fewer than MinCount values in the window
	StateOK         = "ok"
	StateDrifted    = "drifted"
	StateRecovered  = "recovered" // only in alerts
)

// FeatureDrift is one feature's drift, as served by GET /v1/drift/{model}.
// The first six fields are fixed by the external contract (docs/api.md).
type FeatureDrift struct {
	Feature   string  `json:"feature"`
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Drifted   bool    `json:"drifted"`
	Window    Window  `json:"window"`

	Version   string   `json:"version"`
	Kind      string   `json:"kind,omitempty"` // numeric | categorical | output
	State     string   `json:"state"`
	Reference string   `json:"reference"` // "uploaded" | "inferred from first N events" | progress
	Metrics   *Metrics `json:"metrics,omitempty"`
	// Progress is set while the feature is not judged yet: for
	// collecting_reference, values collected of those the inferred reference
	// needs; for warming_up, values in the window of the minimum judged.
	// Value and Drifted mean nothing then (0 and false), which is not "ok".
	Progress *Progress `json:"progress,omitempty"`
}

// Progress counts toward a feature's first judgement.
type Progress struct {
	Have int `json:"have"`
	Need int `json:"need"`
}

// StateText is how the CLI and logs show a state with its progress:
// "warming up (40 of 100)", "collecting reference (12 of 1000)".
func (fd *FeatureDrift) StateText() string {
	switch {
	case fd.Progress != nil && fd.State == StateWarmingUp:
		return fmt.Sprintf("warming up (%d of %d)", fd.Progress.Have, fd.Progress.Need)
	case fd.Progress != nil && fd.State == StateCollecting:
		return fmt.Sprintf("collecting reference (%d of %d)", fd.Progress.Have, fd.Progress.Need)
	}
	return fd.State
}

// Window is the span of event times and the number of values a result was
// computed over.
type Window struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Count int       `json:"count"`
}

// Versions returns the versions of a model with drift state, sorted.
func (m *Monitor) Versions(model string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ms := m.models[model]
	if ms == nil {
		return nil
	}
	out := make([]string, 0, len(ms.versions))
	for v := range ms.versions {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// Results returns the drift of every feature and output of a model version:
// uploaded reference features in header order, then other inputs and then
// outputs by name. Features with new values are judged first, so the answer
// is never staler than the last event. Unknown model or version: a NotFound
// *weirerr.Error.
func (m *Monitor) Results(model, version string) ([]FeatureDrift, error) {
	vs, err := m.lookup(model, version)
	if err != nil {
		return nil, err
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	m.recomputeDirty(vs)

	var order []*featureState
	seen := map[string]bool{}
	if vs.uploaded != nil {
		for _, name := range vs.uploaded.features {
			if fs := vs.inputs[name]; fs != nil {
				order = append(order, fs)
				seen[name] = true
			}
		}
	}
	order = append(order, sortedFeatures(vs.inputs, seen)...)
	order = append(order, sortedFeatures(vs.outputs, nil)...)

	out := make([]FeatureDrift, 0, len(order))
	for _, fs := range order {
		fd := FeatureDrift{
			Feature: fs.name, Metric: vs.cfg.Metric, Threshold: vs.cfg.Threshold,
			Version: vs.version, Kind: fs.kind(), Reference: fs.refSource,
		}
		switch {
		case fs.ref == nil:
			fd.State = StateCollecting
			fd.Reference = fmt.Sprintf("inferring from first %d events (%d so far)", m.opts.InferCount, len(fs.pending))
			fd.Progress = &Progress{Have: len(fs.pending), Need: m.opts.InferCount}
		case !fs.evaluated:
			fd.State = StateWarmingUp
			fd.Progress = &Progress{Have: fs.win.n, Need: m.opts.MinCount}
		case fs.drifted:
			fd.State = StateDrifted
		default:
			fd.State = StateOK
		}
		if fs.win != nil {
			fd.Window.From, fd.Window.To = fs.win.span()
			fd.Window.Count = fs.win.n
		}
		if fs.evaluated {
			mt := fs.metrics
			fd.Value, fd.Drifted, fd.Metrics = fs.value, fs.drifted, &mt
		}
		out = append(out, fd)
	}
	return out, nil
}

func sortedFeatures(set map[string]*featureState, skip map[string]bool) []*featureState {
	out := make([]*featureState, 0, len(set))
	for name, fs := range set {
		if !skip[name] {
			out = append(out, fs)
		}
	}
	slices.SortFunc(out, func(a, b *featureState) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}

// ModelResults returns Results for every version of a model, versions in
// sorted order (GET /v1/drift/{model}); each entry carries its Version.
func (m *Monitor) ModelResults(model string) ([]FeatureDrift, error) {
	versions := m.Versions(model)
	if len(versions) == 0 {
		return nil, weirerr.NotFoundf("no drift data for model %q: no events or reference seen for it yet", model)
	}
	var out []FeatureDrift
	for _, v := range versions {
		res, err := m.Results(model, v)
		if err != nil {
			continue // forgotten between the two calls
		}
		out = append(out, res...)
	}
	return out, nil
}

// MaxDrift returns the largest decision-metric value over the judged
// features and outputs of a model version, for canary analysis; ok is false
// when no window of the version has enough values to be judged yet.
func (m *Monitor) MaxDrift(model, version string) (float64, bool) {
	vs, err := m.lookup(model, version)
	if err != nil {
		return 0, false
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	m.recomputeDirty(vs)
	best, ok := 0.0, false
	for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
		for _, fs := range set {
			if fs.evaluated && (!ok || fs.value > best) {
				best, ok = fs.value, true
			}
		}
	}
	return best, ok
}

// windowCounts returns the number of values in each feature window of a
// version (tests use it to check that nothing is counted twice).
func (m *Monitor) windowCounts(model, version string) map[string]int {
	vs, err := m.lookup(model, version)
	if err != nil {
		return nil
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	out := map[string]int{}
	for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
		for name, fs := range set {
			if fs.win != nil {
				out[name] = fs.win.n
			} else {
				out[name] = 0
			}
		}
	}
	return out
}
