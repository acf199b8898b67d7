package drift

import (
	"fmt"
	"slices"
)

// FeatureDrifts returns the decision-metric value of every judged input
// and output of a model version, keyed "input:<name>" and "output:<name>";
// ok is false when none is judged yet. Canary analysis uses it to judge a
// canary relative to the stable version feature by feature: drift that both
// see (a shift in the inputs) is not the canary's doing.
func (m *Monitor) FeatureDrifts(model, version string) (map[string]float64, bool) {
	vs, err := m.lookup(model, version)
	if err != nil {
		return nil, false
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	m.recomputeDirty(vs)
	out := map[string]float64{}
	for prefix, set := range map[string]map[string]*featureState{"input:": vs.inputs, "output:": vs.outputs} {
		for name, fs := range set {
			if !fs.evaluated {
				continue
			}
			if fs.vsStable {
				out[VsStablePrefix+prefix+name] = fs.value
			} else {
				out[prefix+name] = fs.value
			}
		}
	}
	return out, len(out) > 0
}

// VsStablePrefix marks the FeatureDrifts keys of a canary's outputs that are
// measured against the stable version's answers (ShareOutputReferences):
// they are already relative to the stable version.
const VsStablePrefix = "vs_stable:"

// ShareOutputReferences makes the outputs of a canary version be measured
// against the stable version's recent answers (its current output windows,
// or its output references while a window is short): a canary whose answers
// differ from the stable's on the same traffic (a miscalibrated model) then
// shows output drift. Each version's own output reference is inferred from
// its own first answers, against which a consistently different model looks
// stable, and comparing each with its own reference after the traffic
// shifted would cancel out. Those outputs' FeatureDrifts keys carry
// VsStablePrefix. Outputs the stable version has no reference for yet are
// left alone. It reports whether any reference was shared.
func (m *Monitor) ShareOutputReferences(stableModel, stableVersion, canaryModel, canaryVersion string) bool {
	if stableModel == canaryModel && stableVersion == canaryVersion {
		return false
	}
	src, err := m.lookup(stableModel, stableVersion)
	if err != nil {
		return false
	}
	src.mu.Lock()
	refs := map[string]*featureRef{}
	for name, fs := range src.outputs {
		if ref := fs.recentRef(m.opts.MinCount); ref != nil {
			refs[name] = ref
		}
	}
	src.mu.Unlock()
	if len(refs) == 0 {
		return false
	}
	dst := m.versionFor(canaryModel, canaryVersion)
	if dst == nil { // the canary version was deleted
		return false
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	for name, ref := range refs {
		fs := dst.outputs[name]
		if fs == nil {
			fs = &featureState{name: name, output: true}
			dst.outputs[name] = fs
		}
		m.resetFeature(dst, fs)
		fs.ref = ref
		fs.refSource = fmt.Sprintf("answers of %s@%s at rollout start", stableModel, stableVersion)
		fs.vsStable = true
		fs.initWindow(dst.cfg)
	}
	return true
}

// recentRef is a reference built from a numeric output's latest values
// (with bins of their own: the traffic may have moved past every bin of the
// original reference), or its reference while fewer than minCount values
// were kept or for a categorical output. Called with the version's lock held.
func (f *featureState) recentRef(minCount int) *featureRef {
	if f.ref == nil {
		return nil
	}
	if !f.ref.numeric || len(f.recent) < minCount {
		return f.ref
	}
	return numericRef(slices.Clone(f.recent))
}
