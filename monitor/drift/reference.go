package drift

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/weirhq/weir/internal/weirerr"
)

const (
	// numBins is the number of quantile bins a numeric feature is cut into.
	numBins = 10
	// defaultMaxCategories is how many reference categories get their own bin.
	defaultMaxCategories = 50
)

// Reference is the training distribution of a model version's features,
// reduced to what the drift statistics need. It is immutable once built and
// safe to share between goroutines.
type Reference struct {
	features []string
	cols     map[string]*featureRef
	rows     int
}

// Features returns the column names in header order (for JSON: in order of
// first appearance). The gateway may use them as the model's feature list.
func (r *Reference) Features() []string { return slices.Clone(r.features) }

// Rows returns how many data rows the reference had.
func (r *Reference) Rows() int { return r.rows }

// Kind returns "numeric" or "categorical" for a column, "" when unknown.
func (r *Reference) Kind(feature string) string {
	c, ok := r.cols[feature]
	if !ok {
		return ""
	}
	if c.numeric {
		return KindNumeric
	}
	return KindCategorical
}

// featureRef is one feature's reference: the bins live values are sorted
// into and the reference's share of each bin.
//
// A numeric feature has two levels of bins. Fine bins cut the line at up to
// fineGrid reference order statistics (every value when the reference is
// smaller), with one bin for each edge value itself and one for each open
// interval between edges; the reference's cumulative share per fine bin gives
// the KS statistic without keeping or sorting any sample, to within 1/fineGrid
// of the exact value (exact when the reference has at most fineGrid values).
// Coarse bins are the deciles (a subset of the fine edges), over which psi,
// tvd, hellinger and kl are computed; coarseOf maps fine to coarse.
type featureRef struct {
	numeric bool
	// edges are the fine bin edges; n the reference size (for the KS
	// p-value); refCum the reference's cumulative share up to and including
	// each fine bin.
	edges    []float64
	n        int
	refCum   []float64
	coarseOf []uint16
	// cats are the categories with their own bin, catIndex their bin; bin
	// len(cats) is "other".
	cats     []string
	catIndex map[string]int
	// props is the reference share of each coarse bin (sums to 1).
	props []float64
}

// fineGrid is the number of order statistics a numeric reference keeps as
// fine bin edges; a multiple of numBins so that the deciles are among them.
// 250 keeps the edges of a feature in 2 KB (cache-resident while binning)
// and bounds the KS error by 0.004; 1000 measured about 1.7x the CPU per
// event for 0.001.
const fineGrid = 250

func (f *featureRef) numBins() int { return len(f.props) }

// atModelPrecision rounds a value to FP32, the precision of the model inputs
// live values come from: 0.05 in a reference CSV and 0.0500000007 out of an
// FP32 tensor must fall into the same bin, and an edge value must equal
// itself on both sides (docs/rationale.md, "Drift compares at FP32").
// Values beyond FP32's range are kept as they are.
func atModelPrecision(v float64) float64 {
	if math.Abs(v) > math.MaxFloat32 {
		return v
	}
	return float64(float32(v))
}

// binOf returns the fine bin of a numeric value: 2k for a value strictly
// between edges k-1 and k (below the first edge: 0; above the last:
// 2·len(edges)), 2k+1 for a value equal to edge k. The value is compared at
// FP32 precision (atModelPrecision).
func (f *featureRef) binOf(v float64) int {
	v = atModelPrecision(v)
	lo, hi := 0, len(f.edges)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if f.edges[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(f.edges) && f.edges[lo] == v {
		return 2*lo + 1
	}
	return 2 * lo
}

// catBin returns the bin of a category.
func (f *featureRef) catBin(s string) int {
	if i, ok := f.catIndex[s]; ok {
		return i
	}
	return len(f.cats)
}

// cell is one value of a reference (or inference buffer) column.
type cell struct {
	num     float64
	str     string
	isNum   bool
	missing bool
}

// catKey is the category string of a cell: numbers are formatted the same way
// as numbers arriving in events, so "1.0" in a CSV matches 1 in JSON.
func (c cell) catKey() string {
	if c.isNum {
		return strconv.FormatFloat(c.num, 'g', -1, 64)
	}
	return c.str
}

// ParseReference parses a reference dataset: CSV with a header row, or a JSON
// array of objects. contentType picks the format ("text/csv",
// "application/json"); when it is empty or neither, a body starting with '['
// is JSON and anything else CSV. A column whose non-empty values are all
// finite numbers is numeric, any other column categorical. Errors are
// *weirerr.Error of kind Invalid naming the row and column at fault.
func ParseReference(body []byte, contentType string) (*Reference, error) {
	return parseReference(body, contentType, defaultMaxCategories)
}

func parseReference(body []byte, contentType string, maxCats int) (*Reference, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, weirerr.Invalidf("reference dataset is empty: expected CSV with a header row or a JSON array of objects")
	}
	isJSON := trimmed[0] == '['
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		switch {
		case mt == "application/json" || strings.HasSuffix(mt, "+json"):
			isJSON = true
		case mt == "text/csv" || mt == "application/csv":
			isJSON = false
		}
	}
	var (
		names []string
		cols  [][]cell
		rows  int
		err   error
	)
	if isJSON {
		names, cols, rows, err = parseJSONRows(trimmed)
	} else {
		names, cols, rows, err = parseCSVRows(trimmed)
	}
	if err != nil {
		return nil, err
	}
	ref := &Reference{features: names, cols: make(map[string]*featureRef, len(names)), rows: rows}
	for i, name := range names {
		fr, err := buildFeatureRef(cols[i], maxCats)
		if err != nil {
			return nil, weirerr.Invalidf("reference column %q: %w", name, err)
		}
		ref.cols[name] = fr
	}
	return ref, nil
}

