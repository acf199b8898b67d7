package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
)

// TestAPIKeysGuardReads pins issue 11 defect 9: with --api-keys, every
// endpoint but health needs a key or the admin token, reads included;
// /metrics stays open unless ProtectMetrics (--metrics-open=false).
func TestAPIKeysGuardReads(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("k-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, protect := range []bool{false, true} {
		g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) {
			o.APIKeysFile, o.ProtectMetrics = keys, protect
		}))
		pushModel(t, g, "scorer", "1", scorer(t, txFeatures, []float32{0.5, 0.8, 3}, -4))
		reads := []string{
			"/v2", "/v2/models/scorer", "/v2/models/scorer/ready",
			"/v1/models", "/v1/models/scorer", "/v1/plugins", "/v1/routes", "/v1/routes/scorer",
			"/v1/routes/scorer/stats", "/v1/routes/scorer/timeseries", "/v1/routes/scorer/rollout",
			"/v1/drift/scorer", "/v1/alerts", "/v1/features/acct-1", "/v1/featuresets",
		}
		for _, p := range reads {
			if a := call(t, "GET", g.URL+p, "", nil); a.status != 401 {
				t.Errorf("GET %s without a key: %d %.100s, want 401", p, a.status, a.raw)
			}
			for _, tok := range []string{"k-123", g.Token} {
				if a := call(t, "GET", g.URL+p, tok, nil); a.status == 401 {
					t.Errorf("GET %s with a valid token: 401 %s", p, a.raw)
				}
			}
		}
		if a := call(t, "POST", g.URL+"/v1/routes/scorer/predict", "", []byte(`{}`)); a.status != 401 {
			t.Errorf("predict without a key: %d", a.status)
		}
		for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/"} {
			if a := call(t, "GET", g.URL+p, "", nil); a.status != 200 {
				t.Errorf("GET %s without a key: %d, want 200 (open)", p, a.status)
			}
		}
		want := 200
		if protect {
			want = 401
		}
		if a := call(t, "GET", g.URL+"/metrics", "", nil); a.status != want {
			t.Errorf("ProtectMetrics=%v: /metrics without a key answered %d, want %d", protect, a.status, want)
		}
		if a := call(t, "GET", g.URL+"/metrics", "k-123", nil); a.status != 200 {
			t.Errorf("/metrics with a key: %d", a.status)
		}
	}
}

// TestDataDirPrivate pins part of issue 11 defect 10: the data dir is 0700
// (also when it existed with looser bits) and what weir writes there (admin
// token, node id, spool, archive) is readable by its user only.
func TestDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := testgw.Start(t, testgw.WithDataDir(dir), testgw.WithOptions(func(o *gateway.Options) { o.AdminToken = "" }))
	_ = g
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	// The archive goes to the NATS object store unless --archive-dir says
	// otherwise; the NATS credentials are in nats-url.
	for _, p := range []string{"admin-token", "nats-url", "node-id", "spool", "nats"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others may read it", p, fi.Mode().Perm())
		}
	}
}

// TestPprofIsAdminOnly pins issue 26's operator profiler: --pprof serves
// Go's profiles to the admin token only, and nothing without the flag.
func TestPprofIsAdminOnly(t *testing.T) {
	for _, on := range []bool{false, true} {
		g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.Pprof = on }))
		const p = "/debug/pprof/heap?debug=1"
		withToken := call(t, "GET", g.URL+p, g.Token, nil)
		if !on {
			if withToken.status != 404 {
				t.Errorf("without --pprof, GET %s answered %d, want 404", p, withToken.status)
			}
			continue
		}
		if withToken.status != 200 || !strings.Contains(string(withToken.raw), "heap profile") {
			t.Errorf("--pprof: GET %s with the admin token: %d %.100s, want the heap profile", p, withToken.status, withToken.raw)
		}
		if a := call(t, "GET", g.URL+p, "", nil); a.status != 401 {
			t.Errorf("--pprof: GET %s without a token: %d, want 401", p, a.status)
		}
	}
}
