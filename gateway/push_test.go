package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testgw"
)

// TestFailedRecordServesNowhere: when NATS refuses a version's record (here
// the bucket takes no message that large), the push fails and no gateway
// serves the version, the one that took it included, models and plugins
// alike; once NATS takes records again, the same push lands on both.
func TestFailedRecordServesNowhere(t *testing.T) {
	a := testgw.Start(t)
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()))
	_, js := natstest.ConnectURL(t, a.NATSURL())
	ctx := context.Background()
	s, err := js.Stream(ctx, "KV_weir-models")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	limit := cfg.MaxMsgSize
	cfg.MaxMsgSize = 16
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	model := scorer(t, []string{"x"}, []float32{7}, 0)
	r := call(t, "PUT", a.URL+"/v1/models/m/versions/7", a.Token, model)
	if r.status/100 == 2 {
		t.Fatalf("push while NATS refuses the record: %d %s, want a failure", r.status, r.raw)
	}
	for name, g := range map[string]*testgw.Gateway{"A (pushed to)": a, "B": b} {
		if got := call(t, "GET", g.URL+"/v2/models/m/versions/7/ready", "", nil); got.status == 200 {
			t.Errorf("gateway %s serves m@7, whose record was never written", name)
		}
		if got := call(t, "POST", g.URL+"/v1/routes/m/predict", "", []byte(`{"x":1}`)); got.status == 200 {
			t.Errorf("gateway %s's implicit route m answers %s, though no version of m is recorded", name, got.raw)
		}
	}

	// Plugins alike.
	ps, err := js.Stream(ctx, "KV_weir-plugins")
	if err != nil {
		t.Fatal(err)
	}
	pcfg := ps.CachedInfo().Config
	pcfg.MaxMsgSize = 16
	if _, err := js.UpdateStream(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "PUT", a.URL+"/v1/plugins/p/versions/1", a.Token, plugin(t, "wat-echo")); r.status/100 == 2 {
		t.Fatalf("plugin push while NATS refuses the record: %d %s, want a failure", r.status, r.raw)
	}
	for name, g := range map[string]*testgw.Gateway{"A (pushed to)": a, "B": b} {
		if r := call(t, "GET", g.URL+"/v1/plugins", g.Token, nil); r.status != 200 || strings.Contains(r.raw, `"p"`) {
			t.Errorf("gateway %s lists plugins %s, though p@1's record was never written", name, r.raw)
		}
		route := `{"plugins":[{"name":"p","version":"1"}],"variants":[{"name":"a","model":"m","version":"7","weight":100}]}`
		if r := call(t, "PUT", g.URL+"/v1/routes/r", g.Token, []byte(route)); r.status/100 == 2 {
			t.Errorf("gateway %s took a route through plugin p@1, whose record was never written: %d %s", name, r.status, r.raw)
		}
	}

	cfg.MaxMsgSize = limit
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "PUT", a.URL+"/v1/models/m/versions/7", a.Token, model); r.status != 201 {
		t.Fatalf("the same push once NATS takes records: %d %s, want 201", r.status, r.raw)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		r := call(t, "GET", b.URL+"/v2/models/m/versions/7/ready", "", nil)
		return r.status == 200, r.raw
	}, "gateway B to serve m@7")
}

// TestPushAnswers503WhenNATSIsAway: NATS stops while a model's bytes are
// on their way; the push answers 503 with Retry-After once the request's
// deadline has passed, not 500, and serves nowhere.
func TestPushAnswers503WhenNATSIsAway(t *testing.T) {
	srv := natstest.Start(t)
	a := testgw.Start(t, testgw.WithNATS(srv.URL()), testgw.WithOptions(func(o *gateway.Options) {
		o.RequestTimeout = 2 * time.Second
	}))
	model := scorer(t, []string{"x"}, []float32{7}, 0)
	body, w := io.Pipe()
	req, err := http.NewRequest("PUT", a.URL+"/v1/models/m/versions/7", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.ContentLength = int64(len(model))
	go func() {
		_, _ = w.Write(model[:len(model)/2])
		srv.Shutdown() // NATS goes away mid-push
		_, _ = w.Write(model[len(model)/2:])
		w.Close()
	}()
	hc := &http.Client{Timeout: time.Minute}
	start := time.Now()
	resp, err := hc.Do(req)
	t.Logf("answered after %v", time.Since(start))
	if err != nil {
		t.Fatalf("push while NATS is away: %v, want an answer", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("push while NATS is away: %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	if got := call(t, "GET", a.URL+"/v2/models/m/versions/7/ready", "", nil); got.status == 200 {
		t.Errorf("m@7 is served, though its push answered %d", resp.StatusCode)
	}
}
