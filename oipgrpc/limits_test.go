package oipgrpc_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// rawCodec sends a message's wire bytes as they are, so that a test can
// send what no generated client builds, and without building millions of
// structs on the client side (whose allocations would hide the server's).
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(d mem.BufferSlice, v any) error {
	*v.(*[]byte) = d.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// invokeRaw calls ModelInfer with the message msg.
func invokeRaw(ctx context.Context, cc *grpc.ClientConn, msg []byte) error {
	var reply []byte
	return cc.Invoke(ctx, pb.GRPCInferenceService_ModelInfer_FullMethodName, &msg, &reply, grpc.ForceCodecV2(rawCodec{}))
}

// allocated is how many bytes f made the whole process allocate (Go's
// heap, freed or not): the gateway runs in the test's process.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// emptyEntries is a ModelInferRequest for model id whose field num holds
// n empty entries (num 5: inputs), 2n bytes on the wire.
func emptyEntries(num protowire.Number, n int) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, "id")
	for range n {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, 0)
	}
	return b
}

// emptyStrings is a ModelInferRequest for model id with one BYTES input
// whose bytes_contents holds n empty elements.
func emptyStrings(n int) []byte {
	var contents []byte
	for range n {
		contents = protowire.AppendTag(contents, 8, protowire.BytesType)
		contents = protowire.AppendVarint(contents, 0)
	}
	in := protowire.AppendTag(nil, 1, protowire.BytesType)
	in = protowire.AppendString(in, "x")
	in = protowire.AppendTag(in, 2, protowire.BytesType)
	in = protowire.AppendString(in, "BYTES")
	in = protowire.AppendTag(in, 3, protowire.VarintType)
	in = protowire.AppendVarint(in, uint64(n))
	in = protowire.AppendTag(in, 5, protowire.BytesType)
	in = protowire.AppendBytes(in, contents)
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, "id")
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendBytes(b, in)
}

func keysFile(t testing.TB) string {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("key-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestDecodeBoundedBySize: a ModelInfer message costs the gateway a small
// multiple of its size, and nothing beyond its headers without a key.
// Before the fix, 4 MB of empty inputs cost about 260 MB decoded before
// the Unauthenticated answer, and more with a key.
func TestDecodeBoundedBySize(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) {
		o.APIKeysFile = keysFile(t)
		o.MaxBodyBytes = 8 << 20
	}))
	_, cc := dial(t, g)
	m, err := onnx.Identity("id", onnx.String, onnx.Sym("n"))
	push(t, g, "id", m, err)
	key := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer key-1")
	}
	const n = 2 << 20 // 4 MiB of two-byte entries
	inputs, strs := emptyEntries(5, n), emptyStrings(n)
	const most = 64 << 20
	cases := []struct {
		what string
		ctx  func(context.Context) context.Context
		msg  []byte
		code codes.Code
		err  string
	}{
		{"empty inputs without a key", func(c context.Context) context.Context { return c }, inputs, codes.Unauthenticated, "needs authorization metadata"},
		{"empty inputs", key, inputs, codes.InvalidArgument, "more than 4096 inputs"},
		{"empty outputs", key, emptyEntries(6, n), codes.InvalidArgument, "more than 4096 outputs"},
		{"empty raw_input_contents", key, emptyEntries(7, n), codes.InvalidArgument, "more than 4096 raw_input_contents"},
		{"empty parameters", key, emptyEntries(4, n), codes.ResourceExhausted, "16 times"},
		{"empty BYTES elements", key, strs, codes.ResourceExhausted, "16 times"},
		{"a message over --max-body", key, make([]byte, 9<<20), codes.ResourceExhausted, "larger than max (9437184 vs. 8388608)"},
	}
	for _, tc := range cases {
		var err error
		got := allocated(func() { err = invokeRaw(tc.ctx(ctx(t)), cc, tc.msg) })
		wantCode(t, err, tc.code, tc.err)
		if got > most {
			t.Errorf("%s (%d bytes): the process allocated %d MiB, want at most %d MiB", tc.what, len(tc.msg), got>>20, most>>20)
		}
	}
}

