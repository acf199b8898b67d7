package oipgrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// Backend is what the service needs from a gateway.
type Backend interface {
	// Live and Ready answer ServerLive and ServerReady.
	Live() bool
	Ready() bool
	// ServerMetadata names the server and its protocol extensions.
	ServerMetadata() (name, version string, extensions []string)
	// ModelMetadata and ModelReady resolve a model or route name (and a
	// version or variant, or "") as the HTTP endpoints do.
	ModelMetadata(name, version string) (*ModelMetadata, error)
	ModelReady(name, version string) error
	// Infer runs one request through the gateway's inference core.
	Infer(ctx context.Context, call Call) (*models.InferResponse, error)
	// Authorize checks the bearer token of a call to a model (empty when
	// the caller sent none); nil admits it.
	Authorize(token string) error
}

// Call is one ModelInfer request in weir's terms.
type Call struct {
	Start         time.Time
	Name, Version string
	Request       *models.InferRequest
	// Header reads the call's metadata (sticky keys, route overrides).
	Header func(string) string
	// SetHeader adds response metadata (x-weir-model and the like, as the
	// HTTP response headers).
	SetHeader func(key, value string)
}

// ModelMetadata describes a model version for ModelMetadata.
type ModelMetadata struct {
	Name     string
	Versions []string
	Platform string
	Inputs   []models.TensorInfo
	Outputs  []models.TensorInfo
}

// Options configure the server.
type Options struct {
	// MaxMessageBytes bounds a request message (the HTTP body limit).
	MaxMessageBytes int
	// MaxStreams bounds the calls open at once on one connection.
	MaxStreams int
	// HandshakeTimeout bounds a new connection's HTTP/2 preface and
	// settings; IdleTimeout closes a connection that has had no call
	// open for that long; ReadTimeout bounds the wait for a call's
	// (first) message. Zero leaves grpc-go's default (120s, none, none).
	HandshakeTimeout, IdleTimeout, ReadTimeout time.Duration
	// RequestTimeout is the deadline of a unary call's context once its
	// message has arrived, as HTTP's request timeout (a client's earlier
	// deadline stays). Zero: none.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// NewID names a failed call in the log and in its answer (the
	// gateway's request ids); nil numbers calls from 1.
	NewID func() string
}

// Keepalive: the server pings a connection quiet for keepaliveTime and
// closes it when no answer comes within keepaliveTimeout (a peer gone
// without closing); a client may ping as often as every
// keepaliveMinTime, streams open or not, and is sent away (GOAWAY
// too_many_pings) when it pings more often.
const (
	keepaliveTime    = time.Minute
	keepaliveTimeout = 20 * time.Second
	keepaliveMinTime = 10 * time.Second
)

// New returns a gRPC server serving b, with reflection registered.
func New(b Backend, o Options) *grpc.Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &service{b: b, log: o.Logger, readTimeout: o.ReadTimeout, requestTimeout: o.RequestTimeout, newID: o.NewID}
	if s.newID == nil {
		var n atomic.Uint64
		s.newID = func() string { return strconv.FormatUint(n.Add(1), 10) }
	}
	opts := []grpc.ServerOption{
		grpc.InTapHandle(s.tap),
		grpc.ForceServerCodecV2(codec{encoding.GetCodecV2(protoenc.Name)}),
		grpc.ChainUnaryInterceptor(s.messageArrived, s.requestDeadline, s.hideInternal),
		grpc.ChainStreamInterceptor(s.firstMessageArrives),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: o.IdleTimeout, Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		// Calls run on long-lived workers, whose stacks have grown already,
		// not each on a new goroutine that grows its stack again (a fifth
		// of a small ModelInfer's time in the handler was copystack).
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}
	if o.MaxMessageBytes > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(o.MaxMessageBytes))
	}
	if o.MaxStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(min(o.MaxStreams, math.MaxUint32))))
	}
	if o.HandshakeTimeout > 0 {
		opts = append(opts, grpc.ConnectionTimeout(o.HandshakeTimeout))
	}
	gs := grpc.NewServer(opts...)
	gs.RegisterService(serviceDesc(), s)
	reflection.Register(gs)
	return gs
}

type service struct {
	pb.UnimplementedGRPCInferenceServiceServer
	b              Backend
	log            *slog.Logger
	readTimeout    time.Duration
	requestTimeout time.Duration
	newID          func() string
}

// open are the methods that need no credentials, like /v2/health/* on
// HTTP.
var open = map[string]bool{
	pb.GRPCInferenceService_ServerLive_FullMethodName:  true,
	pb.GRPCInferenceService_ServerReady_FullMethodName: true,
}

// tap sees each call as soon as its headers arrive, before its message is
// read, for every method, unary or streaming (reflection included): it
// checks the call's credentials, so that a refused call costs nothing
// more, and gives its message ReadTimeout to arrive.
func (s *service) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if err := s.authorize(info); err != nil {
		return nil, err
	}
	if s.readTimeout <= 0 {
		return ctx, nil
	}
	// The stream's context is cancelled when the call ends, and this one
	// with it; the timer is stopped when the message has come.
	ctx, cancel := context.WithCancel(ctx)
	method := info.FullMethodName
	t := time.AfterFunc(s.readTimeout, func() {
		s.log.Debug("gRPC call cut: its message did not arrive within the read timeout (--read-timeout)", "method", method, "timeout", s.readTimeout)
		cancel()
	})
	return context.WithValue(ctx, arrivalKey{}, t), nil
}

// arrivalKey holds the timer that cuts a call whose message is late.
type arrivalKey struct{}

