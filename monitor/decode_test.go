package monitor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/jsonx"
)

// checkDecodeEvent fails unless decodeEvent gives what json.Unmarshal gives:
// the same error text, or an event that encodes to the same JSON.
func checkDecodeEvent(t *testing.T, raw []byte) {
	t.Helper()
	var want, got Event
	werr := json.Unmarshal(raw, &want)
	gerr := decodeEvent(raw, &got)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%q: decodeEvent error %v, json.Unmarshal error %v", raw, gerr, werr)
	}
	if werr != nil {
		return
	}
	wj, err1 := json.Marshal(&want)
	gj, err2 := json.Marshal(&got)
	if err1 != nil || err2 != nil || !bytes.Equal(wj, gj) || !got.TS.Equal(want.TS) {
		t.Fatalf("%q:\n decodeEvent   %s (%v)\n json.Unmarshal %s (%v)", raw, gj, err2, wj, err1)
	}
}

// The form the publisher writes is read by hand, with every field: a field
// added to Event that decodeEventFast does not know sends every event to
// encoding/json, and this test fails.
func TestDecodeEventReadsThePublishersFormByHand(t *testing.T) {
	for _, ev := range []*Event{nonZeroEvent(t), testEvent("r", 3)} {
		raw, err := appendEventJSON(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		var got Event
		if !decodeEventFast(raw, &got) {
			t.Fatalf("%s: not read by hand", raw)
		}
		checkDecodeEvent(t, raw)
	}
}

// What the fast path leaves to encoding/json still decodes as encoding/json
// decodes it, errors worded the same.
func TestDecodeEventMatchesEncodingJSON(t *testing.T) {
	for _, raw := range decodeEventSeeds(t) {
		checkDecodeEvent(t, raw)
	}
}

func decodeEventSeeds(t testing.TB) [][]byte {
	ev, err := appendEventJSON(nil, testEvent("fraud", 7))
	if err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{ev}
	for _, s := range []string{
		`{"ID":"x","Route":"r"}`,                  // keys matched regardless of case
		`{"id":"a","id":"b"}`,                     // the last of repeated keys
		`{"features":{"a":1},"features":{"b":2}}`, // a repeated object merges
		`{"id":null,"ts":null,"features":null}`,   // nulls leave fields alone
		`{"extra":[1,{"x":2}],"route":"r"}`,       // unknown keys are skipped
		`{"ts":"2026-11-29T13:00:00.5+01:00"}`,    // an offset
		`{"ts":"2026-11-29T13:00:00Z\u0000"}`,     // escapes are not unescaped for ts
		`{"ts":"2026-13-29T13:00:00Z"}`,           // no month 13
		`{"latency_us":1.5}`,                      // not an int
		`{"latency_us":99999999999999999999}`,     // out of range
		`{"status":"200"}`,                        // a string for a number
		`{"shadow":1}`,                            // a number for a bool
		`{"outputs":[1]}`,                         // an array for an object
		`{"route":"caf\u00e9 \ud83d\ude00 \xff"}`, // escapes and invalid UTF-8
		`{"model":"m"} `,                          // trailing space
		`{"model":"m"}x`,                          // trailing garbage
		`{"model":"m",}`,                          // a trailing comma
		`[]`, `null`, `"x"`, ``, `{`, `{"id"}`, `{"id":`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range decodeEventSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkDecodeEvent(t, raw) })
}

func BenchmarkDecodeEvent(b *testing.B) {
	raw, err := appendEventJSON(nil, testEvent("bench", 1))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev Event
			_ = json.Unmarshal(raw, &ev)
		}
	})
	b.Run("by-hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev Event
			_ = decodeEvent(raw, &ev)
		}
	})
}

// Nesting is counted from the event, as encoding/json counts it: features
// nested to its limit within the event are refused alike.
func TestDecodeEventNestingLimitCountsTheEvent(t *testing.T) {
	for _, n := range []int{jsonx.MaxDepth - 3, jsonx.MaxDepth - 2, jsonx.MaxDepth - 1, jsonx.MaxDepth, jsonx.MaxDepth + 1} {
		for _, inner := range []string{"1", ""} {
			raw := `{"route":"r","features":{"a":` + strings.Repeat("[", n) + inner + strings.Repeat("]", n) + `}}`
			checkDecodeEvent(t, []byte(raw))
		}
	}
}
