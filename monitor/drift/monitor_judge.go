// Judging: the periodic recompute of windows that received values, each
// judged against its reference, and the alert a threshold crossing raises
// (delivered by alerts.go, recorded by alertlog.go).

package drift

import (
	"time"
)

// tick recomputes, every RecomputeInterval, the features that received
// values since their last recompute, so that a slow trickle of events is
// judged within about a second too.
func (m *Monitor) tick() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.RecomputeInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-m.settleNow:
			m.settleAlerts()
		case now := <-t.C:
			m.mu.Lock()
			for k, at := range m.forgotten {
				if now.Sub(at) > forgetFor {
					delete(m.forgotten, k)
				}
			}
			m.mu.Unlock()
			for _, vs := range m.allVersions() {
				vs.mu.Lock()
				m.recomputeDirty(vs)
				vs.mu.Unlock()
			}
			m.settleAlerts()
		}
	}
}

func (m *Monitor) recomputeDirty(vs *versionState) {
	for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
		for _, fs := range set {
			if fs.dirty > 0 && fs.win != nil {
				m.recompute(vs, fs)
			}
		}
	}
}

// recompute judges one feature window against its reference. Called with
// vs.mu held.
func (m *Monitor) recompute(vs *versionState, fs *featureState) {
	fs.dirty = 0
	w := fs.win
	if w.n < m.opts.MinCount {
		fs.evaluated = false
		return
	}
	total := float64(w.n)
	for i, c := range w.counts {
		fs.props[i] = c / total
	}
	ref := fs.ref
	mt := Metrics{
		PSI:       psi(fs.props, ref.props),
		TVD:       tvd(fs.props, ref.props),
		Hellinger: hellinger(fs.props, ref.props),
		KL:        klSym(fs.props, ref.props),
	}
	mt.GeneralDrift = (mt.TVD + mt.Hellinger) / 2
	if ref.numeric {
		d, p := ksGrid(ref.refCum, w.fine, ref.n, w.n)
		mt.KS, mt.KSP = &d, &p
	} else {
		p := chi2PValue(w.counts, ref.props, total, fs.scratch)
		mt.Chi2P = &p
	}
	fs.metrics, fs.evaluated = mt, true
	m.judged.Add(1)
	fs.value = mt.value(vs.cfg.Metric)
	if fs.gauges == nil {
		fs.gauges = m.met.featureGauges(vs.model, vs.version, fs.name, ref.numeric)
	}
	fs.gauges.set(&mt)

	cfg := vs.cfg
	switch {
	case !fs.drifted && fs.value >= cfg.Threshold:
		fs.drifted = true
		fs.gauges.drifted.Set(1)
		m.crossed(vs, fs, StateDrifted)
	case fs.drifted && fs.value < cfg.RecoverRatio*cfg.Threshold:
		fs.drifted = false
		fs.gauges.drifted.Set(0)
		m.crossed(vs, fs, StateRecovered)
	}
}

// crossed raises the alert of a crossing judged here. With a shared alert
// log the lease holder's tick goroutine sends it (now, or when this process
// takes the lease), once it is recorded there; otherwise the gate decides.
func (m *Monitor) crossed(vs *versionState, fs *featureState, state string) {
	al := m.alertFor(vs, fs, state)
	if m.alertLog == nil {
		m.alerter.emit(al, vs.cfg.Webhook)
		return
	}
	fs.crossing = al
	m.alerter.remember(al)
	select {
	case m.settleNow <- struct{}{}:
	default:
	}
}

func (m *Monitor) alertFor(vs *versionState, fs *featureState, state string) Alert {
	return Alert{
		Model: vs.model, Version: vs.version, Feature: fs.name, Kind: fs.kind(),
		Metric: vs.cfg.Metric, Value: fs.value, Threshold: vs.cfg.Threshold,
		TS: time.Now().UTC(), State: state, Count: fs.win.n,
	}
}
