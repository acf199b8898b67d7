package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

func referenceCSV(n int, rng *rand.Rand) []byte {
	var b bytes.Buffer
	b.WriteString("amount,risk\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%.3f,%.3f\n", 50+10*rng.NormFloat64(), rng.Float64())
	}
	return b.Bytes()
}

// TestDriftSeenWithinSeconds: live traffic from the reference distribution
// raises no alert; shifting one feature raises exactly one, for that
// feature, on NATS and in GET /v1/drift.
func TestDriftSeenWithinSeconds(t *testing.T) {
	g := testgw.Start(t)
	rng := rand.New(rand.NewPCG(1, 2))
	mlp, err := onnx.MLP("m", []int{2, 4, 1}, 1) // no feature list of its own
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, g, "m", "1", mlp)
	if err := g.Client.PushReference(context.Background(), "m", "1", bytes.NewReader(referenceCSV(2000, rng)), "text/csv"); err != nil {
		t.Fatal(err)
	}
	// The reference's header became the feature list: predict by name.
	nc, err := natsx.Connect(g.NATSURL(), "alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	alerts := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("weir.alerts.drift.m", alerts)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	send := func(n int, shift float64) {
		for i := 0; i < n; i++ {
			body := fmt.Sprintf(`{"amount":%.3f,"risk":%.3f}`, 50+10*rng.NormFloat64()+shift, rng.Float64())
			if a := call(t, "POST", g.URL+"/v1/routes/m/predict", "", []byte(body)); a.status != 200 {
				t.Fatalf("predict: %d %s", a.status, a.raw)
			}
		}
	}
	send(600, 0)
	driftOf := func(feature string) (value float64, drifted bool, count int) {
		var out struct {
			Results []struct {
				Feature string
				Value   float64
				Drifted bool
				Window  struct{ Count int }
			}
		}
		if err := g.Client.Get(context.Background(), "/v1/drift/m", &out); err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Results {
			if r.Feature == feature {
				return r.Value, r.Drifted, r.Window.Count
			}
		}
		return 0, false, 0
	}
	testpoll.For(t, 10*time.Second, "a judged window", func() error {
		if _, _, n := driftOf("amount"); n < 500 {
			return fmt.Errorf("amount's window holds %d values, want at least 500", n)
		}
		return nil
	})
	if v, drifted, _ := driftOf("amount"); drifted {
		t.Fatalf("traffic from the reference distribution drifted: PSI %.3f", v)
	}
	select {
	case m := <-alerts:
		t.Fatalf("alert without drift: %s", m.Data)
	default:
	}

	start := time.Now()
	send(1000, 25) // 2.5 standard deviations
	var alert struct {
		Feature, State string
		Value          float64
	}
	select {
	case m := <-alerts:
		json.Unmarshal(m.Data, &alert)
	case <-time.After(15 * time.Second):
		t.Fatal("no drift alert for a shifted feature")
	}
	t.Logf("drift alert %+v %v after the shift started", alert, time.Since(start).Round(time.Millisecond))
	if alert.Feature != "amount" || alert.State != "drifted" {
		t.Fatalf("alert %+v, want amount drifted", alert)
	}
	if _, drifted, _ := driftOf("amount"); !drifted {
		t.Errorf("GET /v1/drift does not show amount drifted")
	}
	if _, drifted, _ := driftOf("risk"); drifted {
		t.Errorf("risk did not move but shows drifted")
	}
	// More shifted traffic: no second alert for the same crossing (the
	// model's output drifts too, and may say so once). Absence is shown
	// without a timed wait: traffic from the reference again brings amount
	// back, and alerts arrive in order, so the next alert about amount must
	// be its recovery, with no second "drifted" before it.
	send(200, 25)
	metrics := call(t, "GET", g.URL+"/metrics", "", nil).raw
	if !strings.Contains(metrics, `weir_drift_drifted{feature="amount",model="m",version="1"} 1`) {
		t.Errorf("drift gauge missing:\n%s", grep(metrics, "weir_drift_drifted"))
	}
	send(1200, 0) // replaces the whole window (1000 events)
	for recovered := false; !recovered; {
		select {
		case m := <-alerts:
			var next struct{ Feature, State string }
			json.Unmarshal(m.Data, &next)
			switch {
			case next.Feature == "risk":
				t.Fatalf("an alert for risk, which never moved: %s", m.Data)
			case next.Feature == "amount" && next.State != "recovered":
				t.Fatalf("a second alert for the same crossing: %s", m.Data)
			case next.Feature == "amount":
				recovered = true
			}
		case <-time.After(testpoll.MinWait):
			v, drifted, n := driftOf("amount")
			t.Fatalf("amount did not recover within %v of traffic from the reference again: value %.3f, drifted %v, window of %d",
				testpoll.MinWait, v, drifted, n)
		}
	}
}