func arrived(ctx context.Context) {
	if t, ok := ctx.Value(arrivalKey{}).(*time.Timer); ok {
		t.Stop()
	}
}

// messageArrived runs once a unary call's message has been read.
func (s *service) messageArrived(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	arrived(ctx)
	return next(ctx, req)
}

// requestDeadline gives a unary call's context the request timeout.
func (s *service) requestDeadline(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if s.requestTimeout <= 0 {
		return next(ctx, req)
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	return next(ctx, req)
}

// firstMessageArrives stops a stream's timer at its first message.
func (s *service) firstMessageArrives(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	return next(srv, &arrivalStream{ServerStream: ss})
}

type arrivalStream struct {
	grpc.ServerStream
	once sync.Once
}

func (a *arrivalStream) RecvMsg(m any) error {
	err := a.ServerStream.RecvMsg(m)
	a.once.Do(func() { arrived(a.Context()) })
	return err
}

// authorize checks a call's bearer token, but for the open methods.
func (s *service) authorize(info *tap.Info) error {
	if open[info.FullMethodName] {
		return nil
	}
	tok, err := bearer(info.Header.Get("authorization"))
	if err != nil {
		return err
	}
	if err := s.b.Authorize(tok); err != nil {
		return toStatus(err)
	}
	return nil
}

// bearerToken reads the call's "authorization: Bearer <token>" metadata
// ("" when there is none).
func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return bearer(md.Get("authorization"))
}

// bearer is the token of "Bearer <token>" authorization values.
func bearer(values []string) (string, error) {
	tok := ""
	for _, v := range values {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			tok = t
		} else if v != "" {
			return "", status.Error(codes.Unauthenticated, "the authorization metadata must be \"Bearer <key or token>\"")
		}
	}
	return tok, nil
}

// hideInternal answers a bug (a panic, or an error that is not one of
// weir's kinds) with Internal and a request id only, logging its details
// under that id, as the HTTP side does: runtime messages and host paths
// stay in the log.
func (s *service) hideInternal(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		p := recover()
		if p == nil && err == nil {
			return
		}
		if _, ok := status.FromError(err); ok && p == nil {
			return
		}
		id := s.newID()
		if p != nil {
			s.log.Error("gRPC handler panicked", "request_id", id, "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
		} else {
			s.log.Error("gRPC call failed", "request_id", id, "method", info.FullMethod, "err", err)
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
		resp, err = nil, status.Errorf(codes.Internal, "internal error: the gateway failed while serving this call (request id %s, logged)", id)
	}()
	return next(ctx, req)
}

// codeOf maps weir's error kinds to gRPC codes, as the gateway maps them to
// HTTP statuses.
var codeOf = map[weirerr.Kind]codes.Code{
	weirerr.Internal:     codes.Internal,
	weirerr.Invalid:      codes.InvalidArgument,
	weirerr.Unauthorized: codes.Unauthenticated,
	weirerr.NotFound:     codes.NotFound,
	weirerr.Conflict:     codes.FailedPrecondition,
	weirerr.TooLarge:     codes.ResourceExhausted,
	weirerr.Overloaded:   codes.ResourceExhausted,
	weirerr.Upstream:     codes.Unavailable,
	weirerr.Unavailable:  codes.Unavailable,
}

// toStatus turns one of weir's errors into a gRPC status error carrying
// its message. Any other error (a bug) is returned as it is, for
// hideInternal to log and hide.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	var we *weirerr.Error
	if !errors.As(err, &we) || weirerr.KindOf(err) == weirerr.Internal {
		return err
	}
	return status.Error(codeOf[weirerr.KindOf(err)], err.Error())
}

func (s *service) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: s.b.Live()}, nil
}

func (s *service) ServerReady(context.Context, *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	return &pb.ServerReadyResponse{Ready: s.b.Ready()}, nil
}

func (s *service) ServerMetadata(context.Context, *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	name, version, ext := s.b.ServerMetadata()
	return &pb.ServerMetadataResponse{Name: name, Version: version, Extensions: ext}, nil
}

func (s *service) ModelReady(_ context.Context, r *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	err := s.b.ModelReady(r.Name, r.Version)
	switch weirerr.KindOf(err) {
	case weirerr.Unavailable:
		return &pb.ModelReadyResponse{Ready: false}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ModelReadyResponse{Ready: true}, nil
}

func (s *service) ModelMetadata(_ context.Context, r *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	md, err := s.b.ModelMetadata(r.Name, r.Version)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform,
		Inputs: tensorMetadata(md.Inputs), Outputs: tensorMetadata(md.Outputs)}, nil
}

func tensorMetadata(ts []models.TensorInfo) []*pb.ModelMetadataResponse_TensorMetadata {
	out := make([]*pb.ModelMetadataResponse_TensorMetadata, len(ts))
	for i, t := range ts {
		out[i] = &pb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: string(t.Datatype), Shape: t.Shape}
	}
	return out
}

func (s *service) ModelInfer(ctx context.Context, r *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	start := time.Now()
	req, err := decodeRequest(r)
	if err != nil {
		return nil, toStatus(err)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	header := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	out := metadata.MD{}
	setHeader := func(k, v string) { out.Set(k, v) }
	resp, err := s.b.Infer(ctx, Call{Start: start, Name: r.ModelName, Version: r.ModelVersion, Request: req, Header: header, SetHeader: setHeader})
	if len(out) > 0 {
		_ = grpc.SetHeader(ctx, out)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	pr, err := encodeResponse(resp, len(r.RawInputContents) > 0)
	if err != nil {
		return nil, toStatus(fmt.Errorf("encode response: %w", err))
	}
	return pr, nil
}
