package drift

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/monitor"
)

func benchRef(b *testing.B, numeric, categorical int) *Reference {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for i := range numeric {
		fmt.Fprintf(&sb, "n%d,", i)
	}
	for i := range categorical {
		fmt.Fprintf(&sb, "c%d,", i)
	}
	sb.WriteString("end\n")
	for range 5000 {
		for range numeric {
			fmt.Fprintf(&sb, "%.5f,", r.NormFloat64())
		}
		for range categorical {
			fmt.Fprintf(&sb, "k%d,", r.IntN(8))
		}
		sb.WriteString("0\n")
	}
	ref, err := ParseReference([]byte(sb.String()), "text/csv")
	if err != nil {
		b.Fatal(err)
	}
	return ref
}

// BenchmarkApply is the drift update cost of one event with 8 numeric and 2
// categorical features and one output, statistics recompute amortised in
// (default RecomputeEvery 250, window 1000). JSON decoding is not included.
func BenchmarkApply(b *testing.B) {
	m, err := New(Options{RecomputeInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	m.SetReference("m", "1", benchRef(b, 8, 2))
	r := rand.New(rand.NewPCG(3, 4))
	evs := make([]monitor.Event, 1024)
	for i := range evs {
		f := map[string]any{"end": 0.0}
		for j := range 8 {
			f[fmt.Sprintf("n%d", j)] = r.NormFloat64()
		}
		f["c0"], f["c1"] = fmt.Sprintf("k%d", r.IntN(8)), fmt.Sprintf("k%d", r.IntN(8))
		evs[i] = monitor.Event{Model: "m", Version: "1", Status: 200, TS: time.Unix(0, int64(i)*int64(time.Millisecond)),
			Features: f, Outputs: map[string]any{"score": r.Float64()}}
	}
	// Warm up: infer the output reference and fill the windows.
	for i := range 2000 {
		m.Apply(&evs[i%len(evs)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := &evs[i%len(evs)]
		ev.TS = time.Unix(0, int64(2000+i)*int64(time.Millisecond))
		m.Apply(ev)
	}
}

// BenchmarkWindowAdd is the cost of binning one numeric value (binary search
// over 250 fine edges) and adding it to a full window.
func BenchmarkWindowAdd(b *testing.B) {
	vals := make([]float64, 5000)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range vals {
		vals[i] = r.NormFloat64()
	}
	ref := numericRef(vals)
	w := newWindow(1000, 5*time.Minute, ref)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.add(ref.binOf(vals[i%len(vals)]), int64(i))
	}
}

// BenchmarkRecomputeNumeric is a full recompute of one numeric feature window
// of 1000 values against a 5000-value reference (psi, tvd, hellinger, kl, and
// ks over 501 fine bins).
func BenchmarkRecomputeNumeric(b *testing.B) {
	benchRecompute(b, "n0")
}

// BenchmarkRecomputeCategorical is the same for a categorical feature (chi2
// instead of ks).
func BenchmarkRecomputeCategorical(b *testing.B) {
	benchRecompute(b, "c0")
}

func benchRecompute(b *testing.B, feature string) {
	m, err := New(Options{RecomputeEvery: 1 << 30, RecomputeInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	m.SetReference("m", "1", benchRef(b, 1, 1))
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 1000 {
		m.Apply(&monitor.Event{Model: "m", Version: "1", Status: 200, TS: time.Unix(0, int64(i)),
			Features: map[string]any{"n0": r.NormFloat64(), "c0": fmt.Sprintf("k%d", r.IntN(8))}})
	}
	vs, _ := m.lookup("m", "1")
	fs := vs.inputs[feature]
	b.ReportAllocs()
	for b.Loop() {
		m.recompute(vs, fs)
	}
}
