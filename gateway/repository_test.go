package gateway_test

import (
	"encoding/json"
	"testing"

	"github.com/weirhq/weir/internal/testgw"
)

// TestRepositoryExtension: Triton's index, load and unload over HTTP. Unload
// stops serving a version here and keeps it stored; load serves it again.
func TestRepositoryExtension(t *testing.T) {
	g := testgw.Start(t)
	pushModel(t, g, "add", "1", testModel(t, "test_add"))
	pushModel(t, g, "add", "2", testModel(t, "test_add"))

	index := func(body string) string {
		t.Helper()
		a := call(t, "POST", g.URL+"/v2/repository/index", "", []byte(body))
		if a.status != 200 {
			t.Fatalf("index: %d %s", a.status, a.raw)
		}
		return a.raw
	}
	if got, want := index(""), `[{"name":"add","version":"1","state":"READY"},{"name":"add","version":"2","state":"READY"}]`; got != want {
		t.Fatalf("index answered %s, want %s", got, want)
	}

	unload := g.URL + "/v2/repository/models/add/unload"
	if a := call(t, "POST", unload, "", nil); a.status != 401 {
		t.Fatalf("unload without the admin token: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", unload, g.Token, []byte(`{"parameters":{"version":"1"}}`)); a.status != 200 {
		t.Fatalf("unload: %d %s", a.status, a.raw)
	}
	if got, want := index(`{}`), `[{"name":"add","version":"1","state":"UNAVAILABLE","reason":"unloaded"},{"name":"add","version":"2","state":"READY"}]`; got != want {
		t.Fatalf("index after unload answered %s, want %s", got, want)
	}
	if got, want := index(`{"ready":true}`), `[{"name":"add","version":"2","state":"READY"}]`; got != want {
		t.Fatalf("index of ready versions answered %s, want %s", got, want)
	}
	if a := call(t, "GET", g.URL+"/v2/models/add/versions/1/ready", "", nil); a.status != 503 {
		t.Errorf("ready of an unloaded version: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", g.URL+"/v2/models/add/versions/1/infer", "", addRequest(1)); a.status != 503 {
		t.Errorf("infer on an unloaded version: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", g.URL+"/v2/models/add/infer", "", addRequest(1)); a.status != 200 || a.header.Get("X-Weir-Model-Version") != "2" {
		t.Errorf("infer on the model: %d %s (version %s)", a.status, a.raw, a.header.Get("X-Weir-Model-Version"))
	}
	// Still stored: the admin listing has it.
	var m struct {
		Versions []struct{ Version, State string }
	}
	if a := call(t, "GET", g.URL+"/v1/models/add", "", nil); a.status != 200 || json.Unmarshal([]byte(a.raw), &m) != nil || len(m.Versions) != 2 || m.Versions[0].State != "unloaded" {
		t.Fatalf("GET /v1/models/add after unload: %d %s", a.status, a.raw)
	}

	load := g.URL + "/v2/repository/models/add/load"
	if a := call(t, "POST", load, "", nil); a.status != 401 {
		t.Fatalf("load without the admin token: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", load, g.Token, nil); a.status != 200 {
		t.Fatalf("load: %d %s", a.status, a.raw)
	}
	if a := call(t, "GET", g.URL+"/v2/models/add/versions/1/ready", "", nil); a.status != 200 {
		t.Errorf("ready after load: %d %s", a.status, a.raw)
	}

	// A version a route sends traffic to is not unloaded, as it is not deleted.
	route := `{"variants":[{"name":"stable","model":"add","version":"2","weight":100}]}`
	if a := call(t, "PUT", g.URL+"/v1/routes/r", g.Token, []byte(route)); a.status/100 != 2 {
		t.Fatalf("put route: %d %s", a.status, a.raw)
	}
	for _, c := range []struct {
		url, body string
		status    int
	}{
		{unload, `{"parameters":{"version":"2"}}`, 409},
		{unload, `{"parameters":{"version":"9"}}`, 404},
		{unload, `{"parameters":{"config":"{}"}}`, 400},
		{g.URL + "/v2/repository/models/nope/load", ``, 404},
		{g.URL + "/v2/repository/models/add/load", `{"parameters":`, 400},
	} {
		if a := call(t, "POST", c.url, g.Token, []byte(c.body)); a.status != c.status {
			t.Errorf("POST %s %s: %d %s, want %d", c.url, c.body, a.status, a.raw, c.status)
		}
	}
}
