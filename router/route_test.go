package router

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

const twoWay = `{"variants":[{"name":"stable","model":"fraud","version":"1","weight":90},{"name":"canary","model":"fraud","version":"2","weight":10}],"sticky":{"header":"X-User-Id"}}`

func mustParse(t testing.TB, name, raw string) *Route {
	t.Helper()
	r, err := Parse(name, []byte(raw))
	if err != nil {
		t.Fatalf("Parse(%s): %v", raw, err)
	}
	return r
}

// TestParseRejects is the golden table of bad route bodies and the exact
// message each gets.
func TestParseRejects(t *testing.T) {
	v := func(extra string) string {
		return `{"variants":[{"name":"stable","model":"fraud","version":"1","weight":100}]` + extra + `}`
	}
	cases := []struct{ name, route, body, want string }{
		{"bad route name", "../etc", v(""), `route name "../etc" is invalid: expected 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`},
		{"empty body", "r", ``, `route body is empty: expected a JSON object with at least "variants"`},
		{"not json", "r", `{"variants":`, `route body is truncated JSON: expected a complete object`},
		{"syntax", "r", `{"variants":[}`, `route body is not valid JSON at byte 14: invalid character '}' looking for beginning of value`},
		{"trailing", "r", v("") + `{}`, `route body has data after the JSON object: expected exactly one object`},
		{"unknown field", "r", v(`,"weights":[1]`), `route has unknown field "weights": expected plugins, postprocess, variants, sticky, shadow, match, features`},
		{"no variants", "r", `{"variants":[]}`, `route field variants is empty: expected at least one variant {"name","model","version","weight"}`},
		{"missing variants", "r", `{}`, `route field variants is empty: expected at least one variant {"name","model","version","weight"}`},
		{"fractional weight", "r", `{"variants":[{"name":"a","model":"m","weight":10.5}]}`, `route field variants.weight: got JSON number 10.5, expected an integer`},
		{"string weight", "r", `{"variants":[{"name":"a","model":"m","weight":"10"}]}`, `route field variants.weight: got JSON string, expected an integer`},
		{"weight over 100", "r", `{"variants":[{"name":"a","model":"m","weight":150},{"name":"b","model":"m","weight":-50}]}`, `route field variants[0].weight is 150: expected an integer from 0 to 100`},
		{"negative weight", "r", `{"variants":[{"name":"a","model":"m","weight":-1},{"name":"b","model":"m","weight":101}]}`, `route field variants[0].weight is -1: expected an integer from 0 to 100`},
		{"sum not 100", "r", `{"variants":[{"name":"a","model":"m","weight":60},{"name":"b","model":"m","weight":30}]}`, `route field variants: weights sum to 90: expected them to sum to 100`},
		{"duplicate variant", "r", `{"variants":[{"name":"a","model":"m","weight":50},{"name":"a","model":"m","weight":50}]}`, `route field variants[1].name "a" repeats variants[0].name: expected unique variant names`},
		{"bad variant name", "r", `{"variants":[{"name":"-a","model":"m","weight":100}]}`, `route field variants[0].name is "-a": expected 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`},
		{"missing model", "r", `{"variants":[{"name":"a","weight":100}]}`, `route field variants[0].model is "": expected a model name (1-64 characters of A-Z a-z 0-9 . _ -)`},
		{"bad version", "r", `{"variants":[{"name":"a","model":"m","version":"v/1","weight":100}]}`, `route field variants[0].version is "v/1": expected a version name, "latest" or no version`},
		{"sticky empty", "r", v(`,"sticky":{}`), `route field sticky has neither header nor field: expected exactly one of {"header":"X-User-Id"} or {"field":"account_id"}`},
		{"sticky both", "r", v(`,"sticky":{"header":"X-U","field":"u"}`), `route field sticky has both header "X-U" and field "u": expected exactly one of them`},
		{"sticky bad header", "r", v(`,"sticky":{"header":"X U"}`), `route field sticky.header is "X U": expected an HTTP header name (letters, digits, - _)`},
		{"shadow percent", "r", v(`,"shadow":{"model":"m","percent":120}`), `route field shadow.percent is 120: expected a number from 0 to 100`},
		{"shadow no model", "r", v(`,"shadow":{"percent":5}`), `route field shadow.model is "": expected a model name`},
		{"match unknown variant", "r", v(`,"match":[{"header":"X-Weir-Variant","value":"canary","variant":"canary"}]`), `route field match[0].variant is "canary": expected one of the route's variants [stable]`},
		{"match no value", "r", v(`,"match":[{"header":"X-Weir-Variant","variant":"stable"}]`), `route field match[0].value is empty: expected the header value that forces variant "stable"`},
		{"plugin name", "r", v(`,"plugins":[{"name":""}]`), `route field plugins[0].name is "": expected a plugin name (1-64 characters of A-Z a-z 0-9 . _ -)`},
		{"plugin config", "r", v(`,"plugins":[{"name":"p","config":[1]}]`), `route field plugins[0].config is [1]: expected a JSON object`},
		{"plugin on_error", "r", v(`,"postprocess":[{"name":"p","on_error":"ignore"}]`), `route field postprocess[0].on_error is "ignore": expected "fail", "skip" or {"default":{...}}`},
		{"plugin on_error default", "r", v(`,"postprocess":[{"name":"p","on_error":{"default":[1]}}]`), `route field postprocess[0].on_error.default is [1]: expected a JSON object (the output used when the plugin fails)`},
		{"plugin on_error number", "r", v(`,"postprocess":[{"name":"p","on_error":3}]`), `route body: on_error is 3: expected "fail", "skip" or {"default":{...}}`},
		{"plugin timeout", "r", v(`,"plugins":[{"name":"p","timeout":"5"}]`), `route field plugins[0].timeout is "5": expected a duration such as 50ms, at most 1m`},
		{"plugin memory", "r", v(`,"plugins":[{"name":"p","memory_mb":5000}]`), `route field plugins[0].memory_mb is 5000: expected a whole number of MiB from 1 to 4096`},
		{"variant plugin", "r", `{"variants":[{"name":"a","model":"m","weight":100,"plugins":[{"name":"p","version":"x/y"}]}]}`, `route field variants[0].plugins[0].version is "x/y": expected a version name, "latest" or no version`},
		{"features sets", "r", v(`,"features":{"sets":[],"key_field":"a"}`), `route field features.sets is empty: expected at least one feature set name`},
		{"features key", "r", v(`,"features":{"sets":["tx"]}`), `route field features.key_field is "": expected the body field that holds the entity key`},
		{"name mismatch", "r", v(`,"name":"other"`), `route "r": field name is "other": expected the route's own name "r" (or no name)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.route, []byte(c.body))
			if err == nil {
				t.Fatalf("Parse accepted %s", c.body)
			}
			if weirerr.KindOf(err) != weirerr.Invalid {
				t.Errorf("kind = %v, want Invalid", weirerr.KindOf(err))
			}
			if err.Error() != c.want {
				t.Errorf("message\n got: %s\nwant: %s", err, c.want)
			}
		})
	}
}

func TestParseRoundTrip(t *testing.T) {
	in := `{"plugins":[{"name":"enrich","version":"3","config":{"k":[1,2]},"on_error":"skip"}],"postprocess":[{"name":"shape"}],` +
		`"variants":[{"name":"stable","model":"fraud","version":"1","weight":90},{"name":"canary","model":"fraud","version":"latest","weight":10}],` +
		`"sticky":{"field":"account_id"},"shadow":{"model":"fraud","version":"3","percent":2.5},` +
		`"match":[{"header":"X-Weir-Variant","value":"canary","variant":"canary"}],"features":{"sets":["tx"],"key_field":"account_id"}}`
	r := mustParse(t, "fraud.v2", in)
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// What GET returns parses back to the same route.
	r2 := mustParse(t, "fraud.v2", string(out))
	out2, _ := json.Marshal(r2)
	if string(out) != string(out2) {
		t.Fatalf("not stable:\n%s\n%s", out, out2)
	}
	var got, want map[string]any
	_ = json.Unmarshal(out, &got)
	_ = json.Unmarshal([]byte(in), &want)
	delete(got, "name")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("round trip changed the route:\n got %v\nwant %v", got, want)
	}
	if !r.Plugins()[0].SkipOnError() || r.Postprocess()[0].SkipOnError() {
		t.Error("on_error not carried")
	}
}

func TestStickyNeverMovesBack(t *testing.T) {
	const keys = 10000
	weights := []int{10, 25, 50, 75, 100}
	prev := make([]string, keys)
	for _, w := range weights {
		r := mustParse(t, "fraud", fmt.Sprintf(`{"variants":[{"name":"stable","model":"fraud","version":"1","weight":%d},{"name":"canary","model":"fraud","version":"2","weight":%d}],"sticky":{"header":"X-User-Id"}}`, 100-w, w))
		canary := 0
		for i := range keys {
			key := fmt.Sprintf("user-%d", i)
			got := r.Choose(key, true, nil).Name
			if again := r.Choose(key, true, nil).Name; again != got {
				t.Fatalf("key %s not sticky: %s then %s", key, got, again)
			}
			if prev[i] == "canary" && got != "canary" {
				t.Fatalf("weight %d: key %s moved from canary back to %s", w, key, got)
			}
			prev[i] = got
			if got == "canary" {
				canary++
			}
		}
		share := float64(canary) * 100 / keys
		if share < float64(w)-2 || share > float64(w)+2 {
			t.Errorf("canary weight %d: share %.2f%%, want within 2 points", w, share)
		}
	}
}

// With three variants, moving weight between the first and the last leaves
// the middle variant's users where they are.
func TestStickyThreeVariantsMiddleStays(t *testing.T) {
	mk := func(s, c int) *Route {
		return mustParse(t, "r", fmt.Sprintf(`{"variants":[{"name":"stable","model":"m","weight":%d},{"name":"b","model":"m","weight":20},{"name":"canary","model":"m","weight":%d}]}`, s, c))
	}
	r1, r2 := mk(70, 10), mk(40, 40)
	for i := range 5000 {
		key := fmt.Sprintf("k%d", i)
		a, b := r1.Choose(key, true, nil).Name, r2.Choose(key, true, nil).Name
		if (a == "b") != (b == "b") {
			t.Fatalf("key %s moved %s -> %s though variant b kept its weight", key, a, b)
		}
		if a == "canary" && b != "canary" {
			t.Fatalf("key %s moved back from canary to %s", key, b)
		}
	}
}

func TestRandomSplit(t *testing.T) {
	r := mustParse(t, "r", `{"variants":[{"name":"a","model":"m","weight":70},{"name":"b","model":"m","weight":20},{"name":"c","model":"m","weight":10},{"name":"z","model":"m","weight":0}]}`)
	const n = 100000
	count := map[string]int{}
	for range n {
		count[r.Choose("", false, nil).Name]++
	}
	// Standard deviation of a share is at most 0.16 points at n=100000; a
	// 1.5-point tolerance is more than 9 sigma, so this cannot flake.
	for name, w := range map[string]float64{"a": 70, "b": 20, "c": 10, "z": 0} {
		share := float64(count[name]) * 100 / n
		if share < w-1.5 || share > w+1.5 {
			t.Errorf("variant %s: share %.2f%%, want %v%% ± 1.5", name, share, w)
		}
	}
	if count["z"] != 0 {
		t.Errorf("weight-0 variant chosen %d times", count["z"])
	}
}

func TestMatchForcesVariant(t *testing.T) {
	r := mustParse(t, "r", `{"variants":[{"name":"stable","model":"m","weight":100},{"name":"canary","model":"m","version":"2","weight":0}],"sticky":{"header":"X-User-Id"},"match":[{"header":"X-Weir-Variant","value":"canary","variant":"canary"}]}`)
	hdr := func(h map[string]string) func(string) string {
		return func(k string) string { return h[k] }
	}
	for i := range 200 {
		key := fmt.Sprint(i)
		if v := r.Choose(key, true, hdr(map[string]string{"X-Weir-Variant": "canary"})); v.Name != "canary" || v.Version != "2" {
			t.Fatalf("forced header gave %+v", v)
		}
		if v := r.Choose(key, true, hdr(map[string]string{"X-Weir-Variant": "other"})); v.Name != "stable" {
			t.Fatalf("non-matching header gave %s", v.Name)
		}
		if v := r.Choose("", false, nil); v.Name != "stable" {
			t.Fatalf("no header gave %s", v.Name)
		}
	}
}

func TestShadowPercent(t *testing.T) {
	for _, p := range []float64{0, 5, 50, 100} {
		r := mustParse(t, "r", fmt.Sprintf(`{"variants":[{"name":"a","model":"m","weight":100}],"shadow":{"model":"m","version":"9","percent":%v}}`, p))
		const n = 50000
		hits := 0
		for range n {
			s, ok := r.Shadow()
			if s == nil || s.Version != "9" {
				t.Fatal("shadow target lost")
			}
			if ok {
				hits++
			}
		}
		share := float64(hits) * 100 / n
		if share < p-2 || share > p+2 || (p == 0 && hits != 0) || (p == 100 && hits != n) {
			t.Errorf("percent %v: mirrored %.2f%%", p, share)
		}
	}
	r := mustParse(t, "r", twoWay)
	if s, ok := r.Shadow(); s != nil || ok {
		t.Error("route without shadow mirrors")
	}
}

func TestNamesWithDots(t *testing.T) {
	for _, n := range []string{"a.", "a..b", "fraud.v1"} {
		if keyName(nameKey(n)) != n || strings.Contains(nameKey(n), ".") {
			t.Errorf("key escape of %q broken: %q", n, nameKey(n))
		}
	}
}

func BenchmarkChooseSticky(b *testing.B) {
	r := mustParse(b, "fraud", twoWay)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%08d", i)
	}
	hdr := func(string) string { return "" }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_ = r.Choose(keys[i&1023], true, hdr)
	}
}

func BenchmarkChooseRandom(b *testing.B) {
	r := mustParse(b, "fraud", twoWay)
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Choose("", false, nil)
	}
}

func BenchmarkChooseMatchRule(b *testing.B) {
	r := mustParse(b, "r", `{"variants":[{"name":"stable","model":"m","weight":90},{"name":"canary","model":"m","weight":10}],"match":[{"header":"X-Weir-Variant","value":"canary","variant":"canary"}]}`)
	hdr := func(string) string { return "" }
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Choose("user-1", true, hdr)
	}
}

// TimeoutOverride runs on every plugin call of every request.
func TestTimeoutOverrideIsFree(t *testing.T) {
	r := mustParse(t, "r", `{"plugins":[{"name":"a"},{"name":"b","timeout":"50ms"}],"variants":[{"name":"v","model":"m","weight":100}]}`)
	ps := r.Plugins()
	if got := ps[0].TimeoutOverride(); got != 0 {
		t.Errorf("no timeout: TimeoutOverride() = %s, want 0", got)
	}
	if got := ps[1].TimeoutOverride(); got != 50*time.Millisecond {
		t.Errorf(`timeout "50ms": TimeoutOverride() = %s, want 50ms`, got)
	}
	for _, p := range ps {
		if n := testing.AllocsPerRun(100, func() { p.TimeoutOverride() }); n != 0 {
			t.Errorf("plugin %s (timeout %q): TimeoutOverride allocates %.0f times a call, want 0", p.Name, p.Timeout, n)
		}
	}
}
