package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
	"github.com/weirhq/weir/sdk/client"
)

// A drain that uses all of Shutdown's context (an HTTP request whose body
// never comes) leaves the parts their own budget to stop in.
func TestShutdownGivesClosingItsOwnBudget(t *testing.T) {
	// A read timeout past the test's wait: only Shutdown may end the
	// connection below.
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.ReadTimeout = 10 * time.Minute }))
	closing := make(chan error, 1)
	gateway.OnCloseForTest(g.Gateway, func(ctx context.Context) error {
		var none error
		if _, ok := ctx.Deadline(); !ok {
			none = errors.New("no deadline")
		}
		closing <- errors.Join(ctx.Err(), none)
		return nil
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v2/models/m/infer HTTP/1.1\r\nHost: weir\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = g.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a request that never ends: %v, want the HTTP drain's deadline", err)
	}
	if err := <-closing; err != nil {
		t.Fatalf("a part stopped under a context it could not use: %v", err)
	}
	// The connection the drain gave up on is cut, not left to its read
	// timeout (30s) or to keep-alive requests after Shutdown.
	if err := conn.SetReadDeadline(time.Now().Add(testpoll.MinWait)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("after Shutdown, the connection its drain gave up on: %v, want it closed", err)
	}
}

// A shadow request in flight at Shutdown is cancelled: Shutdown does not
// wait for it to end on its own.
func TestShutdownCancelsShadowRequests(t *testing.T) {
	g := canaryGateway(t)
	setRoute(t, g, "r", `{"variants":[{"name":"stable","model":"m","version":"1","weight":100}],"shadow":{"model":"m","version":"2","percent":100}}`)
	release := gateway.HoldShadows(g.Gateway) // held until cancelled
	defer release()
	if a := call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(`{"x":1}`)); a.status != 200 {
		t.Fatalf("predict: %d %s", a.status, a.raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testpoll.MinWait)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a shadow request in flight: %v", err)
	}
}

// A gRPC call's context carries the request timeout: a call waiting for
// a batch (max_queue_delay 1s, a batch it never fills) ends at its 20ms
// deadline, although the client set none.
func TestGRPCCallsHaveTheRequestTimeout(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.RequestTimeout = 20 * time.Millisecond }))
	mlp, err := onnx.MLP("wide", []int{16, 64, 4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	// An upload's deadline also covers its body, so 20ms suffices.
	if a := call(t, "PUT", g.URL+"/v1/models/wide/versions/1?max_batch_size=8&max_queue_delay=1s", g.Token, mlp); a.status != 201 {
		t.Fatalf("upload with batching: %d %s", a.status, a.raw)
	}
	cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	gc := pb.NewGRPCInferenceServiceClient(cc)
	testpoll.For(t, testpoll.MinWait, "wide@1 ready", func() error {
		_, err := gc.ModelReady(context.Background(), &pb.ModelReadyRequest{Name: "wide", Version: "1"})
		return err
	})
	_, err = inferRowGRPC(gc, "wide", "1", batchRow(0))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "waited for a batch") {
		t.Fatalf("a gRPC call waiting for a batch past the request timeout: %v, want Unavailable, ended while it waited for a batch", err)
	}
}

// A plugin looping in a request at Shutdown, with a short shutdown
// context: Shutdown returns, the plugin host interrupts the guest rather
// than free the runtime under it, and the request fails as interrupted
// (not at its 30s deadline, not with a crash). Run it under -race too.
func TestShutdownInterruptsARunningPlugin(t *testing.T) {
	g := testgw.Start(t)
	ctx := context.Background()
	if err := g.Client.PushPluginLimits(ctx, "loop", "1", bytes.NewReader(plugin(t, "loop")), client.PluginLimits{Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	pushModel(t, g, "m", "1", scorer(t, []string{"x"}, []float32{1}, 0))
	setRoute(t, g, "r", `{"plugins":[{"name":"loop"}],"variants":[{"name":"a","model":"m","weight":100}]}`)
	answered := make(chan answer, 1)
	go func() {
		answered <- call(t, "POST", g.URL+"/v1/routes/r/predict", "", []byte(`{"x":1,"padding":"makes it loop"}`))
	}()
	testpoll.For(t, testpoll.MinWait, "the looping plugin called", func() error {
		m := call(t, "GET", g.URL+"/metrics", "", nil).raw
		if !strings.Contains(m, `weir_plugin_calls_total{plugin="loop",version="1"} 1`) {
			return errors.New("no call of loop@1 in /metrics yet")
		}
		return nil
	})
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a plugin looping in a request: %v, want the HTTP drain's deadline", err)
	}
	select {
	case a := <-answered:
		if a.status != 503 || !strings.Contains(a.raw, "interrupted") {
			t.Fatalf("the request in the looping plugin answered %d %s, want 503 interrupted", a.status, a.raw)
		}
	case <-time.After(testpoll.MinWait):
		t.Fatal("the request in the looping plugin did not end at Shutdown")
	}
}

// HTTP and gRPC drain side by side: while an HTTP request holds its drain
// (a body that never comes), gRPC has already stopped taking calls.
func TestShutdownDrainsHTTPAndGRPCTogether(t *testing.T) {
	g := testgw.Start(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v2/models/m/infer HTTP/1.1\r\nHost: weir\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testpoll.MinWait)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- g.Shutdown(ctx) }()
	testpoll.For(t, testpoll.MinWait, "gRPC refusing calls during the HTTP drain", func() error {
		select {
		case err := <-stopped:
			t.Fatalf("Shutdown returned (%v) before the HTTP request ended", err)
		default:
		}
		cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		if _, err := pb.NewGRPCInferenceServiceClient(cc).ServerLive(cctx, &pb.ServerLiveRequest{}); err == nil {
			return errors.New("ServerLive still answered")
		}
		return nil
	})
	conn.Close() // the HTTP request ends: its drain does too
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown once both drains ended: %v", err)
	}
}
