package drift

import (
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// psiEpsilon floors bin proportions in PSI, and replaces zero denominators in
// KL, so that an empty bin gives a large but finite value.
const psiEpsilon = 1e-4

// Metric names, as used in Config.Metric, FeatureDrift.Metrics and the
// weir_drift_score "metric" label.
const (
	MetricPSI          = "psi"
	MetricKS           = "ks"
	MetricKSP          = "ks_p"
	MetricTVD          = "tvd"
	MetricHellinger    = "hellinger"
	MetricKL           = "kl"
	MetricGeneralDrift = "general_drift"
	MetricChi2P        = "chi2_p"
)

// decisionMetrics are the metrics a Config may decide on: larger means more
// drift for all of them (p-values are not, so they are not here).
var decisionMetrics = map[string]bool{
	MetricPSI: true, MetricKS: true, MetricTVD: true, MetricHellinger: true,
	MetricKL: true, MetricGeneralDrift: true,
}

// Metrics are all the statistics of one feature window against its
// reference. KS and KSP are set for numeric features, Chi2P for categorical.
type Metrics struct {
	PSI          float64  `json:"psi"`
	KS           *float64 `json:"ks,omitempty"`
	KSP          *float64 `json:"ks_p,omitempty"`
	TVD          float64  `json:"tvd"`
	Hellinger    float64  `json:"hellinger"`
	KL           float64  `json:"kl"`
	GeneralDrift float64  `json:"general_drift"`
	Chi2P        *float64 `json:"chi2_p,omitempty"`
}

// value returns the named decision metric; ks on a categorical feature falls
// back to tvd.
func (m *Metrics) value(name string) float64 {
	switch name {
	case MetricKS:
		if m.KS != nil {
			return *m.KS
		}
		return m.TVD
	case MetricTVD:
		return m.TVD
	case MetricHellinger:
		return m.Hellinger
	case MetricKL:
		return m.KL
	case MetricGeneralDrift:
		return m.GeneralDrift
	default:
		return m.PSI
	}
}

// psi is the population stability index of actual against expected
// proportions: sum (a-e)·ln(a/e), both floored at psiEpsilon.
func psi(actual, expected []float64) float64 {
	var s float64
	for i := range actual {
		a := math.Max(actual[i], psiEpsilon)
		e := math.Max(expected[i], psiEpsilon)
		s += (a - e) * math.Log(a/e)
	}
	return s
}

// tvd is the total variation distance: half the L1 distance.
func tvd(p, q []float64) float64 {
	var s float64
	for i := range p {
		s += math.Abs(p[i] - q[i])
	}
	return s / 2
}

// hellinger is sqrt(1 - sum sqrt(p·q)). Written out rather than calling
// stat.Hellinger because rounding can push the Bhattacharyya coefficient of
// identical histograms a hair above 1, and gonum then returns NaN.
func hellinger(p, q []float64) float64 {
	var bc float64
	for i := range p {
		bc += math.Sqrt(p[i] * q[i])
	}
	return math.Sqrt(math.Max(0, 1-bc))
}

// klSym is MLRun's symmetric Kullback-Leibler divergence KL(p‖q)+KL(q‖p),
// with 0·log 0 = 0 and zero denominators replaced by psiEpsilon. (gonum's
// stat.KullbackLeibler returns +Inf on an empty bin.)
func klSym(p, q []float64) float64 {
	return klOneWay(p, q) + klOneWay(q, p)
}

func klOneWay(p, q []float64) float64 {
	var s float64
	for i, v := range p {
		if v == 0 {
			continue
		}
		d := q[i]
		if d == 0 {
			d = psiEpsilon
		}
		s += v * math.Log(v/d)
	}
	return s
}

// ksGrid returns the two-sample Kolmogorov-Smirnov statistic of a window
// against its reference from their cumulative shares per fine bin (see
// featureRef), and its asymptotic p-value for sample sizes n and m.
func ksGrid(refCum, winFine []float64, n, m int) (d, p float64) {
	// Plain comparisons instead of math.Abs and the NaN-aware builtin max:
	// this loop is most of a recompute's cost, and nothing here is NaN.
	var cum float64
	inv := 1 / float64(m)
	refCum = refCum[:len(winFine)]
	for b, c := range winFine {
		cum += c
		diff := refCum[b] - cum*inv
		if diff < 0 {
			diff = -diff
		}
		if diff > d {
			d = diff
		}
	}
	return d, ksPValue(d, n, m)
}

// ksStatistic is sup |F_x - F_y| over two sorted samples, by one merge pass.
// It gives the same value as stat.KolmogorovSmirnov (the tests check); the
// monitor itself uses ksGrid, which needs no sample at all.
func ksStatistic(x, y []float64) float64 {
	if len(x) == 0 || len(y) == 0 {
		if len(x) == len(y) {
			return 0
		}
		return 1
	}
	nx, ny := float64(len(x)), float64(len(y))
	var i, j int
	var d float64
	for i < len(x) && j < len(y) {
		// Step past every copy of the smaller value in both samples, so ties
		// move both ECDFs at once.
		v := min(x[i], y[j])
		for i < len(x) && x[i] == v {
			i++
		}
		for j < len(y) && y[j] == v {
			j++
		}
		d = max(d, math.Abs(float64(i)/nx-float64(j)/ny))
	}
	return d
}

// ksPValue is the asymptotic p-value of a two-sample KS statistic d for sample
// sizes n and m: Q_KS((√ne + 0.12 + 0.11/√ne)·d) with ne = n·m/(n+m)
// (Stephens 1970; Numerical Recipes §14.3). gonum has no Kolmogorov
// distribution, hence the series below.
func ksPValue(d float64, n, m int) float64 {
	if n == 0 || m == 0 {
		return 1
	}
	en := math.Sqrt(float64(n) * float64(m) / float64(n+m))
	return kolmogorovQ((en + 0.12 + 0.11/en) * d)
}

// kolmogorovQ is the survival function of the Kolmogorov distribution,
// Q(λ) = 2 Σ_{j≥1} (-1)^{j-1} e^{-2j²λ²}.
func kolmogorovQ(lambda float64) float64 {
	const eps1, eps2 = 1e-3, 1e-8
	a2 := -2 * lambda * lambda
	fac, sum, prev := 2.0, 0.0, 0.0
	for j := 1; j <= 100; j++ {
		term := fac * math.Exp(a2*float64(j*j))
		sum += term
		if math.Abs(term) <= eps1*prev || math.Abs(term) <= eps2*sum {
			return math.Min(1, math.Max(0, sum))
		}
		fac = -fac
		prev = math.Abs(term)
	}
	// The series does not converge for tiny λ, where Q is 1.
	return 1
}

// chi2PValue is the chi-square goodness-of-fit p-value of observed counts
// against expected proportions (floored at psiEpsilon), with bins-1 degrees
// of freedom.
func chi2PValue(counts, expected []float64, total float64, scratch []float64) float64 {
	if len(counts) < 2 || total == 0 {
		return 1
	}
	exp := scratch[:len(counts)]
	for i, e := range expected {
		exp[i] = math.Max(e, psiEpsilon) * total
	}
	x := stat.ChiSquare(counts, exp)
	return distuv.ChiSquared{K: float64(len(counts) - 1)}.Survival(x)
}
