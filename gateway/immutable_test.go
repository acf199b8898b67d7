package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// TestVersionsAreImmutable: pushing the same bytes to an existing model or
// plugin version answers 200 and changes nothing; other bytes answer 409
// naming the version and saying to push a new one, and every gateway keeps
// serving the first bytes.
func TestVersionsAreImmutable(t *testing.T) {
	a := testgw.Start(t)
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()))
	low := scorer(t, []string{"x"}, []float32{1}, 0)
	high := scorer(t, []string{"x"}, []float32{1}, 100)
	put := func(path string, body []byte) answer {
		t.Helper()
		return call(t, "PUT", a.URL+path, a.Token, body)
	}
	score := func(g *testgw.Gateway) string {
		t.Helper()
		return call(t, "POST", g.URL+"/v1/routes/m/predict", "", []byte(`{"x":1}`)).raw
	}

	if r := put("/v1/models/m/versions/1", low); r.status != 201 {
		t.Fatalf("first push of m@1: %d %s, want 201", r.status, r.raw)
	}
	before := score(a)
	listed := func() string { return call(t, "GET", a.URL+"/v1/models/m", a.Token, nil).raw }
	listing := listed()

	r := put("/v1/models/m/versions/1", low)
	if r.status != 200 || r.body["created"] != false || !strings.Contains(r.raw, "already there") {
		t.Errorf("the same bytes again: %d %s, want 200 saying m@1 is already there", r.status, r.raw)
	}
	if got := listed(); got != listing {
		t.Errorf("the same bytes again changed the listing:\n%s\nwas\n%s", got, listing)
	}
	r = put("/v1/models/m/versions/1", high)
	if msg, _ := r.body["error"].(string); r.status != 409 || !strings.Contains(msg, "m@1") || !strings.Contains(msg, "new version") {
		t.Errorf("other bytes under m@1: %d %s, want 409 naming m@1 and saying to push a new version", r.status, r.raw)
	}
	for _, g := range []*testgw.Gateway{a, b} {
		testpoll.For(t, 20*time.Second, "m@1 served with its first bytes", func() error {
			if got := score(g); got != before {
				return fmt.Errorf("predict answers %s, want %s", got, before)
			}
			return nil
		})
	}

	echo, other := plugin(t, "wat-echo"), plugin(t, "trap")
	if r := put("/v1/plugins/p/versions/1", echo); r.status != 201 {
		t.Fatalf("first push of plugin p@1: %d %s, want 201", r.status, r.raw)
	}
	if r := put("/v1/plugins/p/versions/1", echo); r.status != 200 || r.body["created"] != false || !strings.Contains(r.raw, "already there") {
		t.Errorf("the same plugin bytes again: %d %s, want 200 saying p@1 is already there", r.status, r.raw)
	}
	r = put("/v1/plugins/p/versions/1", other)
	if msg, _ := r.body["error"].(string); r.status != 409 || !strings.Contains(msg, "p@1") || !strings.Contains(msg, "new version") {
		t.Errorf("other bytes under plugin p@1: %d %s, want 409 naming p@1 and saying to push a new version", r.status, r.raw)
	}
	plugins, err := a.Client.ListPlugins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(plugins) != 1 || len(plugins[0].Versions) != 1 {
		t.Errorf("plugins listed %+v, want p with its one version", plugins)
	}
}

// TestReferenceMustNameModelFeatures: reference data whose columns name
// none of the model's features is refused with 400 listing both; a partial
// overlap is accepted, naming the columns that match no feature.
func TestReferenceMustNameModelFeatures(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "m", "1", scorer(t, []string{"amount", "risk"}, []float32{1, 1}, 0))
	put := func(csv string) answer {
		t.Helper()
		return callWith(t, "PUT", g.URL+"/v1/models/m/versions/1/reference", g.Token, []byte(csv), http.Header{"Content-Type": {"text/csv"}})
	}
	r := put("foo,bar\n1,2\n3,4\n")
	msg, _ := r.body["error"].(string)
	if r.status != 400 || !strings.Contains(msg, "amount, risk") || !strings.Contains(msg, "foo, bar") {
		t.Errorf("a reference naming none of the features: %d %s, want 400 listing the features (amount, risk) and the columns (foo, bar)", r.status, r.raw)
	}
	if m, _ := g.Client.ListModels(context.Background()); len(m) != 1 || m[0].Versions[0].Reference {
		t.Errorf("the refused reference was stored: %+v", m)
	}

	r = put("amount,bar\n1,2\n3,4\n")
	if r.status != 201 || fmt.Sprint(r.body["unmatched"]) != "[bar]" {
		t.Errorf("a reference with one feature and one other column: %d %s, want 201 naming the unmatched column bar", r.status, r.raw)
	}
}
