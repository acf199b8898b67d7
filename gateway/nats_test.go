package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// TestEmbeddedNATSCredentials: the embedded server refuses a client without
// credentials; the gateway wrote them as a full client URL, readable by its
// owner only, which connects; a restart on the same data dir keeps them.
func TestEmbeddedNATSCredentials(t *testing.T) {
	dir := t.TempDir()
	g := testgw.Start(t, testgw.WithDataDir(dir))
	path := filepath.Join(dir, natsx.URLFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	written, err := natsx.ReadURLFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(written)
	if err != nil || u.User == nil {
		t.Fatalf("%s holds %q, want nats://USER:PASSWORD@HOST:PORT", path, natsx.Redact(written))
	}
	if nc, err := nats.Connect("nats://"+u.Host, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected to the embedded server")
	}
	nc, err := natsx.Connect(written, "cli")
	if err != nil {
		t.Fatalf("the URL in %s does not connect: %v", path, err)
	}
	nc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.Shutdown(ctx)
	testgw.Start(t, testgw.WithDataDir(dir))
	again, _ := natsx.ReadURLFile(path)
	if u2, _ := url.Parse(again); u2.User.String() != u.User.String() {
		t.Error("credentials changed across a restart on the same data dir")
	}
}

// TestReadyReportsNATS: readiness is about models, and says NATS's state.
func TestReadyReportsNATS(t *testing.T) {
	g := testgw.Start(t)
	a := call(t, "GET", g.URL+"/v2/health/ready", "", nil)
	if a.status != 200 || a.body["ready"] != true || a.body["nats"] != "connected" {
		t.Fatalf("ready: %d %s", a.status, a.raw)
	}
	m, err := g.Client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains([]byte(m), []byte("weir_nats_connected 1")) {
		t.Error("no weir_nats_connected 1 in /metrics")
	}
}

// subscribeAlerts subscribes to model's drift alerts on the NATS at url,
// until the test ends.
func subscribeAlerts(t *testing.T, url, model string) (*nats.Conn, chan *nats.Msg) {
	t.Helper()
	nc, err := natsx.Connect(url, "alerts")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	alerts := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe("weir.alerts.drift."+model, alerts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return nc, alerts
}

// TestOneDriftAlertPerCrossing: two gateways on one NATS both judge every
// event, and one drift crossing raises exactly one alert between them.
func TestOneDriftAlertPerCrossing(t *testing.T) {
	a := testgw.Start(t)
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()))
	rng := rand.New(rand.NewPCG(3, 4))
	mlp, err := onnx.MLP("m", []int{2, 4, 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, a, "m", "1", mlp)
	if err := a.Client.PushReference(context.Background(), "m", "1", bytes.NewReader(referenceCSV(2000, rng)), "text/csv"); err != nil {
		t.Fatal(err)
	}
	_, alerts := subscribeAlerts(t, a.NATSURL(), "m")
	testpoll.For(t, 20*time.Second, "B to serve m@1 with its reference's features", func() error {
		a := call(t, "POST", b.URL+"/v1/routes/m/predict", "", []byte(`{"amount":50,"risk":0.5}`))
		if a.status != 200 {
			return fmt.Errorf("%d %s", a.status, a.raw)
		}
		return nil
	})
	// Shifted traffic through both gateways.
	for i := 0; i < 1200; i++ {
		g := a
		if i%2 == 1 {
			g = b
		}
		body := fmt.Sprintf(`{"amount":%.3f,"risk":%.3f}`, 75+10*rng.NormFloat64(), rng.Float64())
		if r := call(t, "POST", g.URL+"/v1/routes/m/predict", "", []byte(body)); r.status != 200 {
			t.Fatalf("predict: %d %s", r.status, r.raw)
		}
	}
	count := map[string]int{}
	deadline := time.After(15 * time.Second)
	quiet := time.Duration(0)
	for quiet == 0 || count["amount/drifted"] == 0 {
		select {
		case m := <-alerts:
			var al struct{ Feature, State string }
			json.Unmarshal(m.Data, &al)
			count[al.Feature+"/"+al.State]++
			quiet = 0
		case <-time.After(3 * time.Second): // no more alerts coming: both gateways judged the window
			quiet = 3 * time.Second
		case <-deadline:
			t.Fatalf("no drift alert for amount; alerts seen %v", count)
		}
	}
	if count["amount/drifted"] != 1 {
		t.Errorf("alerts %v, want exactly one amount/drifted between two gateways", count)
	}
}

// TestDeletedVersionLeavesNoState deletes a model version on one gateway
// and checks that the other drops what it kept for it (drift windows and
// metric series), however late its last events arrive: 100 load/delete
// cycles must not leave 100 versions' state behind.
func TestDeletedVersionLeavesNoState(t *testing.T) {
	a := testgw.Start(t)
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()))
	lr, err := onnx.LogisticRegression("m", []string{"a", "b", "c", "d"}, []float32{0.5, -0.2, 0.1, 1}, -1)
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, a, "m", "1", lr)
	body := []byte(`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)
	testpoll.For(t, 30*time.Second, "gateway b to serve m@1 and judge its drift", func() error {
		if a := call(t, "POST", b.URL+"/v2/models/m/versions/1/infer", "", body); a.status != 200 {
			return fmt.Errorf("infer on b: %d %s", a.status, a.raw)
		}
		if a := call(t, "GET", b.URL+"/v1/drift/m/versions/1", b.Token, nil); a.status != 200 {
			return fmt.Errorf("drift on b: %d %s", a.status, a.raw)
		}
		return nil
	})

	if a := call(t, "DELETE", a.URL+"/v1/models/m/versions/1", a.Token, nil); a.status != 204 {
		t.Fatalf("delete m@1: %d %s", a.status, a.raw)
	}
	testpoll.For(t, 30*time.Second, "gateway b to drop m@1's drift state and metric series", func() error {
		if a := call(t, "GET", b.URL+"/v1/drift/m/versions/1", b.Token, nil); a.status != 404 {
			return fmt.Errorf("drift of m@1 on b: %d %s", a.status, a.raw)
		}
		m := call(t, "GET", b.URL+"/metrics", b.Token, nil)
		for _, l := range strings.Split(m.raw, "\n") {
			if strings.HasPrefix(l, "weir_request") && strings.Contains(l, `model="m"`) && strings.Contains(l, `version="1"`) {
				return fmt.Errorf("b still exports %s", l)
			}
		}
		return nil
	})
}

// TestStartWaitsForNATS: a gateway whose NATS cannot be reached at start
// is up and not ready, says it waits for NATS (also to gRPC clients, whose
// connections wait), starts once NATS answers, even after the context
// given to New has ended; and Shutdown ends a wait that never ends.
func TestStartWaitsForNATS(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := natstest.Start(t)
	url, addr, dir := s.URL(), s.Addr(), s.Dir
	s.Shutdown()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, gateway.Options{NATSURL: url, DataDir: t.TempDir(), AdminToken: "t", Logger: quiet})
	cancel() // bounds New only
	if err != nil {
		t.Fatalf("New with NATS unreachable: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	a := call(t, "GET", base+"/v2/health/ready", "", nil)
	if a.status != 503 || !strings.Contains(fmt.Sprint(a.body["waiting"]), "waiting for NATS") {
		t.Errorf("ready while NATS is away: %d %s, want 503 saying it waits for NATS", a.status, a.raw)
	}
	if a := call(t, "GET", base+"/v1/routes", "", nil); a.status != 503 {
		t.Errorf("GET /v1/routes while NATS is away: %d %s, want 503", a.status, a.raw)
	}

	e, err := natsx.Start(natsx.Options{Listen: addr, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	testpoll.For(t, 30*time.Second, "the gateway to start once NATS answers", func() error {
		if a := call(t, "GET", base+"/v2/health/ready", "", nil); a.status != 200 {
			return fmt.Errorf("ready: %d %s", a.status, a.raw)
		}
		return nil
	})
	if a := call(t, "GET", base+"/v1/routes", "", nil); a.status != 200 {
		t.Errorf("GET /v1/routes once started: %d %s", a.status, a.raw)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := g.Shutdown(sctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve ended with %v", err)
	}

	// A wait that never ends: Shutdown ends it, and ServeGRPC with it.
	e.Shutdown()
	g2, err := gateway.New(context.Background(), gateway.Options{NATSURL: url, DataDir: t.TempDir(), AdminToken: "t", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcServed := make(chan error, 1)
	go func() { grpcServed <- g2.ServeGRPC(gln) }()
	if err := g2.Shutdown(sctx); err != nil {
		t.Errorf("shutdown while waiting for NATS: %v", err)
	}
	if err := <-grpcServed; err != nil {
		t.Errorf("ServeGRPC ended with %v", err)
	}
}