// TestStreamsNeedKey: with API keys, streaming RPCs (server reflection)
// need a key as unary ones do. Before the fix, reflection answered anyone.
func TestStreamsNeedKey(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.APIKeysFile = keysFile(t) }))
	_, cc := dial(t, g)
	list := func(ctx context.Context) ([]string, error) {
		stream, err := rpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
		if err != nil {
			return nil, err
		}
		// A refused stream's Send says io.EOF; Recv says why.
		_ = stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
		rr, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range rr.GetListServicesResponse().GetService() {
			names = append(names, s.Name)
		}
		return names, nil
	}
	names, err := list(ctx(t))
	wantCode(t, err, codes.Unauthenticated, "needs authorization metadata")
	if len(names) > 0 {
		t.Errorf("reflection without a key listed %v", names)
	}
	names, err = list(metadata.AppendToOutgoingContext(ctx(t), "authorization", "Bearer key-1"))
	if err != nil || !strings.Contains(strings.Join(names, " "), "inference.GRPCInferenceService") {
		t.Errorf("reflection with a key: %v %v", names, err)
	}
}

// TestHandshakeDeadline: a connection that never sends the HTTP/2
// preface is closed at --grpc-handshake-timeout. Before the fix it stayed
// for grpc-go's 120 s.
func TestHandshakeDeadline(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.GRPCHandshakeTimeout = 100 * time.Millisecond }))
	conn, err := net.Dial("tcp", g.GRPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Read the server's settings, then wait for it to close; the limit
	// here only keeps a failing test from hanging.
	conn.SetReadDeadline(time.Now().Add(testpoll.MinWait))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("a connection that sent nothing was not closed: %v", err)
	}
}

// TestMaxStreams: one connection holds at most --grpc-max-streams calls
// at once; the next waits for one to end. Before the fix there was no
// bound.
func TestMaxStreams(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.GRPCMaxStreams = 2 }))
	c, cc := dial(t, g)
	var cancels []context.CancelFunc
	for range 2 { // two reflection streams, open until cancelled
		sctx, cancel := context.WithCancel(ctx(t))
		defer cancel()
		cancels = append(cancels, cancel)
		stream, err := rpb.NewServerReflectionClient(cc).ServerReflectionInfo(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	_, err := c.ServerLive(short, &pb.ServerLiveRequest{})
	wantCode(t, err, codes.DeadlineExceeded, "")
	cancels[0]()
	if _, err := c.ServerLive(ctx(t), &pb.ServerLiveRequest{}); err != nil {
		t.Errorf("ServerLive once a stream ended: %v", err)
	}
}

// TestIdleConnectionClosed: a connection with no call open is sent away
// at --grpc-idle-timeout. Before the fix it stayed forever.
func TestIdleConnectionClosed(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.GRPCIdleTimeout = 100 * time.Millisecond }))
	c, cc := dial(t, g)
	if _, err := c.ServerLive(ctx(t), &pb.ServerLiveRequest{}); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 10*time.Second, "the idle connection closed", func() error {
		if s := cc.GetState(); s == connectivity.Ready {
			return fmt.Errorf("connection %v", s)
		}
		return nil
	})
}

// TestMessageDeadline: a call whose message does not come within
// --read-timeout is cut, as HTTP cuts a body that does not come. Before
// the fix it waited for the client's deadline.
func TestMessageDeadline(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.ReadTimeout = 100 * time.Millisecond }))
	_, cc := dial(t, g)
	// A unary method called as a stream: the headers go, the message never.
	stream, err := cc.NewStream(ctx(t), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, pb.GRPCInferenceService_ModelInfer_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	var reply pb.ModelInferResponse
	wantCode(t, stream.RecvMsg(&reply), codes.Canceled, "")
}
