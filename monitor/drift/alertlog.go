package drift

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AlertBucket is the KV bucket recording, per model version and feature,
// the last crossing alerted, so that gateways sharing NATS alert each
// crossing once whoever holds the alert lease when it can be sent
// (docs/rationale.md, "One alert per crossing").
const AlertBucket = "weir-drift-alerts"

// alertRecord is the value of one feature's key in AlertBucket.
type alertRecord struct {
	State    string    `json:"state"`    // drifted | recovered
	Crossing uint64    `json:"crossing"` // 1 for the first crossing alerted, then +1 each
	TS       time.Time `json:"ts"`
}

// alertLog is the shared record of alerted crossings. The lease holder
// records a crossing (create-if-absent, or update at the revision it read)
// before it publishes it, so that two holders never both publish one.
type alertLog struct {
	js jetstream.JetStream

	mu sync.Mutex
	kv jetstream.KeyValue // opened on first use: NATS may be away at start
}

// alertKey names a feature's record: each part in unpadded base64url, since
// feature names may hold characters KV keys cannot ("x[0]").
func alertKey(model, version, feature string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(model)) + "." + enc([]byte(version)) + "." + enc([]byte(feature))
}

func (l *alertLog) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kv != nil {
		return l.kv, nil
	}
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      AlertBucket,
		Description: "weir: the last drift crossing alerted, per model version and feature",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("drift: open alert log %s: %w", AlertBucket, err)
	}
	l.kv = kv
	return kv, nil
}

// read returns a feature's record and its revision (0: none yet).
func (l *alertLog) read(ctx context.Context, key string) (alertRecord, uint64, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return alertRecord{}, 0, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return alertRecord{}, 0, nil
	}
	if err != nil {
		return alertRecord{}, 0, fmt.Errorf("drift: read alert log %s: %w", key, err)
	}
	var rec alertRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		// A damaged record counts as none; the update below replaces it.
		return alertRecord{}, e.Revision(), nil
	}
	return rec, e.Revision(), nil
}

// errAlertRaced means another holder recorded the feature meanwhile.
var errAlertRaced = errors.New("drift: another gateway recorded this crossing first")

// record writes rec at rev (0: only if the key does not exist) and returns
// the new revision; errAlertRaced when the record moved since it was read.
func (l *alertLog) record(ctx context.Context, key string, rec alertRecord, rev uint64) (uint64, error) {
	kv, err := l.bucket(ctx)
	if err != nil {
		return 0, err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("drift: encode alert record: %w", err)
	}
	if rev == 0 {
		rev, err = kv.Create(ctx, key, data)
	} else {
		rev, err = kv.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, errAlertRaced
	}
	if err != nil {
		return 0, fmt.Errorf("drift: record crossing %s: %w", key, err)
	}
	return rev, nil
}

// settleJob is one feature whose alerted state the lease holder checks
// against the alert log.
type settleJob struct {
	fs      *featureState
	key     string
	drifted bool
	alert   *Alert // the crossing seen here into this state; nil: record it quietly
	webhook string
	known   bool
	rec     alertRecord
	rev     uint64
}

// settleAlerts makes the alert log agree with this process's judgements
// while it holds the alert lease: a crossing not recorded yet is recorded,
// then published. On taking the lease it checks every judged feature once,
// so a crossing its previous holder died before sending goes out now. It
// runs on the tick goroutine only, and does its NATS calls without holding
// a version's lock.
func (m *Monitor) settleAlerts() {
	if m.alertLog == nil {
		return
	}
	if !m.opts.AlertGate() {
		m.holder = false
		return
	}
	fresh := !m.holder
	m.holder = true
	for _, vs := range m.allVersions() {
		var jobs []settleJob
		vs.mu.Lock()
		for _, set := range []map[string]*featureState{vs.inputs, vs.outputs} {
			for _, fs := range set {
				if fresh {
					fs.logKnown = false
				}
				if fs.win == nil || (fs.logKnown && fs.logDrifted == fs.drifted) {
					continue
				}
				j := settleJob{fs: fs, key: alertKey(vs.model, vs.version, fs.name), drifted: fs.drifted,
					webhook: vs.cfg.Webhook, known: fs.logKnown, rev: fs.logRev,
					rec: alertRecord{Crossing: fs.logCrossing}}
				if fs.logKnown && fs.logDrifted {
					j.rec.State = StateDrifted
				}
				if want := stateName(fs.drifted); fs.crossing.State == want {
					al := fs.crossing
					j.alert = &al
				}
				jobs = append(jobs, j)
			}
		}
		vs.mu.Unlock()
		for _, j := range jobs {
			m.settle(vs, j)
		}
	}
}

func stateName(drifted bool) string {
	if drifted {
		return StateDrifted
	}
	return StateRecovered
}

func (m *Monitor) settle(vs *versionState, j settleJob) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if !j.known {
		if j.rec, j.rev, err = m.alertLog.read(ctx, j.key); err != nil {
			m.log.Warn("drift: alert log unavailable; will retry", "err", err)
			return
		}
	}
	m.met.alertChecks.Inc()
	rec := alertRecord{State: stateName(j.drifted), Crossing: j.rec.Crossing, TS: time.Now().UTC()}
	if (j.rec.State == StateDrifted) != j.drifted {
		rec.Crossing++
		if !m.opts.AlertGate() { // the lease moved meanwhile: its new holder settles it
			return
		}
		rev, err := m.alertLog.record(ctx, j.key, rec, j.rev)
		switch {
		case errors.Is(err, errAlertRaced):
			vs.mu.Lock()
			j.fs.logKnown = false // read it again at the next tick
			vs.mu.Unlock()
			return
		case err != nil:
			m.log.Warn("drift: cannot record a crossing; will retry", "model", vs.model, "version", vs.version, "err", err)
			return
		}
		j.rev = rev
		if j.alert != nil {
			j.alert.Crossing = rec.Crossing
			m.alerter.publish(*j.alert, j.webhook)
		}
	} else {
		rec = j.rec
	}
	vs.mu.Lock()
	j.fs.logKnown, j.fs.logDrifted, j.fs.logRev, j.fs.logCrossing = true, rec.State == StateDrifted, j.rev, rec.Crossing
	vs.mu.Unlock()
}
