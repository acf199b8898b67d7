package gateway

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/oipgrpc"
)

// grpcBackend gives the gRPC service (oipgrpc) the gateway's inference
// core, the same one HTTP uses: routing, validation, limits, events.
type grpcBackend struct{ g *Gateway }

var _ oipgrpc.Backend = grpcBackend{}

func (b grpcBackend) Live() bool  { return true }
func (b grpcBackend) Ready() bool { ready, _ := b.g.isReady(); return ready }

func (b grpcBackend) ServerMetadata() (string, string, []string) {
	return "weir", Version, serverExtensions
}

func (b grpcBackend) ModelMetadata(name, version string) (*oipgrpc.ModelMetadata, error) {
	if err := checkModelParams(name, version); err != nil {
		return nil, err
	}
	md, err := b.g.modelMeta(name, version)
	if err != nil {
		return nil, err
	}
	out := &oipgrpc.ModelMetadata{Name: md.Name, Versions: md.Versions, Platform: md.Platform}
	for _, t := range md.Inputs {
		out.Inputs = append(out.Inputs, models.TensorInfo(t))
	}
	for _, t := range md.Outputs {
		out.Outputs = append(out.Outputs, models.TensorInfo(t))
	}
	return out, nil
}

func (b grpcBackend) ModelReady(name, version string) error {
	if err := checkModelParams(name, version); err != nil {
		return err
	}
	_, err := b.g.resolve(name, version)
	return err
}

func (b grpcBackend) Infer(ctx context.Context, call oipgrpc.Call) (*models.InferResponse, error) {
	if err := b.g.admit(); err != nil {
		return nil, err
	}
	defer b.g.release()
	if err := checkModelParams(call.Name, call.Version); err != nil {
		return nil, err
	}
	n := messageBytes(call.Request)
	if err := b.g.charge(ctx, int64(n)*tensorFactor, n, tensorFactor); err != nil {
		return nil, err
	}
	defer b.g.budget.Release(int64(n) * tensorFactor)
	resp, served, err := b.g.inferOIP(oipCall{ctx: ctx, start: call.Start, name: call.Name, version: call.Version, req: call.Request, header: call.Header})
	if call.SetHeader != nil {
		if served.Variant != "" {
			call.SetHeader("x-weir-variant", served.Variant)
		}
		if served.Version != "" {
			call.SetHeader("x-weir-model", served.Model)
			call.SetHeader("x-weir-model-version", served.Version)
		}
	}
	return resp, err
}

// messageBytes estimates a ModelInfer message's size on the wire from what
// it decoded to, for the memory budget: each element at its raw size (a
// BYTES element at its length plus 16), JSON data as it is.
func messageBytes(req *models.InferRequest) int {
	n := 0
	for _, in := range req.Inputs {
		n += len(in.Name) + len(in.Data)
		if ss, ok := in.Values.([]string); ok {
			for _, s := range ss {
				n += len(s) + 16
			}
			continue
		}
		n += models.TensorData{Values: in.Values}.Len() * models.ElementSize(in.Datatype)
	}
	return n
}

// Authorize admits a model call when the gateway needs no API key, or
// when token is one of the keys or the admin token.
func (b grpcBackend) Authorize(token string) error {
	if b.g.apiKeys == nil {
		return nil
	}
	if token == "" {
		return weirerr.Unauthorizedf("this call needs authorization metadata: Bearer <API key or admin token> (the gateway runs with --api-keys)")
	}
	if !b.g.apiKeys[token] && !equalToken(b.g.adminToken)(token) {
		return weirerr.Unauthorizedf("the bearer token is not valid for inference")
	}
	return nil
}

// checkModelParams checks a model or route name and an optional version,
// as modelParams does for HTTP paths.
func checkModelParams(name, version string) error {
	if err := checkName("model", name); err != nil {
		return err
	}
	if version != "" {
		return checkName("version", version)
	}
	return nil
}

// buildGRPC makes the gRPC server; ServeGRPC serves it.
func (g *Gateway) buildGRPC() {
	g.grpc = oipgrpc.New(grpcBackend{g}, oipgrpc.Options{
		MaxMessageBytes:  g.opts.MaxBodyBytes,
		MaxStreams:       g.opts.GRPCMaxStreams,
		HandshakeTimeout: g.opts.GRPCHandshakeTimeout,
		IdleTimeout:      g.opts.GRPCIdleTimeout,
		ReadTimeout:      g.opts.ReadTimeout,
		RequestTimeout:   g.opts.RequestTimeout,
		Logger:           g.log,
		NewID:            monitor.NewID,
	})
}

// ServeGRPC serves the OIP gRPC service on ln until Shutdown.
// While the gateway waits for NATS at start, connections wait in ln's
// backlog.
func (g *Gateway) ServeGRPC(ln net.Listener) error {
	<-g.started
	if !g.isStarted.Load() {
		ln.Close()
		return g.startErr // nil after Shutdown
	}
	return g.grpc.Serve(ln)
}

// ListenAndServeGRPC listens on Options.GRPCListen.
func (g *Gateway) ListenAndServeGRPC() error {
	ln, err := net.Listen("tcp", g.opts.GRPCListen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.opts.GRPCListen, err)
	}
	return g.ServeGRPC(ln)
}

// stopGRPC lets calls in flight finish until ctx ends, then cuts them.
func stopGRPC(ctx context.Context, s *grpc.Server) {
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.Stop()
		<-done
	}
}
