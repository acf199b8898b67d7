package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/monitor"
)

// merchantRisks are the few values a per-merchant risk feature takes: the
// reference CSV holds them as decimals, live traffic as they come out of an
// FP32 tensor (0.05 becomes 0.0500000007450580596923828125).
var merchantRisks = []float64{0.02, 0.05, 0.1, 0.3, 0.65, 0.9}

// drawFP32 draws the fraud features; shift moves 80% of the traffic to the
// riskiest merchant and doubles amounts.
func drawFP32(r *rand.Rand, shift bool) (amountLog, risk, night float64) {
	amountLog = 3 + r.NormFloat64()
	risk = merchantRisks[r.IntN(len(merchantRisks))]
	if shift {
		amountLog += 2.5
		if r.IntN(5) != 0 {
			risk = 0.9
		}
	}
	if r.IntN(4) == 0 {
		night = 1
	}
	return amountLog, risk, night
}

func precisionRef(t *testing.T) *Reference {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	var b strings.Builder
	b.WriteString("amount_log,merchant_risk,is_night\n")
	for range 2000 {
		a, m, n := drawFP32(r, false)
		fmt.Fprintf(&b, "%g,%g,%g\n", a, m, n)
	}
	ref, err := ParseReference([]byte(b.String()), "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// applyFP32 feeds n events whose values went through float32, as the
// gateway's events carry them after packing into an FP32 input tensor.
func applyFP32(m *Monitor, model string, n int, seed uint64, shift bool) {
	r := rand.New(rand.NewPCG(seed, seed))
	t0 := time.Now().UTC()
	for i := range n {
		a, risk, night := drawFP32(r, shift)
		m.Apply(&monitor.Event{
			Model: model, Version: "1", Status: 200, TS: t0.Add(time.Duration(i) * time.Millisecond),
			Features: map[string]any{
				"amount_log":    float64(float32(a)),
				"merchant_risk": float64(float32(risk)),
				"is_night":      float64(float32(night)),
			},
		})
	}
}

// Reference values written as decimals and live values that went through an
// FP32 tensor are the same numbers at the model's precision: no metric may
// call unchanged traffic drifted (KS read 0.9 on merchant_risk when live
// values were binned against the float64 reference by exact equality). A
// real shift must be caught by every metric.
func TestFP32TrafficFromReferenceDistributionIsNotDrift(t *testing.T) {
	metrics := make([]string, 0, len(decisionMetrics))
	for name := range decisionMetrics {
		metrics = append(metrics, name)
	}
	slices.Sort(metrics)
	ref := precisionRef(t)
	for _, metric := range metrics {
		t.Run(metric, func(t *testing.T) {
			m, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			for _, model := range []string{"same", "shifted"} {
				if err := m.SetConfig(model, Config{Metric: metric}); err != nil {
					t.Fatal(err)
				}
				m.SetReference(model, "1", ref)
			}
			applyFP32(m, "same", 1000, 11, false)
			applyFP32(m, "shifted", 1000, 11, true)

			res, err := m.Results("same", "1")
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range res {
				if f.State != StateOK || f.Drifted {
					t.Errorf("unchanged traffic: %s %s=%.4g (threshold %.3g) state %s, want ok; metrics %+v",
						f.Feature, f.Metric, f.Value, f.Threshold, f.State, *f.Metrics)
				}
			}
			res, err = m.Results("shifted", "1")
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"amount_log", "merchant_risk"} {
				if f := findFeature(t, res, name); !f.Drifted {
					t.Errorf("shifted traffic: %s %s=%.4g (threshold %.3g) not drifted", name, f.Metric, f.Value, f.Threshold)
				}
			}
			if f := findFeature(t, res, "is_night"); f.Drifted {
				t.Errorf("shifted traffic: is_night did not move but %s=%.4g is drifted", f.Metric, f.Value)
			}
		})
	}
}

// A feature that is not judged yet says why and how far along it is, instead
// of reading as "ok" with a value of 0.
func TestUnjudgedFeaturesReportProgress(t *testing.T) {
	m, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InferCount: 50, MinCount: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	m.SetReference("fraud", "1", precisionRef(t))
	res, err := m.Results("fraud", "1")
	if err != nil {
		t.Fatal(err)
	}
	if f := findFeature(t, res, "amount_log"); f.State != StateWarmingUp || f.Progress == nil || *f.Progress != (Progress{0, 20}) ||
		f.StateText() != "warming up (0 of 20)" {
		t.Errorf("before traffic: %+v (%s), want warming up (0 of 20)", f, f.StateText())
	}
	t0 := time.Now().UTC()
	for i := range 10 {
		m.Apply(&monitor.Event{Model: "fraud", Version: "1", Status: 200, TS: t0.Add(time.Duration(i) * time.Millisecond),
			Features: map[string]any{"amount_log": 3.0, "merchant_risk": 0.05, "is_night": 0.0, "country": "FR"}})
	}
	if res, err = m.Results("fraud", "1"); err != nil {
		t.Fatal(err)
	}
	if f := findFeature(t, res, "amount_log"); f.StateText() != "warming up (10 of 20)" || f.Metrics != nil {
		t.Errorf("after 10 events: %+v (%s), want warming up (10 of 20) with no metrics", f, f.StateText())
	}
	if f := findFeature(t, res, "country"); f.StateText() != "collecting reference (10 of 50)" {
		t.Errorf("feature without reference after 10 events: %+v (%s), want collecting reference (10 of 50)", f, f.StateText())
	}
	data, _ := json.Marshal(findFeature(t, res, "country"))
	if !strings.Contains(string(data), `"state":"collecting_reference"`) || !strings.Contains(string(data), `"progress":{"have":10,"need":50}`) {
		t.Errorf("JSON %s lacks state and progress", data)
	}
	for i := range 40 {
		m.Apply(&monitor.Event{Model: "fraud", Version: "1", Status: 200, TS: t0.Add(time.Duration(10+i) * time.Millisecond),
			Features: map[string]any{"amount_log": 3.0, "merchant_risk": 0.05, "is_night": 0.0}})
	}
	if res, err = m.Results("fraud", "1"); err != nil {
		t.Fatal(err)
	}
	if f := findFeature(t, res, "amount_log"); f.Progress != nil || (f.State != StateOK && f.State != StateDrifted) {
		t.Errorf("after 50 events: %+v, want judged without progress", f)
	}
}
