package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor"
)

// clusterGateway starts a gateway on the cluster with --nats-replicas 3.
func clusterGateway(t *testing.T, c *natstest.Cluster) *testgw.Gateway {
	return testgw.Start(t, testgw.WithNATS(c.URL()), testgw.WithOptions(func(o *gateway.Options) {
		o.NATSReplicas = 3
		o.CanaryTick = 50 * time.Millisecond
	}))
}

// status is GET /v1/status.
func natsStatus(t testing.TB, g *testgw.Gateway) (st struct {
	NATS   struct{ Server string }
	Assets []natsx.Asset
}) {
	t.Helper()
	if err := g.Client.Get(context.Background(), "/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// load sends predicts to g's route r from workers goroutines, each request
// carrying a unique number n, until stop is closed; every answer other than
// 200 is a failure.
type load struct {
	next          *atomic.Int64
	sent, failed  atomic.Int64
	mu            sync.Mutex
	served        map[int64]bool
	firstFailures []string
	wg            sync.WaitGroup
}

func (l *load) run(g *testgw.Gateway, workers int, stop <-chan struct{}) {
	hc := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond): // pace: steady, bounded load
				}
				n := l.next.Add(1)
				l.sent.Add(1)
				resp, err := hc.Post(g.URL+"/v1/routes/r/predict", "application/json",
					strings.NewReader(fmt.Sprintf(`{"x":%d,"n":%d}`, n%7, n)))
				if err == nil {
					resp.Body.Close()
				}
				l.mu.Lock()
				if err != nil || resp.StatusCode != 200 {
					l.failed.Add(1)
					if len(l.firstFailures) < 5 {
						l.firstFailures = append(l.firstFailures, fmt.Sprint(err, resp))
					}
				} else {
					l.served[n] = true
				}
				l.mu.Unlock()
			}
		}()
	}
}