func parseCSVRows(body []byte) ([]string, [][]cell, int, error) {
	r := csv.NewReader(bytes.NewReader(body))
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, nil, 0, weirerr.Invalidf("reference CSV header (line 1): %w", err)
	}
	names := slices.Clone(header)
	if err := checkNames(names, "CSV header (line 1)"); err != nil {
		return nil, nil, 0, err
	}
	cols := make([][]cell, len(names))
	rows := 0
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					return nil, nil, 0, weirerr.Invalidf("reference CSV line %d has %d fields, expected %d (one per header column: %s)",
						pe.StartLine, len(rec), len(names), strings.Join(names, ","))
				}
				return nil, nil, 0, weirerr.Invalidf("reference CSV line %d, column %d: %w", pe.StartLine, pe.Column, pe.Err)
			}
			return nil, nil, 0, weirerr.Invalidf("reference CSV: %w", err)
		}
		rows++
		for i, s := range rec {
			cols[i] = append(cols[i], parseTextCell(s))
		}
	}
	if rows == 0 {
		return nil, nil, 0, weirerr.Invalidf("reference CSV has a header but no data rows: expected at least one row")
	}
	return names, cols, rows, nil
}

// parseTextCell classifies a CSV field: empty is missing, a finite number is
// numeric, anything else a string.
func parseTextCell(s string) cell {
	s = strings.TrimSpace(s)
	if s == "" {
		return cell{missing: true}
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
		return cell{num: v, isNum: true, str: s}
	}
	return cell{str: s}
}

func checkNames(names []string, where string) error {
	seen := make(map[string]int, len(names))
	for i, n := range names {
		if strings.TrimSpace(n) == "" {
			return weirerr.Invalidf("reference %s: column %d has an empty name", where, i+1)
		}
		if j, dup := seen[n]; dup {
			return weirerr.Invalidf("reference %s: column name %q appears twice (columns %d and %d)", where, n, j+1, i+1)
		}
		seen[n] = i
	}
	return nil
}

// parseJSONRows reads a JSON array of flat objects token by token, so that
// column order is the order of first appearance (a map would lose it).
func parseJSONRows(body []byte) ([]string, [][]cell, int, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, nil, 0, weirerr.Invalidf("reference JSON: expected an array of objects, got %s", describeToken(tok, err))
	}
	index := map[string]int{}
	var names []string
	var cols [][]cell
	rows := 0
	for dec.More() {
		rows++
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, nil, 0, weirerr.Invalidf("reference JSON row %d: expected an object, got %s", rows, describeToken(tok, err))
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, nil, 0, weirerr.Invalidf("reference JSON row %d: %w", rows, err)
			}
			key, _ := tok.(string)
			if strings.TrimSpace(key) == "" {
				return nil, nil, 0, weirerr.Invalidf("reference JSON row %d: a key is empty", rows)
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, 0, weirerr.Invalidf("reference JSON row %d, column %q: %w", rows, key, err)
			}
			c, err := parseJSONCell(raw)
			if err != nil {
				return nil, nil, 0, weirerr.Invalidf("reference JSON row %d, column %q: %w", rows, key, err)
			}
			i, ok := index[key]
			if !ok {
				i = len(names)
				index[key] = i
				names = append(names, key)
				// Rows before this one did not have the column: missing.
				cols = append(cols, make([]cell, rows-1, rows))
				for j := range cols[i] {
					cols[i][j].missing = true
				}
			}
			if len(cols[i]) == rows {
				return nil, nil, 0, weirerr.Invalidf("reference JSON row %d: column %q appears twice", rows, key)
			}
			cols[i] = append(cols[i], c)
		}
		if _, err := dec.Token(); err != nil { // the closing '}'
			return nil, nil, 0, weirerr.Invalidf("reference JSON row %d: %w", rows, err)
		}
		for i := range cols { // columns this row did not have
			if len(cols[i]) < rows {
				cols[i] = append(cols[i], cell{missing: true})
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, 0, weirerr.Invalidf("reference JSON: unterminated array after row %d: %w", rows, err)
	}
	if rows == 0 {
		return nil, nil, 0, weirerr.Invalidf("reference JSON array is empty: expected at least one object")
	}
	return names, cols, rows, nil
}

