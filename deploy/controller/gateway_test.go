package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	sdk "github.com/weirhq/weir/sdk/client"
)

// The reconciler tests run against a real weir gateway (testgw: embedded
// NATS with JetStream, ONNX Runtime, wazero, HTTP on loopback) and assert on
// what that gateway serves. Artifacts come from fileServer, a plain HTTP file
// server standing in for wherever a cluster keeps its model files.

// startGateway starts a real gateway whose rollouts are looked at every
// 20ms, so a canary with a short interval finishes within a test.
func startGateway(t *testing.T, opts ...testgw.Option) *testgw.Gateway {
	t.Helper()
	return testgw.Start(t, append([]testgw.Option{testgw.WithOptions(func(o *gateway.Options) { o.CanaryTick = 20 * time.Millisecond })}, opts...)...)
}

// fileServer serves artifact bytes under /files/ on loopback.
type fileServer struct {
	srv *httptest.Server

	mu    sync.Mutex
	files map[string][]byte
	onGet func(name string) // when set, called on every GET
}

func newFileServer(t *testing.T) *fileServer {
	t.Helper()
	fs := &fileServer{files: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/{name}", func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		b, ok := fs.files[r.PathValue("name")]
		onGet := fs.onGet
		fs.mu.Unlock()
		if onGet != nil {
			onGet(r.PathValue("name"))
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
	fs.srv = httptest.NewServer(mux)
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fileServer) setOnGet(f func(name string)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.onGet = f
}

// add serves b at /files/name and returns its URL and hex sha256.
func (fs *fileServer) add(name string, b []byte) (string, string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[name] = b
	sum := sha256.Sum256(b)
	return fs.srv.URL + "/files/" + name, hex.EncodeToString(sum[:])
}

// logReg returns the bytes of a real ONNX logistic regression over features;
// different weights give different bytes, hence different versions.
func logReg(t *testing.T, name string, features []string, weights ...float32) []byte {
	t.Helper()
	b, err := onnx.LogisticRegression(name, features, weights, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// modelVersion returns the gateway's record of name@version, if it has one.
func modelVersion(t *testing.T, g *testgw.Gateway, name, version string) (sdk.VersionInfo, bool) {
	t.Helper()
	models, err := g.Client.ListModels(context.Background())
	if err != nil {
		t.Fatalf("list models on the gateway: %v", err)
	}
	for _, m := range models {
		if m.Name != name {
			continue
		}
		for _, v := range m.Versions {
			if v.Version == version {
				return v, true
			}
		}
	}
	return sdk.VersionInfo{}, false
}

func hasModel(t *testing.T, g *testgw.Gateway, name, version string) bool {
	t.Helper()
	_, ok := modelVersion(t, g, name, version)
	return ok
}

func hasPlugin(t *testing.T, g *testgw.Gateway, name, version string) bool {
	t.Helper()
	plugins, err := g.Client.ListPlugins(context.Background())
	if err != nil {
		t.Fatalf("list plugins on the gateway: %v", err)
	}
	for _, p := range plugins {
		for _, v := range p.Versions {
			if p.Name == name && v == version {
				return true
			}
		}
	}
	return false
}

// gwRoute is the part of the gateway's route JSON the tests look at.
type gwRoute struct {
	Plugins []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"plugins"`
	Variants []struct {
		Name    string `json:"name"`
		Model   string `json:"model"`
		Version string `json:"version"`
		Weight  int    `json:"weight"`
	} `json:"variants"`
	Sticky *struct {
		Header string `json:"header"`
	} `json:"sticky"`
}

// String describes r (nil: absent) for a failure message.
func (r *gwRoute) String() string {
	if r == nil {
		return "absent"
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// route returns the gateway's route, or nil when it has none.
func route(t *testing.T, g *testgw.Gateway, name string) *gwRoute {
	t.Helper()
	raw, err := g.Client.GetRoute(context.Background(), name)
	if err != nil {
		var ge *sdk.Error
		if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
			return nil
		}
		t.Fatalf("get route %s: %v", name, err)
	}
	var r gwRoute
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode route %s: %v\n%s", name, err, raw)
	}
	return &r
}

// onlyVariant reports whether r sends all traffic to model@version.
func (r *gwRoute) onlyVariant(model, version string) bool {
	return r != nil && len(r.Variants) == 1 && r.Variants[0].Model == model &&
		r.Variants[0].Version == version && r.Variants[0].Weight == 100
}

// gwRollout is the part of the gateway's rollout status the tests look at.
type gwRollout struct {
	State     string    `json:"state"`
	Weight    int       `json:"weight"`
	StartedAt time.Time `json:"started_at"`
	Spec      struct {
		Variant      string   `json:"variant"`
		Model        string   `json:"model"`
		Version      string   `json:"version"`
		Steps        []int    `json:"steps"`
		Interval     string   `json:"interval"`
		MaxErrorRate *float64 `json:"max_error_rate"`
		MaxP99Ms     *float64 `json:"max_p99_ms"`
		MinRequests  int64    `json:"min_requests"`
	} `json:"spec"`
}

func rollout(t *testing.T, g *testgw.Gateway, routeName string) gwRollout {
	t.Helper()
	raw, err := g.Client.Rollout(context.Background(), routeName)
	if err != nil {
		t.Fatalf("get rollout of %s: %v", routeName, err)
	}
	var st gwRollout
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("decode rollout of %s: %v\n%s", routeName, err, raw)
	}
	return st
}

// prediction is the answer of POST /v1/routes/{route}/predict.
type prediction struct {
	Status  int
	Body    string
	Variant string `json:"variant"`
	Model   string `json:"model"`
	Version string `json:"version"`
}

// predict sends one event through the gateway's route, as a caller would.
func predict(t *testing.T, g *testgw.Gateway, routeName, event string) prediction {
	t.Helper()
	resp, err := http.Post(g.URL+"/v1/routes/"+routeName+"/predict", "application/json", bytes.NewBufferString(event))
	if err != nil {
		t.Fatalf("predict on %s: %v", routeName, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the answer of predict on %s: %v", routeName, err)
	}
	p := prediction{Status: resp.StatusCode, Body: string(b)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("decode the answer of predict on %s: %v\n%s", routeName, err, b)
		}
	}
	return p
}

// servedBy fails the test unless event on routeName is answered 200 by
// model@version.
func servedBy(t *testing.T, g *testgw.Gateway, routeName, event, model, version string) {
	t.Helper()
	p := predict(t, g, routeName, event)
	if p.Status != http.StatusOK || p.Model != model || p.Version != version {
		t.Fatalf("predict on %s with %s: HTTP %d %s, want 200 from %s@%s", routeName, event, p.Status, p.Body, model, version)
	}
}
