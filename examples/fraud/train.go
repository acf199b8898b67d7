package fraud

import (
	"bytes"
	"encoding/csv"
	"math"
	"strconv"
	"time"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/integrate"
	"gonum.org/v1/gonum/stat"

	"github.com/weirhq/weir/internal/onnx"
)

// Accounts in the generated population, and where its history starts.
var (
	Accounts     = 200
	HistoryStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
)

// Dataset is labelled feature rows, in the order of Features.
type Dataset struct {
	Features []string
	X        [][]float64
	Y        []float64
}

// History generates n transactions from seed and computes their features
// in event order, for training and for reference data.
func History(seed uint64, n int, features []string) Dataset {
	g := NewGenerator(seed, Accounts, HistoryStart)
	f := NewFeaturizer()
	d := Dataset{Features: features}
	for i := 0; i < n; i++ {
		t := g.Next(SimGap)
		fs := f.Features(t)
		row := make([]float64, len(features))
		for j, name := range features {
			row[j] = fs[name]
		}
		d.X = append(d.X, row)
		y := 0.0
		if t.Fraud {
			y = 1
		}
		d.Y = append(d.Y, y)
	}
	return d
}

// Model is a trained logistic regression.
type Model struct {
	Features []string
	Weights  []float64
	Bias     float64
}

// Train fits a logistic regression by full-batch gradient descent with
// L2 regularisation, on standardised features; the weights it returns
// apply to raw features (standardisation folded in).
func Train(d Dataset, epochs int) Model {
	k := len(d.Features)
	mean := make([]float64, k)
	sd := make([]float64, k)
	col := make([]float64, len(d.X))
	for j := 0; j < k; j++ {
		for i, row := range d.X {
			col[i] = row[j]
		}
		mean[j], sd[j] = stat.MeanStdDev(col, nil)
		if sd[j] == 0 {
			sd[j] = 1
		}
	}
	w := make([]float64, k)
	b := 0.0
	grad := make([]float64, k)
	z := make([]float64, k)
	const lr, l2 = 0.5, 1e-4
	n := float64(len(d.X))
	// Fraud is rare: weight positives so the model does not learn to say
	// "never".
	pos := floats.Sum(d.Y)
	wPos := (n - pos) / math.Max(pos, 1)
	for e := 0; e < epochs; e++ {
		for j := range grad {
			grad[j] = 0
		}
		gb := 0.0
		for i, row := range d.X {
			for j := range z {
				z[j] = (row[j] - mean[j]) / sd[j]
			}
			p := sigmoid(floats.Dot(w, z) + b)
			diff := p - d.Y[i]
			if d.Y[i] == 1 {
				diff *= wPos
			}
			floats.AddScaled(grad, diff, z)
			gb += diff
		}
		for j := range w {
			w[j] -= lr * (grad[j]/n + l2*w[j])
		}
		b -= lr * gb / n
	}
	m := Model{Features: d.Features, Weights: make([]float64, k), Bias: b}
	for j := range w {
		m.Weights[j] = w[j] / sd[j]
		m.Bias -= w[j] * mean[j] / sd[j]
	}
	return m
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// Score is the model's fraud probability for one feature row.
func (m Model) Score(row []float64) float64 {
	return sigmoid(floats.Dot(m.Weights, row) + m.Bias)
}

// ONNX exports the model with weir's builder: input "features" [batch, k]
// FP32 -> output "score" [batch, 1], the feature list in the metadata.
func (m Model) ONNX(name string) ([]byte, error) {
	w := make([]float32, len(m.Weights))
	for i, x := range m.Weights {
		w[i] = float32(x)
	}
	return onnx.LogisticRegression(name, m.Features, w, float32(m.Bias))
}

// AUC is the area under the ROC curve of the model on d.
func (m Model) AUC(d Dataset) float64 {
	scores := make([]float64, len(d.X))
	classes := make([]bool, len(d.X))
	for i, row := range d.X {
		scores[i] = m.Score(row)
		classes[i] = d.Y[i] == 1
	}
	stat.SortWeightedLabeled(scores, classes, nil)
	tpr, fpr, _ := stat.ROC(nil, scores, classes, nil)
	return integrate.Trapezoidal(fpr, tpr)
}

// ReferenceCSV writes d's features (first limit rows) as CSV with a header:
// the reference data drift is measured against.
func ReferenceCSV(d Dataset, limit int) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(d.Features)
	rec := make([]string, len(d.Features))
	for i, row := range d.X {
		if i >= limit {
			break
		}
		for j, x := range row {
			rec[j] = strconv.FormatFloat(x, 'g', 6, 64)
		}
		w.Write(rec)
	}
	w.Flush()
	return buf.Bytes()
}