func describeToken(tok json.Token, err error) string {
	if err != nil {
		return err.Error()
	}
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", t.String())
	case string:
		return fmt.Sprintf("string %q", t)
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v", t)
	}
}

func parseJSONCell(raw json.RawMessage) (cell, error) {
	if len(raw) == 0 {
		return cell{missing: true}, nil
	}
	switch raw[0] {
	case 'n':
		return cell{missing: true}, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return cell{}, err
		}
		if s == "" {
			return cell{missing: true}, nil
		}
		return cell{str: s}, nil
	case 't', 'f':
		return cell{str: string(raw)}, nil
	case '{', '[':
		return cell{}, fmt.Errorf("nested value %.40s: expected a number, string, boolean or null", raw)
	default:
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(v, 0) {
			return cell{}, fmt.Errorf("number %s is out of range", raw)
		}
		return cell{num: v, isNum: true}, nil
	}
}

// buildFeatureRef reduces one column to its bins and sample. A column is
// numeric when all its non-missing cells are numbers.
func buildFeatureRef(cells []cell, maxCats int) (*featureRef, error) {
	numeric, present := true, 0
	for _, c := range cells {
		if c.missing {
			continue
		}
		present++
		if !c.isNum {
			numeric = false
		}
	}
	if present == 0 {
		return nil, errors.New("has no values (every row is empty or null)")
	}
	if numeric {
		vals := make([]float64, 0, present)
		for _, c := range cells {
			if !c.missing {
				vals = append(vals, c.num)
			}
		}
		return numericRef(vals), nil
	}
	counts := map[string]int{}
	for _, c := range cells {
		if !c.missing {
			counts[c.catKey()]++
		}
	}
	return categoricalRef(counts, present, maxCats), nil
}

func numericRef(vals []float64) *featureRef {
	for i, v := range vals {
		vals[i] = atModelPrecision(v)
	}
	slices.Sort(vals)
	n := len(vals)
	fr := &featureRef{numeric: true, n: n}
	for i := range min(n, fineGrid) {
		// With n <= fineGrid every value is an edge, otherwise every
		// (n/fineGrid)-th order statistic.
		e := vals[i*n/min(n, fineGrid)]
		if len(fr.edges) == 0 || e > fr.edges[len(fr.edges)-1] {
			fr.edges = append(fr.edges, e)
		}
	}
	// Coarse edge i is the order statistic with i/numBins of the sample
	// strictly below it (without ties), so that each decile bin holds a tenth
	// of the reference. It is also a fine edge: vals[i*n/numBins] is
	// vals[(i*fineGrid/numBins)*n/fineGrid] (n > fineGrid) or the value itself.
	var coarse []float64
	for i := 1; i < numBins; i++ {
		e := vals[i*n/numBins]
		if len(coarse) == 0 || e > coarse[len(coarse)-1] {
			coarse = append(coarse, e)
		}
	}
	fine := 2*len(fr.edges) + 1
	fr.coarseOf = make([]uint16, fine)
	for b := range fine {
		// Every value of fine bin b has the coarse bin of the edge at or
		// below it (no coarse edge lies strictly inside a fine bin).
		below := b/2 - 1 + b%2 // index of that edge, -1 for none
		c := 0
		if below >= 0 {
			c, _ = slices.BinarySearch(coarse, fr.edges[below])
			if c < len(coarse) && coarse[c] == fr.edges[below] {
				c++
			}
		}
		fr.coarseOf[b] = uint16(c)
	}
	counts := make([]float64, fine)
	for _, v := range vals {
		counts[fr.binOf(v)]++
	}
	fr.refCum = make([]float64, fine)
	fr.props = make([]float64, len(coarse)+1)
	var cum float64
	for b, c := range counts {
		cum += c
		fr.refCum[b] = cum / float64(n)
		fr.props[fr.coarseOf[b]] += c / float64(n)
	}
	return fr
}

func categoricalRef(counts map[string]int, total, maxCats int) *featureRef {
	cats := make([]string, 0, len(counts))
	for c := range counts {
		cats = append(cats, c)
	}
	// Most frequent first; ties by name so the bins do not depend on map order.
	sort.Slice(cats, func(i, j int) bool {
		if counts[cats[i]] != counts[cats[j]] {
			return counts[cats[i]] > counts[cats[j]]
		}
		return cats[i] < cats[j]
	})
	if len(cats) > maxCats {
		cats = cats[:maxCats]
	}
	fr := &featureRef{cats: cats, catIndex: make(map[string]int, len(cats)), props: make([]float64, len(cats)+1)}
	kept := 0
	for i, c := range cats {
		fr.catIndex[c] = i
		fr.props[i] = float64(counts[c]) / float64(total)
		kept += counts[c]
	}
	fr.props[len(cats)] = float64(total-kept) / float64(total)
	return fr
}