// TestClusterNodeLoss runs two gateways with --nats-replicas 3 on a 3-node
// JetStream cluster (authorization on), serves steady load on both, and
// shuts one NATS node down and restarts it: no request fails, every served
// request's event is in WEIR_EVENTS exactly once, a model pushed to A
// during the outage is served by B within 2s, and a rollout completes.
func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node NATS cluster, two gateways and a node outage take ~30s; run without -short")
	}
	c := natstest.StartCluster(t, 3)
	a := clusterGateway(t, c)
	b := clusterGateway(t, c)
	pushModel(t, a, "m", "1", scorer(t, []string{"x", "n"}, []float32{1, 0}, 0))
	setRoute(t, a, "r", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100}]}`)
	testpoll.For(t, 20*time.Second, "gateway B to serve route r", func() error {
		if a := call(t, "POST", b.URL+"/v1/routes/r/predict", "", []byte(`{"x":1,"n":0}`)); a.status != 200 {
			return fmt.Errorf("predict on B answered %d %s, want 200", a.status, a.raw)
		}
		return nil
	})

	// Every asset weir made is replicated 3 times and has a leader.
	for _, as := range natsStatus(t, a).Assets {
		if as.Replicas != 3 {
			t.Errorf("%s %s has %d replicas, want 3 (--nats-replicas)", as.Kind, as.Name, as.Replicas)
		}
	}

	l := &load{next: new(atomic.Int64), served: map[int64]bool{}}
	stop := make(chan struct{})
	l.run(a, 2, stop)
	l.run(b, 2, stop)
	testpoll.For(t, 20*time.Second, "load to flow", func() error {
		if n := l.sent.Load(); n <= 100 {
			return fmt.Errorf("%d requests sent (%d failed), want over 100", n, l.failed.Load())
		}
		return nil
	})

	// Shut down the node gateway A is connected to.
	down := -1
	server := natsStatus(t, a).NATS.Server
	for i := range 3 {
		if c.Node(i).Server().Name() == server {
			down = i
		}
	}
	if down < 0 {
		t.Fatalf("gateway A's server %q is not a node of the cluster", server)
	}
	outage := time.Now()
	c.Stop(down)
	downName := fmt.Sprintf("n%d", down)
	// Wait for every asset to have a leader among the nodes left (the
	// cluster re-elects; that is NATS's work, not weir's).
	testpoll.For(t, 30*time.Second, "every asset to have a leader after the outage", func() error {
		var st struct{ Assets []natsx.Asset }
		if err := a.Client.Get(context.Background(), "/v1/status", &st); err != nil {
			return err
		}
		for _, as := range st.Assets {
			if as.Leader == "" || as.Leader == downName {
				return fmt.Errorf("%s %s led by %q", as.Kind, as.Name, as.Leader)
			}
		}
		return nil
	})
	t.Logf("assets re-led %v after node %s stopped", time.Since(outage).Round(time.Millisecond), downName)

	pushModel(t, a, "m", "2", scorer(t, []string{"x", "n"}, []float32{2, 0}, 0))
	pushed := time.Now()
	testpoll.For(t, 30*time.Second, "gateway B to serve m@2", func() error {
		if a := call(t, "GET", b.URL+"/v2/models/m/versions/2/ready", "", nil); a.status != 200 {
			return fmt.Errorf("m@2 ready on B answered %d %s, want 200", a.status, a.raw)
		}
		return nil
	})
	pushToServe := time.Since(pushed)
	if pushToServe > 2*time.Second {
		t.Errorf("m@2 pushed to A during the outage was served by B after %v, want within 2s", pushToServe)
	}

	if _, err := a.Client.StartRollout(context.Background(), "r", json.RawMessage(
		`{"model":"m","version":"2","steps":[50,100],"interval":"500ms","min_requests":5,"max_error_rate":0.05,"max_p99_ms":5000,"max_drift":"off"}`)); err != nil {
		t.Fatalf("start rollout during the outage: %v", err)
	}
	testpoll.For(t, 30*time.Second, "the rollout to finish", func() error {
		if st := rollout(t, b, "r"); !settled(st) {
			return fmt.Errorf("rollout on B %+v", st)
		}
		return nil
	})
	if st := rollout(t, b, "r"); st.State != "promoted" {
		t.Errorf("rollout ended %+v, want promoted", st)
	}

	c.Restart(t, down)
	c.WaitHealthy(t, 30*time.Second)
	sentAtRestart := l.sent.Load()
	testpoll.For(t, 20*time.Second, "load after the restart", func() error {
		if n := l.sent.Load() - sentAtRestart; n <= 100 {
			return fmt.Errorf("%d requests sent since the restart (%d failed in all), want over 100", n, l.failed.Load())
		}
		return nil
	})
	close(stop)
	l.wg.Wait()

	// Every served request's event, exactly once, in WEIR_EVENTS.
	nc, err := natsx.Connect(c.URL(), "check")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	t.Logf("load: requests %d, failed %d, served %d", l.sent.Load(), l.failed.Load(), len(l.served))
	seen := map[int64]int{}
	stored := 0
	var next uint64 // next stream sequence to read
	testpoll.For(t, 30*time.Second, "every served request's event in WEIR_EVENTS", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, monitor.StreamEvents)
		if err != nil {
			return fmt.Errorf("stream info: %w", err)
		}
		info := s.CachedInfo()
		next = max(next, info.State.FirstSeq)
		for ; next <= info.State.LastSeq; next++ {
			m, err := s.GetMsg(ctx, next)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("get event %d: %w", next, err)
			}
			_ = monitor.EachEvent(m.Header, m.Data, func(_ int, raw []byte) error {
				var ev struct {
					Route    string
					Features map[string]float64
				}
				if json.Unmarshal(raw, &ev) == nil && ev.Route == "r" {
					if n := int64(ev.Features["n"]); n > 0 {
						seen[n]++
						stored++
					}
				}
				return nil
			})
		}
		missing := 0
		for n := range l.served {
			if seen[n] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d served requests have no event yet", missing, len(l.served))
		}
		return nil
	})
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	t.Logf("requests %d, failed %d, events expected %d, stored %d, duplicated %d, push-to-serve %v",
		l.sent.Load(), l.failed.Load(), len(l.served), stored, dups, pushToServe.Round(time.Millisecond))
	if l.failed.Load() != 0 {
		t.Errorf("%d inference requests failed, want 0; first: %v", l.failed.Load(), l.firstFailures)
	}
	if dups != 0 {
		t.Errorf("%d events stored twice", dups)
	}
}
