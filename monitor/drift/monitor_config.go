// Per-model settings and per-version state from outside the event stream:
// a model's Config, a version's Reference, and forgetting a deleted
// version's state (Forget) until it is pushed again (Track).

package drift

import (
	"time"
)

// SetConfig replaces the drift policy of one model (zero fields take the
// monitor's defaults). Windows of another size keep their newest values.
func (m *Monitor) SetConfig(model string, cfg Config) error {
	resolved, err := cfg.withDefaults(m.opts.Default)
	if err != nil {
		return err
	}
	m.mu.Lock()
	ms := m.models[model]
	if ms == nil {
		ms = &modelState{versions: map[string]*versionState{}}
		m.models[model] = ms
	}
	ms.cfg = resolved
	versions := make([]*versionState, 0, len(ms.versions))
	for _, vs := range ms.versions {
		versions = append(versions, vs)
	}
	m.mu.Unlock()
	for _, vs := range versions {
		vs.mu.Lock()
		vs.cfg = resolved
		for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
			for _, fs := range set {
				if fs.win == nil {
					continue
				}
				if len(fs.win.bins) != resolved.WindowCount || fs.win.maxAge != int64(resolved.WindowAge) {
					fs.win = fs.win.resized(resolved.WindowCount, resolved.WindowAge)
				}
				fs.dirty = max(fs.dirty, 1) // judge again under the new policy at the next tick
			}
		}
		vs.mu.Unlock()
	}
	return nil
}

// Config returns the effective drift policy of a model.
func (m *Monitor) Config(model string) Config {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if ms := m.models[model]; ms != nil {
		return ms.cfg
	}
	return m.opts.Default
}

// SetReference sets the uploaded reference of a model version. The features
// it names start new windows against it (a drifted state is cleared without
// an alert); other features keep what they had.
func (m *Monitor) SetReference(model, version string, ref *Reference) {
	m.Track(model, version)
	vs := m.versionFor(model, version)
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.uploaded = ref
	for _, name := range ref.features {
		fs := vs.inputs[name]
		if fs == nil {
			fs = &featureState{name: name}
			vs.inputs[name] = fs
		}
		m.resetFeature(vs, fs)
		fs.ref = ref.cols[name]
		fs.refSource = "uploaded"
		fs.initWindow(vs.cfg)
	}
}

// Track undoes Forget: events of model@version count again (the version
// was pushed again after a delete).
func (m *Monitor) Track(model, version string) {
	m.mu.Lock()
	delete(m.forgotten, model+"@"+version)
	m.mu.Unlock()
}

// Forget drops all drift state of a model version (when it is deleted) and
// ignores its events until Track (or for forgetFor): events still in
// flight would otherwise bring the state back for good.
func (m *Monitor) Forget(model, version string) {
	m.mu.Lock()
	m.forgotten[model+"@"+version] = time.Now()
	ms := m.models[model]
	var vs *versionState
	if ms != nil {
		vs = ms.versions[version]
		delete(ms.versions, version)
	}
	m.mu.Unlock()
	if vs == nil {
		return
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
		for _, fs := range set {
			m.resetFeature(vs, fs)
		}
	}
}

func (m *Monitor) resetFeature(vs *versionState, fs *featureState) {
	if fs.gauges != nil {
		m.met.deleteFeature(vs.model, vs.version, fs.name)
		fs.gauges = nil
	}
	fs.ref, fs.refSource, fs.pending, fs.win, fs.vsStable = nil, "", nil, nil, false
	fs.evaluated, fs.metrics, fs.value, fs.drifted, fs.dirty = false, Metrics{}, 0, false, 0
	fs.crossing = Alert{} // a state cleared without an alert: the alert log learns it quietly
}

func (fs *featureState) initWindow(cfg Config) {
	fs.win = newWindow(cfg.WindowCount, cfg.WindowAge, fs.ref)
	fs.props = make([]float64, fs.ref.numBins())
	fs.scratch = make([]float64, fs.ref.numBins())
	fs.dirty = 0
}
