package drift

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weirhq/weir/monitor"
)

// A canary's outputs measured against the stable version's recent answers:
// the same model on the same traffic reads no drift, a miscalibrated one
// does, under a key marked as already relative to stable.
func TestShareOutputReferencesComparesCanaryWithStableAnswers(t *testing.T) {
	m, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InferCount: 200, MinCount: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	r := rand.New(rand.NewPCG(3, 3))
	t0 := time.Now().UTC()
	i := 0
	apply := func(version string, n int, bias float64) {
		for range n {
			m.Apply(&monitor.Event{Model: "fraud", Version: version, Status: 200, TS: t0.Add(time.Duration(i) * time.Millisecond),
				Outputs: map[string]any{"score": 0.1 + 0.02*r.NormFloat64() + bias}})
			i++
		}
	}
	// The stable version's output reference comes from its first answers;
	// then the traffic shifts and its answers move (by 0.3).
	apply("1", 200, 0)
	apply("1", 500, 0.3)
	if m.ShareOutputReferences("fraud", "8", "fraud", "9") {
		t.Fatal("shared the references of a version without any")
	}
	if !m.ShareOutputReferences("fraud", "1", "fraud", "2") || !m.ShareOutputReferences("fraud", "1", "fraud", "3") {
		t.Fatal("ShareOutputReferences shared nothing")
	}
	apply("2", 300, 0.3)  // same model: answers like the stable's now
	apply("3", 300, 0.45) // miscalibrated
	apply("1", 300, 0.3)
	same, ok := m.FeatureDrifts("fraud", "2")
	worse, ok2 := m.FeatureDrifts("fraud", "3")
	stable, ok3 := m.FeatureDrifts("fraud", "1")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("FeatureDrifts not judged: %v %v %v", same, worse, stable)
	}
	key := VsStablePrefix + "output:score"
	if same[key] >= 0.25 {
		t.Errorf("same model on the same traffic: %s psi %.3g, want below 0.25", key, same[key])
	}
	if worse[key] < 0.25 {
		t.Errorf("miscalibrated canary: %s psi %.3g, want at least 0.25", key, worse[key])
	}
	if stable["output:score"] < 0.25 {
		t.Errorf("the stable version's own output drift %.3g: the shifted traffic should show against its first answers", stable["output:score"])
	}
}
