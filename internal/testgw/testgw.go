package testgw

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/sdk/client"
)

// Gateway is a running gateway under test.
type Gateway struct {
	*gateway.Gateway
	URL      string
	GRPCAddr string // the OIP gRPC service (host:port)
	Token    string
	Client   *client.Client
}

// Option changes the options of a gateway under test.
type Option func(*gateway.Options)

// WithNATS makes the gateway use an existing NATS (e.g. another test
// gateway's) instead of starting its own.
func WithNATS(url string) Option { return func(o *gateway.Options) { o.NATSURL = url } }

// WithDataDir sets the data dir (to restart on the same data).
func WithDataDir(dir string) Option { return func(o *gateway.Options) { o.DataDir = dir } }

// WithOptions edits the options directly.
func WithOptions(f func(*gateway.Options)) Option { return Option(f) }

// Start runs a gateway and waits until /v2/health/ready answers 200.
func Start(t testing.TB, opts ...Option) *Gateway {
	t.Helper()
	o := gateway.Options{
		DataDir:    t.TempDir(),
		NATSListen: "127.0.0.1:0",
		AdminToken: "test-admin-token",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if os.Getenv("WEIR_TEST_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := gateway.New(ctx, o)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.ServeGRPC(gln)
	url := "http://" + ln.Addr().String()
	t.Cleanup(func() {
		// The tests' clients keep connections alive in the default
		// transport; closing them ends the server's workers reading them,
		// which Shutdown can otherwise leave waiting for a next request
		// past the test (and the package's leak check).
		http.DefaultClient.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Shutdown(ctx)
		http.DefaultClient.CloseIdleConnections()
	})
	tg := &Gateway{Gateway: g, URL: url, GRPCAddr: gln.Addr().String(), Token: g.AdminToken(), Client: client.New(url, g.AdminToken())}
	testpoll.For(t, 10*time.Second, "gateway ready", func() error {
		resp, err := http.Get(url + "/v2/health/ready")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/v2/health/ready answered %d %s, want 200", resp.StatusCode, body)
		}
		return nil
	})
	return tg
}
