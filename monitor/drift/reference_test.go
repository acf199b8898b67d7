package drift

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/weirerr"
)

func TestParseReferenceCSV(t *testing.T) {
	var b strings.Builder
	b.WriteString("amount,country,age\n")
	for i := range 100 {
		country := "FR"
		if i%4 == 0 {
			country = "DE"
		}
		age := fmt.Sprint(20 + i%50)
		if i == 7 {
			age = "" // missing values are allowed
		}
		fmt.Fprintf(&b, "%d.5,%s,%s\n", i, country, age)
	}
	ref, err := ParseReference([]byte(b.String()), "text/csv; charset=utf-8")
	if err != nil {
		t.Fatal(err)
	}
	if got := ref.Features(); !slices.Equal(got, []string{"amount", "country", "age"}) {
		t.Fatalf("Features() = %v, want header order", got)
	}
	if ref.Rows() != 100 {
		t.Errorf("Rows() = %d, want 100", ref.Rows())
	}
	for f, want := range map[string]string{"amount": KindNumeric, "country": KindCategorical, "age": KindNumeric} {
		if got := ref.Kind(f); got != want {
			t.Errorf("Kind(%q) = %q, want %q", f, got, want)
		}
	}
	amount := ref.cols["amount"]
	// 0.5 .. 99.5: deciles at 10.5, 20.5, ..., 90.5 → 10 bins of 10% each.
	if len(amount.props) != 10 {
		t.Fatalf("amount has %d coarse bins, want 10", len(amount.props))
	}
	for i, p := range amount.props {
		if math.Abs(p-0.1) > 1e-12 {
			t.Errorf("amount bin %d proportion = %v, want 0.1", i, p)
		}
	}
	// A reference of 100 values keeps every value as a fine edge.
	if len(amount.edges) != 100 || amount.n != 100 || amount.refCum[len(amount.refCum)-1] != 1 {
		t.Errorf("amount: %d fine edges, n=%d, last cum %v; want 100, 100, 1", len(amount.edges), amount.n, amount.refCum[len(amount.refCum)-1])
	}
	for v, want := range map[float64]int{0: 0, 0.5: 1, 1: 2, 1.5: 3, 99.5: 199, 1e9: 200} {
		if got := amount.binOf(v); got != want {
			t.Errorf("binOf(%v) = %d, want %d", v, got, want)
		}
	}
	for v, want := range map[float64]uint16{0: 0, 10: 0, 10.5: 1, 11: 1, 90.5: 9, 1e9: 9} {
		if got := amount.coarseOf[amount.binOf(v)]; got != want {
			t.Errorf("coarse bin of %v = %d, want %d", v, got, want)
		}
	}
	country := ref.cols["country"]
	if !slices.Equal(country.cats, []string{"FR", "DE"}) || country.props[0] != 0.75 || country.props[1] != 0.25 || country.props[2] != 0 {
		t.Errorf("country cats=%v props=%v, want [FR DE] [0.75 0.25 0]", country.cats, country.props)
	}
	if ref.cols["age"].n != 99 {
		t.Errorf("age sample size = %d, want 99 (one missing)", ref.cols["age"].n)
	}
}

