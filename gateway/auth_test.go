package gateway_test

import (
	"os"
	"path/filepath"
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
