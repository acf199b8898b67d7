package reqbody

import (
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/weirerr"
)

// FuzzPredictBody fuzzes the predict body parser (DecodeRows): it must
// never panic, never return more than maxRows rows (refusing more with 413
// before decoding them), answer only Invalid or TooLarge errors, and return
// rows only as non-nil objects.
func FuzzPredictBody(f *testing.F) {
	const maxRows = 8
	for _, seed := range []string{
		`{"amount":12.5,"merchant":"m1"}`,
		`[{"a":1},{"a":2}]`,
		`[` + strings.Repeat(`{},`, maxRows) + `{}]`, // one over --max-rows
		`[{"a":1}] trailing`, `[{"a":1}][]`, `[1,2]`, `[null]`, `[]`, `null`, `{}`, ``, `   `,
		`{"amount":1e999}`, `{"a":"` + strings.Repeat("x", 1000) + `"}`,
		strings.Repeat("[", 10000), `{"a":` + strings.Repeat(`{"b":`, 200) + `1` + strings.Repeat("}", 201),
		`[{"a":1},`, `[{"a":1}`, `{"a":NaN}`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rows, err := DecodeRows(body, maxRows)
		if err != nil {
			if k := weirerr.KindOf(err); k != weirerr.Invalid && k != weirerr.TooLarge {
				t.Fatalf("error of kind %d: %v", k, err)
			}
			return
		}
		if len(rows) == 0 || len(rows) > maxRows {
			t.Fatalf("%d rows accepted, want 1..%d", len(rows), maxRows)
		}
		for i, r := range rows {
			if r == nil {
				t.Fatalf("row %d is nil", i)
			}
		}
	})
}
