package chaos

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/testpoll"
)

// natsState is the "nats" field of weir's readiness answer.
func (w *weirProc) natsState() string {
	_, out := w.do("GET", "/v2/health/ready", nil)
	var b struct {
		NATS string `json:"nats"`
	}
	_ = json.Unmarshal(out, &b)
	return b.NATS
}

// NATS freezes (SIGSTOP: its sockets stay open and say nothing). weir must
// notice within seconds (pings, not nats.go's default of minutes), keep
// serving inference from its local copies, and answer an admin write with
// 503 within a few seconds instead of holding it for the request's whole
// deadline (30s). After SIGCONT it reconnects and writes work again.
func TestFrozenNATSAnswersWithinSeconds(t *testing.T) {
	n := startNATS(t)
	w := startWeir(t, t.TempDir(), n.URL())
	w.pushModel("m")
	route := []byte(`{"variants":[{"name":"a","model":"m","version":"1","weight":100}]}`)
	if code, out := w.do("PUT", "/v1/routes/r", route); code != 200 {
		t.Fatalf("route PUT with NATS up: %d %s", code, out)
	}

	n.signal(syscall.SIGSTOP)
	// Bounds well under the 30s request deadline the write used to wait
	// out, yet loose enough for a busy machine (the client gives up after
	// natsx.CallTimeout, 5s).
	const writeBound = 15 * time.Second
	start := time.Now()
	code, out := w.doWithin(time.Minute, "PUT", "/v1/routes/r", route)
	writeTook := time.Since(start)
	if code != 503 || writeTook > writeBound {
		t.Errorf("route PUT with NATS frozen: %d %s after %s, want 503 within %s", code, out, writeTook.Round(time.Millisecond), writeBound)
	}
	testpoll.For(t, 20*time.Second, "weir to notice the frozen NATS", func() error {
		if s := w.natsState(); s == "connected" {
			return fmt.Errorf("nats state %q", s)
		}
		return nil
	})
	detected := time.Since(start)
	if code, out := w.do("POST", "/v2/models/m/infer", inferBody); code != 200 {
		t.Errorf("inference with NATS frozen: %d %s", code, out)
	}

	n.signal(syscall.SIGCONT)
	start = time.Now()
	testpoll.For(t, 60*time.Second, "a route PUT to work after SIGCONT", func() error {
		if code, out := w.doWithin(30*time.Second, "PUT", "/v1/routes/r2", route); code != 200 {
			return fmt.Errorf("route PUT: %d %s", code, out)
		}
		return nil
	})
	if code, out := w.do("GET", "/v1/routes/r2", nil); code != 200 {
		t.Errorf("route written after SIGCONT: GET %d %s", code, out)
	}
	figures(t, "write_while_frozen", writeTook.Round(time.Millisecond), "write_code", code,
		"frozen_detected_after", detected.Round(time.Millisecond), "recovered_after_sigcont", time.Since(start).Round(time.Millisecond))
}

// A gateway's first start while NATS is unreachable: it has nothing local
// to serve, so it stays up and not ready (saying it waits for NATS) instead
// of exiting, and becomes ready and serves once NATS starts.
func TestFirstStartWaitsForNATS(t *testing.T) {
	n := startNATS(t)
	url := n.URL() // the credentials it generated stay the same on restart
	n.kill()
	w := launchWeir(t, t.TempDir(), url)
	testpoll.For(t, 30*time.Second, "weir to answer not ready, waiting for NATS", func() error {
		if !w.alive() {
			t.Fatalf("weir exited with NATS unreachable: %v\n%s", w.exitErr, w.logs)
		}
		code, out := w.do("GET", "/v2/health/ready", nil)
		if code != 503 || !strings.Contains(string(out), "waiting for NATS") {
			return fmt.Errorf("ready answered %d %s", code, out)
		}
		return nil
	})
	if code, out := w.do("GET", "/v2/health/live", nil); code != 200 {
		t.Errorf("live while waiting for NATS: %d %s", code, out)
	}
	if code, out := w.do("GET", "/v1/models", nil); code != 503 || !strings.Contains(string(out), "waiting for NATS") {
		t.Errorf("GET /v1/models while waiting for NATS: %d %s, want 503 saying it waits", code, out)
	}
	n.start()
	start := time.Now()
	w.waitReady()
	figures(t, "ready_after_nats_started", time.Since(start).Round(time.Millisecond))
	w.pushModel("m")
	if code, out := w.do("POST", "/v2/models/m/infer", inferBody); code != 200 {
		t.Errorf("inference once NATS is up: %d %s", code, out)
	}
}

// natsServer is the NATS server weir is connected to, from /v1/status.
func (w *weirProc) natsServer() (string, error) {
	code, out := w.do("GET", "/v1/status", nil)
	if code != 200 {
		return "", fmt.Errorf("status: %d %s", code, out)
	}
	var b struct {
		NATS struct {
			Server string `json:"server"`
		} `json:"nats"`
	}
	if err := json.Unmarshal(out, &b); err != nil {
		return "", fmt.Errorf("status: %w: %s", err, out)
	}
	return b.NATS.Server, nil
}

// The node of a 3-node cluster that weir is connected to freezes, every
// asset having 3 replicas: weir leaves it for a healthy node within
// seconds, and admin writes work there while the node is still frozen.
func TestFrozenNodeIsLeft(t *testing.T) {
	nodes := startCluster(t, 3)
	w := startWeir(t, t.TempDir(), nodes[0].URL(), "--nats-replicas", "3")
	w.pushModel("m")
	route := []byte(`{"variants":[{"name":"a","model":"m","version":"1","weight":100}]}`)
	if code, out := w.do("PUT", "/v1/routes/r", route); code != 200 {
		t.Fatalf("route PUT: %d %s", code, out)
	}
	if s, err := w.natsServer(); s != "n1" {
		t.Fatalf("weir is connected to %q (%v), want n1, the node it was given", s, err)
	}

	nodes[0].signal(syscall.SIGSTOP)
	start := time.Now()
	testpoll.For(t, 60*time.Second, "a route PUT to work with weir's node frozen", func() error {
		if code, out := w.doWithin(30*time.Second, "PUT", "/v1/routes/r2", route); code != 200 {
			return fmt.Errorf("route PUT: %d %s", code, out)
		}
		return nil
	})
	wrote := time.Since(start)
	testpoll.For(t, 30*time.Second, "weir to report a healthy node", func() error {
		s, err := w.natsServer()
		if err == nil && (s == "n1" || s == "") {
			err = fmt.Errorf("connected to %q", s)
		}
		return err
	})
	if code, out := w.do("POST", "/v2/models/m/infer", inferBody); code != 200 {
		t.Errorf("inference with a node frozen: %d %s", code, out)
	}
	figures(t, "write_ok_after", wrote.Round(time.Millisecond))
}
