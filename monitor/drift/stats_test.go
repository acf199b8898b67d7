package drift

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/stat"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g (±%g)", what, got, want, tol)
	}
}

// Hand-computed over actual = [.2 .3 .5], expected = [.3 .3 .4]:
//
//	psi = -.1·ln(2/3) + 0 + .1·ln(1.25)            = 0.0628608659
//	tvd = ½(.1 + 0 + .1)                           = 0.1
//	hellinger = sqrt(1 - (√.06 + √.09 + √.2))      = 0.0885292620
//	kl = KL(a‖e) + KL(e‖a) (equals psi when no bin is empty)
func TestHistogramDistancesKnownValues(t *testing.T) {
	a := []float64{.2, .3, .5}
	e := []float64{.3, .3, .4}
	near(t, "psi", psi(a, e), 0.06286086594223739, 1e-12)
	near(t, "tvd", tvd(a, e), 0.1, 1e-12)
	near(t, "hellinger", hellinger(a, e), 0.08852926195176564, 1e-12)
	near(t, "kl", klSym(a, e), 0.0628608659422374, 1e-12)

	// Identical histograms: every distance is 0 (and hellinger not NaN even
	// when rounding pushes the Bhattacharyya coefficient above 1).
	p := []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}
	for name, v := range map[string]float64{"psi": psi(p, p), "tvd": tvd(p, p), "hellinger": hellinger(p, p), "kl": klSym(p, p)} {
		near(t, name+"(p,p)", v, 0, 1e-7)
	}

	// Disjoint supports: tvd and hellinger reach 1, psi and kl stay finite
	// thanks to the epsilon: psi = 2·(1-1e-4)·ln(1e4).
	x, y := []float64{1, 0}, []float64{0, 1}
	near(t, "tvd disjoint", tvd(x, y), 1, 1e-12)
	near(t, "hellinger disjoint", hellinger(x, y), 1, 1e-12)
	near(t, "psi disjoint", psi(x, y), 2*(1-1e-4)*math.Log(1e4), 1e-9)
	near(t, "kl disjoint", klSym(x, y), 2*math.Log(1e4), 1e-9)
}

func TestKolmogorovSmirnovKnownSamples(t *testing.T) {
	// ECDFs of {1,2,3,4} and {3,4,5,6} differ by 1/2 on [2,3) and [4,5).
	near(t, "D", ksStatistic([]float64{1, 2, 3, 4}, []float64{3, 4, 5, 6}), 0.5, 1e-12)
	near(t, "D same", ksStatistic([]float64{1, 2, 3}, []float64{1, 2, 3}), 0, 0)
	near(t, "D disjoint", ksStatistic([]float64{1, 2}, []float64{3, 4, 5}), 1, 0)
	// The same through the reference's fine bins, as the monitor computes it.
	d, p := ksOfSamples([]float64{1, 2, 3, 4}, []float64{3, 4, 5, 6})
	near(t, "grid D", d, 0.5, 1e-12)
	// p for D=.5, n=m=4: λ = (√2+0.12+0.11/√2)·0.5 = 0.80599, Q(λ) = 0.5347.
	near(t, "grid p", p, 0.5347, 0.001)
	d, p = ksOfSamples([]float64{1, 2, 3}, []float64{1, 2, 3})
	near(t, "grid D same", d, 0, 1e-12)
	near(t, "grid p same", p, 1, 0)
	d, _ = ksOfSamples([]float64{1, 2}, []float64{3, 4, 5})
	near(t, "grid D disjoint", d, 1, 1e-12)
}

// The Kolmogorov distribution's textbook critical values: Q(1.224) = 0.10,
// Q(1.358) = 0.05, Q(1.628) = 0.01.
// ksOfSamples computes KS the way the monitor does: reference reduced to
// fine bins, window counted per fine bin.
func ksOfSamples(ref, win []float64) (d, p float64) {
	fr := numericRef(slices.Clone(ref))
	fine := make([]float64, len(fr.refCum))
	for _, v := range win {
		fine[fr.binOf(v)]++
	}
	return ksGrid(fr.refCum, fine, fr.n, len(win))
}