func TestParseReferenceJSONKeepsKeyOrder(t *testing.T) {
	body := `[{"z":1,"a":"x","flag":true},{"z":2.5,"a":"y","m":null},{"a":"x","z":3,"m":4}]`
	ref, err := ParseReference([]byte(body), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := ref.Features(); !slices.Equal(got, []string{"z", "a", "flag", "m"}) {
		t.Fatalf("Features() = %v, want order of first appearance [z a flag m]", got)
	}
	for f, want := range map[string]string{"z": KindNumeric, "a": KindCategorical, "flag": KindCategorical, "m": KindNumeric} {
		if got := ref.Kind(f); got != want {
			t.Errorf("Kind(%q) = %q, want %q", f, got, want)
		}
	}
	if ref.cols["m"].n != 1 {
		t.Errorf("m has %d values, want 1 (null and absent are missing)", ref.cols["m"].n)
	}
}

func TestParseReferenceLargeSampleKeepsGridOfOrderStatistics(t *testing.T) {
	var b strings.Builder
	b.WriteString("x\n")
	for i := range 25000 {
		fmt.Fprintf(&b, "%d\n", i)
	}
	ref, err := ParseReference([]byte(b.String()), "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	x := ref.cols["x"]
	step := float64(25000 / fineGrid)
	if x.n != 25000 || len(x.edges) != fineGrid || x.edges[0] != 0 || x.edges[1] != step || x.edges[fineGrid-1] != 25000-step {
		t.Errorf("n=%d, %d fine edges %v, %v, ..., %v; want 25000 and %d edges 0, %v, ..., %v",
			x.n, len(x.edges), x.edges[0], x.edges[1], x.edges[len(x.edges)-1], fineGrid, step, 25000-step)
	}
	// Coarse bins are still exact deciles.
	for i, p := range x.props {
		if math.Abs(p-0.1) > 1e-12 {
			t.Errorf("x decile %d holds %v, want 0.1", i, p)
		}
	}
}

func TestParseReferenceCategoriesBeyondMaxGoToOther(t *testing.T) {
	var b strings.Builder
	b.WriteString("c\n")
	for i := range 60 {
		fmt.Fprintf(&b, "cat%02d\n", i)
	}
	ref, err := ParseReference([]byte(b.String()), "text/csv")
	if err != nil {
		t.Fatal(err)
	}
	c := ref.cols["c"]
	if len(c.cats) != defaultMaxCategories || math.Abs(c.props[defaultMaxCategories]-10.0/60) > 1e-12 {
		t.Errorf("cats=%d other=%v, want %d categories and other = 10/60", len(c.cats), c.props[defaultMaxCategories], defaultMaxCategories)
	}
	if c.catBin("never-seen") != defaultMaxCategories {
		t.Errorf("an unseen category is not in the other bin")
	}
}

func TestParseReferenceErrors(t *testing.T) {
	cases := []struct {
		name, body, ctype string
		want              []string // substrings of the message
	}{
		{"empty", "  \n", "text/csv", []string{"empty", "CSV", "JSON"}},
		{"header only", "a,b\n", "text/csv", []string{"no data rows"}},
		{"ragged row", "a,b\n1,2\n3\n", "text/csv", []string{"line 3", "1 fields", "expected 2"}},
		{"empty column name", "a,,c\n1,2,3\n", "text/csv", []string{"column 2", "empty name"}},
		{"duplicate column", "a,b,a\n1,2,3\n", "text/csv", []string{`"a"`, "twice", "columns 1 and 3"}},
		{"bad quote", "a,b\n1,\"2\n", "text/csv", []string{"line 2"}},
		{"empty column", "a,b\n1,\n2,\n", "text/csv", []string{`column "b"`, "no values"}},
		{"json not array", `{"a":1}`, "application/json", []string{"expected an array of objects"}},
		{"json row not object", `[{"a":1},2]`, "application/json", []string{"row 2", "expected an object"}},
		{"json nested", `[{"a":1},{"a":{"x":1}}]`, "application/json", []string{"row 2", `column "a"`, "nested value", "expected a number"}},
		{"json empty array", `[]`, "application/json", []string{"empty"}},
		{"json truncated", `[{"a":1},{"a":`, "application/json", []string{"row 2"}},
		{"json duplicate key", `[{"a":1,"a":2}]`, "application/json", []string{"row 1", `"a"`, "twice"}},
		{"json all null", `[{"a":1,"b":null}]`, "", []string{`column "b"`, "no values"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseReference([]byte(c.body), c.ctype)
			if err == nil {
				t.Fatalf("ParseReference(%q) succeeded, want an error", c.body)
			}
			if k := weirerr.KindOf(err); k != weirerr.Invalid {
				t.Errorf("error kind = %v, want Invalid: %v", k, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
