package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testpoll"
)

// startNATSCluster runs startCluster's n nodes and returns them with every
// node's client URL, comma-separated, once the cluster places a stream on
// all of them.
func startNATSCluster(t *testing.T, n int) ([]*natsProc, string) {
	nodes := startCluster(t, n)
	urls := make([]string, n)
	for i, node := range nodes {
		urls[i] = node.URL()
	}
	url := strings.Join(urls, ",")
	testpoll.For(t, 60*time.Second, "the cluster to place a stream on all its nodes", func() error {
		return withJS(url, func(ctx context.Context, js jetstream.JetStream) error {
			if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "CHAOS_PROBE", Replicas: n}); err != nil {
				return err
			}
			return js.DeleteStream(ctx, "CHAOS_PROBE")
		})
	})
	return nodes, url
}

// withJS runs f with a JetStream client of url, for 5 seconds at most.
func withJS(url string, f func(context.Context, jetstream.JetStream) error) error {
	nc, err := natsx.Connect(url, "chaos")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f(ctx, js)
}

// streamLeader asks the cluster which node leads stream.
func streamLeader(url, stream string) (leader string, err error) {
	err = withJS(url, func(ctx context.Context, js jetstream.JetStream) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if c := s.CachedInfo().Cluster; c != nil && c.Leader != "" {
			leader = c.Leader
			return nil
		}
		return fmt.Errorf("%s has no leader", stream)
	})
	return leader, err
}

// recorded reports whether name@version has a record in the models bucket.
func recorded(url, name, version string) (found bool, err error) {
	err = withJS(url, func(ctx context.Context, js jetstream.JetStream) error {
		kv, err := js.KeyValue(ctx, "weir-models")
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, artifacts.Key(name, version))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

// Two gateways on a 3-node cluster (--nats-replicas 3); the models bucket's
// stream leader is killed with -9 just before a push. The push answers 201
// (retried across the election) or 503 with Retry-After, never 500, and
// both gateways agree afterwards: both serve the version if it is
// recorded, neither if not.
func TestPushAcrossModelsLeaderKill(t *testing.T) {
	nodes, url := startNATSCluster(t, 3)
	a := startWeir(t, t.TempDir(), url, "--nats-replicas", "3")
	b := startWeir(t, t.TempDir(), url, "--nats-replicas", "3")
	a.pushModel("m")
	ready := func(w *weirProc, version string) bool {
		code, _ := w.doWithin(5*time.Second, "GET", "/v2/models/m/versions/"+version+"/ready", nil)
		return code == http.StatusOK
	}
	testpoll.For(t, 30*time.Second, "gateway B to serve m@1", func() error {
		if !ready(b, "1") {
			return errors.New("m@1 not ready on B")
		}
		return nil
	})

	var leader string
	testpoll.For(t, 30*time.Second, "the models bucket to have a leader", func() error {
		var err error
		leader, err = streamLeader(url, "KV_weir-models")
		return err
	})
	var killed *natsProc
	for i, n := range nodes {
		if leader == fmt.Sprintf("n%d", i+1) { // startCluster names nodes from n1
			killed = n
		}
	}
	if killed == nil {
		t.Fatalf("the models bucket's leader %q is not a node of the cluster", leader)
	}
	killed.signal(syscall.SIGKILL)
	_ = killed.cmd.Wait()
	killed.cmd = nil

	model, err := onnx.LogisticRegression("m", []string{"a", "b", "c", "d"}, []float32{7, 0, 0, 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", a.url+"/v1/models/m/versions/7", strings.NewReader(string(model)))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		_ = a.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, to the logs
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("push with the models bucket's leader %s killed: %v; gateway A's logs:\n%s", leader, err, a.logs)
	}
	resp.Body.Close()
	took := time.Since(start)
	figures(t, "killed", leader, "push_status", resp.StatusCode, "push_time", took.Round(time.Millisecond))
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	default:
		t.Fatalf("push with the models bucket's leader %s killed answered %d, want 201 (retried) or 503", leader, resp.StatusCode)
	}

	killed.start()
	var isRecorded bool
	testpoll.For(t, 60*time.Second, "the models bucket to answer after the restart", func() error {
		var err error
		isRecorded, err = recorded(url, "m", "7")
		return err
	})
	if resp.StatusCode == http.StatusCreated && !isRecorded {
		t.Fatal("m@7 answered 201 but is not recorded")
	}
	if isRecorded {
		testpoll.For(t, 60*time.Second, "both gateways to serve m@7", func() error {
			if ra, rb := ready(a, "7"), ready(b, "7"); !ra || !rb {
				return fmt.Errorf("m@7 ready on A %v, on B %v", ra, rb)
			}
			return nil
		})
		return
	}
	if ra, rb := ready(a, "7"), ready(b, "7"); ra || rb {
		t.Errorf("m@7 is not recorded, yet ready on A %v, on B %v", ra, rb)
	}
}