// The fine-bin KS is exact when the reference has at most fineGrid values
// (or few distinct ones), and within 1/fineGrid of exact otherwise.
func TestKSGridMatchesExactKS(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		n    int
		tol  float64
		ties bool
	}{{fineGrid, 1e-12, false}, {20000, 1.0 / fineGrid, false}, {20000, 1e-12, true}} {
		for trial := range 20 {
			ref := make([]float64, c.n)
			win := make([]float64, 1000)
			for i := range ref {
				ref[i] = r.NormFloat64()
			}
			for i := range win {
				win[i] = r.NormFloat64()*(1+float64(trial)/20) + float64(trial)/40
			}
			if c.ties {
				for i := range ref {
					ref[i] = math.Round(ref[i] * 5)
				}
				for i := range win {
					win[i] = math.Round(win[i] * 5)
				}
			}
			got, _ := ksOfSamples(ref, win)
			slices.Sort(ref)
			slices.Sort(win)
			exact := stat.KolmogorovSmirnov(ref, nil, win, nil)
			if got > exact+1e-12 || got < exact-c.tol-1e-12 {
				t.Errorf("n=%d ties=%v trial %d: grid KS %v, exact %v (tolerance %v)", c.n, c.ties, trial, got, exact, c.tol)
			}
		}
	}
}

// ksStatistic agrees with gonum's stat.KolmogorovSmirnov, ties included.
func TestKSStatisticMatchesGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		x := make([]float64, 1+r.IntN(300))
		y := make([]float64, 1+r.IntN(300))
		for i := range x {
			x[i] = math.Round(r.NormFloat64() * 4) // rounding makes ties
		}
		for i := range y {
			y[i] = math.Round(r.NormFloat64()*4 + float64(trial%3))
		}
		slices.Sort(x)
		slices.Sort(y)
		near(t, fmt.Sprintf("trial %d", trial), ksStatistic(x, y), stat.KolmogorovSmirnov(x, nil, y, nil), 1e-12)
	}
}

func TestKolmogorovQCriticalValues(t *testing.T) {
	near(t, "Q(1.224)", kolmogorovQ(1.224), 0.10, 0.001)
	near(t, "Q(1.358)", kolmogorovQ(1.358), 0.05, 0.001)
	near(t, "Q(1.628)", kolmogorovQ(1.628), 0.01, 0.0005)
	near(t, "Q(0)", kolmogorovQ(0), 1, 0)
	if q := kolmogorovQ(5); q > 1e-20 {
		t.Errorf("Q(5) = %g, want about 0", q)
	}
	// ksPValue for large equal samples: D at the 5% critical value
	// 1.358·sqrt(2/n) has p about 0.05.
	n := 100000
	near(t, "p at critical D", ksPValue(1.358*math.Sqrt(2/float64(n)), n, n), 0.05, 0.002)
}

func TestChiSquarePValue(t *testing.T) {
	scratch := make([]float64, 2)
	// 60/40 against 50/50: x² = 100/50 + 100/50 = 4, df 1: p = 0.0455.
	near(t, "p 60/40", chi2PValue([]float64{60, 40}, []float64{.5, .5}, 100, scratch), 0.04550026, 1e-6)
	near(t, "p exact", chi2PValue([]float64{50, 50}, []float64{.5, .5}, 100, scratch), 1, 1e-12)
}

func TestMetricsDecisionValue(t *testing.T) {
	ks := 0.4
	m := Metrics{PSI: 1, TVD: 2, Hellinger: 3, KL: 4, GeneralDrift: 5}
	for metric, want := range map[string]float64{"psi": 1, "tvd": 2, "hellinger": 3, "kl": 4, "general_drift": 5, "ks": 2} {
		near(t, metric+" (categorical)", m.value(metric), want, 0)
	}
	m.KS = &ks
	near(t, "ks (numeric)", m.value("ks"), 0.4, 0)
}
