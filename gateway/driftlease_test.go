package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
)

// alertLeader reads whether g holds the drift alert lease (/v1/status).
func alertLeader(t *testing.T, g *testgw.Gateway) bool {
	t.Helper()
	r := call(t, "GET", g.URL+"/v1/status", g.Token, nil)
	var st struct {
		NATS struct {
			AlertLeader bool `json:"alert_leader"`
		} `json:"nats"`
	}
	if r.status != 200 || json.Unmarshal([]byte(r.raw), &st) != nil {
		t.Fatalf("status: %d %s", r.status, r.raw)
	}
	return st.NATS.AlertLeader
}

var alertsTotal = regexp.MustCompile(`(?m)^weir_drift_alerts_total\{model="m"\} (\d+)$`)

// driftAlerts is g's weir_drift_alerts_total for model m ("0" when unset).
func driftAlerts(t *testing.T, g *testgw.Gateway) string {
	t.Helper()
	r := call(t, "GET", g.URL+"/metrics", g.Token, nil)
	if m := alertsTotal.FindStringSubmatch(r.raw); m != nil {
		return m[1]
	}
	return "0"
}

// TestDriftAlertOutlivesItsLeaseHolder: the alert lease holder dies at the
// shift, so no gateway publishes the crossing when it is judged. The
// gateway that takes the lease next, already drifted, publishes it once.
// Alerts are counted on NATS and by the gateways' weir_drift_alerts_total.
// (It never did: it had nothing left to cross.)
func TestDriftAlertOutlivesItsLeaseHolder(t *testing.T) {
	a := testgw.Start(t)
	b := testgw.Start(t, testgw.WithNATS(a.NATSURL()))
	rng := rand.New(rand.NewPCG(5, 6))
	mlp, err := onnx.MLP("m", []int{2, 4, 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	pushModel(t, a, "m", "1", mlp)
	if err := a.Client.PushReference(context.Background(), "m", "1", bytes.NewReader(referenceCSV(2000, rng)), "text/csv"); err != nil {
		t.Fatal(err)
	}
	nc, alerts := subscribeAlerts(t, a.NATSURL(), "m")

	// The seam: a holder that is about to die takes the lease from both
	// gateways, and renews it until the shift has been judged.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	leases, err := js.KeyValue(ctx, natsx.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	holderDied := make(chan struct{})
	holderGone := make(chan struct{})
	go func() {
		defer close(holderGone)
		tick := time.NewTicker(natsx.LeaseTTL / 5)
		defer tick.Stop()
		for {
			if _, err := leases.Put(ctx, "drift-alerts", []byte("the holder that dies")); err != nil {
				t.Errorf("take the lease: %v", err)
			}
			select {
			case <-tick.C:
			case <-holderDied:
				if err := leases.Delete(context.Background(), "drift-alerts"); err != nil {
					t.Errorf("free the lease: %v", err)
				}
				return
			}
		}
	}()
	testpoll.For(t, 30*time.Second, "both gateways to lose the lease", func() error {
		if alertLeader(t, a) || alertLeader(t, b) {
			return fmt.Errorf("a gateway still holds the alert lease")
		}
		return nil
	})

	testpoll.For(t, 20*time.Second, "B to serve m@1 with its reference's features", func() error {
		r := call(t, "POST", b.URL+"/v1/routes/m/predict", "", []byte(`{"amount":50,"risk":0.5}`))
		if r.status != 200 {
			return fmt.Errorf("%d %s", r.status, r.raw)
		}
		return nil
	})
	for i := range 1200 {
		g := a
		if i%2 == 1 {
			g = b
		}
		body := fmt.Sprintf(`{"amount":%.3f,"risk":%.3f}`, 75+10*rng.NormFloat64(), rng.Float64())
		if r := call(t, "POST", g.URL+"/v1/routes/m/predict", "", []byte(body)); r.status != 200 {
			t.Fatalf("predict: %d %s", r.status, r.raw)
		}
	}
	for _, g := range []*testgw.Gateway{a, b} {
		testpoll.For(t, 20*time.Second, "amount drifted on both gateways", func() error {
			var out struct {
				Results []struct {
					Feature string
					Drifted bool
				}
			}
			if err := g.Client.Get(ctx, "/v1/drift/m", &out); err != nil {
				return err
			}
			for _, r := range out.Results {
				if r.Feature == "amount" && r.Drifted {
					return nil
				}
			}
			return fmt.Errorf("results %+v", out.Results)
		})
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 0 {
		t.Fatalf("%d alerts published while neither gateway held the lease", len(alerts))
	}

	// The holder dies; one of the gateways (A runs the NATS server, so it
	// stays) takes the lease.
	close(holderDied)
	<-holderGone
	counted := func() int {
		n := 0
		for _, g := range []*testgw.Gateway{a, b} {
			k, err := strconv.Atoi(driftAlerts(t, g))
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	}
	var got []string
	testpoll.For(t, 30*time.Second, "the new holder to publish the crossing", func() error {
		for {
			select {
			case m := <-alerts:
				var al struct{ Feature, State string }
				if err := json.Unmarshal(m.Data, &al); err != nil {
					return err
				}
				got = append(got, al.Feature+"/"+al.State)
				continue
			default:
			}
			break
		}
		if n := counted(); len(got) == 0 || n == 0 {
			return fmt.Errorf("alerts %v, gateways counted %d", got, n)
		}
		return nil
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for len(alerts) > 0 {
		m := <-alerts
		var al struct{ Feature, State string }
		_ = json.Unmarshal(m.Data, &al)
		got = append(got, al.Feature+"/"+al.State)
	}
	if len(got) != 1 || got[0] != "amount/drifted" || counted() != 1 {
		t.Errorf("alerts %v, gateways counted %d; want one amount/drifted", got, counted())
	}
}
