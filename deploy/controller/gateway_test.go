package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testGateway is a real HTTP server on loopback that implements the admin
// endpoints the controller calls, answering as API.md says: 400 for model
// bytes that do not load (here: bytes starting with "bad"), 409 when deleting a
// model version a route sends traffic to. It records every call. It stands in
// for the gateway until the reconciler tests run against a real one.
type testGateway struct {
	srv *httptest.Server

	mu       sync.Mutex
	calls    []string                   // "PUT /v1/models/fraud/versions/1"
	models   map[string]map[string]bool // name -> version -> has reference
	plugins  map[string][]string
	routes   map[string]json.RawMessage
	rollouts map[string]map[string]any // route -> state
	files    map[string][]byte         // artifacts served under /files/
}

func newTestGateway(t *testing.T) *testGateway {
	g := &testGateway{
		models: map[string]map[string]bool{}, plugins: map[string][]string{},
		routes: map[string]json.RawMessage{}, rollouts: map[string]map[string]any{}, files: map[string][]byte{},
	}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

// addFile serves b at /files/name and returns its URL and sha256.
func (g *testGateway) addFile(name string, b []byte) (string, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.files[name] = b
	sum := sha256.Sum256(b)
	return g.srv.URL + "/files/" + name, hex.EncodeToString(sum[:])
}

func (g *testGateway) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (g *testGateway) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if p[0] == "files" && len(p) == 2 {
		b, ok := g.files[p[1]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
		return
	}
	g.calls = append(g.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer test-token" {
		g.fail(w, http.StatusUnauthorized, "missing or wrong admin token")
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		type ver struct {
			Version   string `json:"version"`
			State     string `json:"state"`
			Reference bool   `json:"reference"`
		}
		type model struct {
			Name     string `json:"name"`
			Versions []ver  `json:"versions"`
		}
		out := struct {
			Models []model `json:"models"`
		}{Models: []model{}}
		for name, vs := range g.models {
			m := model{Name: name}
			for v, ref := range vs {
				m.Versions = append(m.Versions, ver{Version: v, State: "ready", Reference: ref})
			}
			out.Models = append(out.Models, m)
		}
		_ = json.NewEncoder(w).Encode(out)
	case len(p) == 5 && p[1] == "models" && r.Method == http.MethodPut:
		if strings.HasPrefix(string(body), "bad") {
			g.fail(w, http.StatusBadRequest, "model "+p[2]+"@"+p[4]+": not a loadable ONNX model: protobuf parsing failed")
			return
		}
		if g.models[p[2]] == nil {
			g.models[p[2]] = map[string]bool{}
		}
		g.models[p[2]][p[4]] = false
		w.WriteHeader(http.StatusCreated)
	case len(p) == 6 && p[1] == "models" && p[5] == "reference" && r.Method == http.MethodPut:
		if _, ok := g.models[p[2]][p[4]]; !ok {
			g.fail(w, http.StatusNotFound, "no model "+p[2]+"@"+p[4])
			return
		}
		g.models[p[2]][p[4]] = true
		w.WriteHeader(http.StatusCreated)
	case len(p) == 5 && p[1] == "models" && r.Method == http.MethodDelete:
		if _, ok := g.models[p[2]][p[4]]; !ok {
			g.fail(w, http.StatusNotFound, "no model "+p[2]+"@"+p[4])
			return
		}
		for route, raw := range g.routes {
			if g.routeUses(raw, p[2], p[4]) {
				g.fail(w, http.StatusConflict, "model "+p[2]+"@"+p[4]+" receives traffic from route "+route)
				return
			}
		}
		delete(g.models[p[2]], p[4])
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/plugins":
		type plugin struct {
			Name     string   `json:"name"`
			Versions []string `json:"versions"`
		}
		out := struct {
			Plugins []plugin `json:"plugins"`
		}{Plugins: []plugin{}}
		for name, vs := range g.plugins {
			out.Plugins = append(out.Plugins, plugin{Name: name, Versions: vs})
		}
		_ = json.NewEncoder(w).Encode(out)
	case len(p) == 5 && p[1] == "plugins" && r.Method == http.MethodPut:
		if !strings.HasPrefix(string(body), "\x00asm") {
			g.fail(w, http.StatusBadRequest, "plugin "+p[2]+": not a Wasm module")
			return
		}
		g.plugins[p[2]] = append(g.plugins[p[2]], p[4])
		w.WriteHeader(http.StatusCreated)
	case len(p) == 5 && p[1] == "plugins" && r.Method == http.MethodDelete:
		g.plugins[p[2]] = slices.DeleteFunc(g.plugins[p[2]], func(v string) bool { return v == p[4] })
		w.WriteHeader(http.StatusNoContent)
	case len(p) == 3 && p[1] == "routes" && r.Method == http.MethodPut:
		g.routes[p[2]] = json.RawMessage(body)
		w.WriteHeader(http.StatusOK)
	case len(p) == 3 && p[1] == "routes" && r.Method == http.MethodGet:
		raw, ok := g.routes[p[2]]
		if !ok {
			g.fail(w, http.StatusNotFound, "no route "+p[2])
			return
		}
		_, _ = w.Write(raw)
	case len(p) == 4 && p[3] == "rollout" && r.Method == http.MethodPost:
		var spec map[string]any
		if err := json.Unmarshal(body, &spec); err != nil {
			g.fail(w, http.StatusBadRequest, "rollout: "+err.Error())
			return
		}
		st := map[string]any{"state": "progressing", "weight": spec["steps"].([]any)[0], "spec": spec}
		g.rollouts[p[2]] = st
		_ = json.NewEncoder(w).Encode(st)
	case len(p) == 4 && p[3] == "rollout" && r.Method == http.MethodGet:
		st, ok := g.rollouts[p[2]]
		if !ok {
			g.fail(w, http.StatusNotFound, "no rollout on route "+p[2])
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	default:
		g.fail(w, http.StatusNotFound, "test gateway does not implement "+r.Method+" "+r.URL.Path)
	}
}

func (g *testGateway) routeUses(raw json.RawMessage, model, version string) bool {
	var rt struct {
		Variants []struct{ Model, Version string }
	}
	_ = json.Unmarshal(raw, &rt)
	for _, v := range rt.Variants {
		if v.Model == model && v.Version == version {
			return true
		}
	}
	return false
}

func (g *testGateway) hasModel(name, version string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.models[name][version]
	return ok
}

func (g *testGateway) hasReference(name, version string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.models[name][version]
}

func (g *testGateway) route(name string) map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out map[string]any
	_ = json.Unmarshal(g.routes[name], &out)
	return out
}

func (g *testGateway) count(call string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (g *testGateway) setRollout(route string, kv map[string]any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, v := range kv {
		g.rollouts[route][k] = v
	}
}

func (g *testGateway) rollout(route string) map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rollouts[route]
}
