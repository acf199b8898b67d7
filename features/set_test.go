package features

import (
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/weirerr"
)

const fraudSet = `{"key":"account_id","timestamp_field":"ts","ttl":"48h","aggregations":[
 {"name":"tx_count_1h","op":"count","window":"1h"},
 {"name":"amount_mean_24h","field":"amount","op":"mean","window":"24h"},
 {"name":"amount_std_24h","field":"amount","op":"std","window":"24h"},
 {"name":"merchants_1d","field":"merchant","op":"distinct","window":"24h"}]}`

func TestParseSet(t *testing.T) {
	fs, err := ParseSet("fraud", []byte(fraudSet))
	if err != nil {
		t.Fatal(err)
	}
	if fs.Key != "account_id" || len(fs.Aggregations) != 4 || fs.TTLDuration().Hours() != 48 {
		t.Errorf("parsed %+v", fs)
	}
	if a := fs.Aggregations[0]; a.width != 60_000 || a.n != 60 {
		t.Errorf("1h window: width %d n %d, want 60000ms x 60", a.width, a.n)
	}
}

func TestParseSetRejects(t *testing.T) {
	cases := map[string]struct{ name, body, want string }{
		"bad name":       {"a.b", fraudSet, "name"},
		"not json":       {"s", `{`, "not a valid definition"},
		"unknown field":  {"s", `{"key":"k","aggregations":[],"bogus":1}`, "bogus"},
		"no key":         {"s", `{"aggregations":[{"name":"c","op":"count","window":"1h"}]}`, "key"},
		"no aggs":        {"s", `{"key":"k","aggregations":[]}`, "aggregations is empty"},
		"bad op":         {"s", `{"key":"k","aggregations":[{"name":"c","op":"median","window":"1h"}]}`, "median"},
		"count field":    {"s", `{"key":"k","aggregations":[{"name":"c","op":"count","field":"x","window":"1h"}]}`, "takes no field"},
		"sum no field":   {"s", `{"key":"k","aggregations":[{"name":"c","op":"sum","window":"1h"}]}`, "needs a field"},
		"bad window":     {"s", `{"key":"k","aggregations":[{"name":"c","op":"count","window":"soon"}]}`, "window"},
		"tiny window":    {"s", `{"key":"k","aggregations":[{"name":"c","op":"count","window":"10ms"}]}`, "window"},
		"dup name":       {"s", `{"key":"k","aggregations":[{"name":"c","op":"count","window":"1h"},{"name":"c","op":"count","window":"2h"}]}`, "twice"},
		"reserved name":  {"s", `{"key":"k","aggregations":[{"name":"_weir_x","op":"count","window":"1h"}]}`, "_weir"},
		"bad ttl":        {"s", `{"key":"k","ttl":"-1h","aggregations":[{"name":"c","op":"count","window":"1h"}]}`, "ttl"},
		"name mismatch":  {"s", `{"name":"t","key":"k","aggregations":[{"name":"c","op":"count","window":"1h"}]}`, "does not match"},
		"bad field name": {"s", `{"key":"k","aggregations":[{"name":"c","op":"sum","field":"a b","window":"1h"}]}`, "a b"},
	}
	for what, c := range cases {
		_, err := ParseSet(c.name, []byte(c.body))
		if weirerr.KindOf(err) != weirerr.Invalid || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want Invalid mentioning %q", what, err, c.want)
		}
	}
}
