package oipgrpc_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/models"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

func dial(t testing.TB, g *testgw.Gateway) (pb.GRPCInferenceServiceClient, *grpc.ClientConn) {
	t.Helper()
	cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewGRPCInferenceServiceClient(cc), cc
}

func push(t testing.TB, g *testgw.Gateway, name string, m []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Client.PushModel(context.Background(), name, "1", bytes.NewReader(m), nil); err != nil {
		t.Fatalf("push %s: %v", name, err)
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// samples holds six elements of every datatype, as weir holds them.
var samples = []struct {
	dt     onnx.DataType
	oip    models.Datatype
	values any
}{
	{onnx.Bool, models.Bool, []bool{true, false, true, true, false, false}},
	{onnx.Uint8, models.Uint8, []uint8{0, 1, 127, 128, 254, 255}},
	{onnx.Uint16, models.Uint16, []uint16{0, 1, 300, 65535, 7, 8}},
	{onnx.Uint32, models.Uint32, []uint32{0, 1, 1 << 31, math.MaxUint32, 7, 8}},
	{onnx.Uint64, models.Uint64, []uint64{0, 1, 1 << 63, math.MaxUint64, 7, 8}},
	{onnx.Int8, models.Int8, []int8{-128, -1, 0, 1, 127, 5}},
	{onnx.Int16, models.Int16, []int16{-32768, -1, 0, 1, 32767, 5}},
	{onnx.Int32, models.Int32, []int32{math.MinInt32, -1, 0, 1, math.MaxInt32, 5}},
	{onnx.Int64, models.Int64, []int64{math.MinInt64, -1, 0, 1, math.MaxInt64, 5}},
	{onnx.Float16, models.FP16, []float32{0, -1.5, 65504, 0.5, float32(math.Inf(1)), 3.140625}},
	{onnx.Float, models.FP32, []float32{0, -1.5, math.MaxFloat32, 1e-30, float32(math.Inf(-1)), 3.14159}},
	{onnx.Double, models.FP64, []float64{0, -1.5, math.MaxFloat64, 1e-300, math.Inf(1), math.Pi}},
	{onnx.String, models.Bytes, []string{"", "a\x00b", "héllo", "\x01\xfe\xff", strings.Repeat("z", 300), "\x00\xff\x01"}},
}

// typedContents puts values in the contents field the protocol gives
// their datatype.
func typedContents(values any) *pb.InferTensorContents {
	c := &pb.InferTensorContents{}
	switch v := values.(type) {
	case []bool:
		c.BoolContents = v
	case []uint8:
		for _, x := range v {
			c.UintContents = append(c.UintContents, uint32(x))
		}
	case []uint16:
		for _, x := range v {
			c.UintContents = append(c.UintContents, uint32(x))
		}
	case []uint32:
		c.UintContents = v
	case []uint64:
		c.Uint64Contents = v
	case []int8:
		for _, x := range v {
			c.IntContents = append(c.IntContents, int32(x))
		}
	case []int16:
		for _, x := range v {
			c.IntContents = append(c.IntContents, int32(x))
		}
	case []int32:
		c.IntContents = v
	case []int64:
		c.Int64Contents = v
	case []float32:
		c.Fp32Contents = v
	case []float64:
		c.Fp64Contents = v
	case []string:
		for _, s := range v {
			c.BytesContents = append(c.BytesContents, []byte(s))
		}
	}
	return c
}

// TestEveryRPC calls each RPC of the service through a client generated
// from weir's proto, and round-trips every datatype through an Identity
// model, raw and typed (FP16 raw only: it has no typed field).
func TestEveryRPC(t *testing.T) {
	g := testgw.Start(t)
	c, _ := dial(t, g)
	for _, s := range samples {
		name := "id-" + strings.ToLower(string(s.oip))
		m, err := onnx.Identity(name, s.dt, onnx.Fixed(2), onnx.Fixed(3))
		push(t, g, name, m, err)
	}

	if r, err := c.ServerLive(ctx(t), &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("ServerLive: %v %v", r, err)
	}
	if r, err := c.ServerReady(ctx(t), &pb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ServerReady: %v %v", r, err)
	}
	md, err := c.ServerMetadata(ctx(t), &pb.ServerMetadataRequest{})
	if err != nil || md.Name != "weir" || md.Version != gateway.Version || !contains(md.Extensions, "binary_tensor_data") {
		t.Fatalf("ServerMetadata: %v %v", md, err)
	}
	if r, err := c.ModelReady(ctx(t), &pb.ModelReadyRequest{Name: "id-fp32"}); err != nil || !r.Ready {
		t.Fatalf("ModelReady: %v %v", r, err)
	}
	mm, err := c.ModelMetadata(ctx(t), &pb.ModelMetadataRequest{Name: "id-fp16", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if mm.Name != "id-fp16" || !reflect.DeepEqual(mm.Versions, []string{"1"}) || mm.Platform != "onnxruntime_onnx" ||
		len(mm.Inputs) != 1 || mm.Inputs[0].Name != "x" || mm.Inputs[0].Datatype != "FP16" || !reflect.DeepEqual(mm.Inputs[0].Shape, []int64{2, 3}) ||
		len(mm.Outputs) != 1 || mm.Outputs[0].Name != "y" {
		t.Errorf("ModelMetadata: %v", mm)
	}

	for _, s := range samples {
		name := "id-" + strings.ToLower(string(s.oip))
		raw, err := models.AppendRaw(nil, s.oip, s.values)
		if err != nil {
			t.Fatal(err)
		}
		var header metadata.MD
		resp, err := c.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: name, Id: "r-" + name,
			Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: string(s.oip), Shape: []int64{2, 3}}},
			RawInputContents: [][]byte{raw},
		}, grpc.Header(&header))
		if err != nil {
			t.Fatalf("%s raw: %v", s.oip, err)
		}
		if resp.ModelName != name || resp.ModelVersion != "1" || resp.Id != "r-"+name || len(resp.Outputs) != 1 ||
			resp.Outputs[0].Name != "y" || resp.Outputs[0].Datatype != string(s.oip) || !reflect.DeepEqual(resp.Outputs[0].Shape, []int64{2, 3}) {
			t.Errorf("%s raw: response %v", s.oip, resp)
		}
		if len(resp.RawOutputContents) != 1 || !bytes.Equal(resp.RawOutputContents[0], raw) {
			t.Errorf("%s raw: raw_output_contents %x, want %x", s.oip, resp.RawOutputContents, raw)
		}
		if got := header.Get("x-weir-model"); len(got) != 1 || got[0] != name {
			t.Errorf("%s: x-weir-model %v", s.oip, got)
		}
		if s.oip == models.FP16 {
			_, err := c.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: name,
				Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP16", Shape: []int64{2, 3}, Contents: typedContents(s.values)}}})
			wantCode(t, err, codes.InvalidArgument, "FP16 has no typed contents")
			continue
		}
		resp, err = c.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: name,
			Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: string(s.oip), Shape: []int64{2, 3}, Contents: typedContents(s.values)}},
		})
		if err != nil {
			t.Fatalf("%s typed: %v", s.oip, err)
		}
		if len(resp.RawOutputContents) != 0 || len(resp.Outputs) != 1 {
			t.Fatalf("%s typed: answered %v", s.oip, resp)
		}
		if got, want := resp.Outputs[0].Contents, typedContents(s.values); !reflect.DeepEqual(got.String(), want.String()) {
			t.Errorf("%s typed: contents %v, want %v", s.oip, got, want)
		}
	}

	// Reflection lists the service, so grpcurl needs no proto file.
	_, cc := dial(t, g)
	stream, err := rpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	if !contains(names, "inference.GRPCInferenceService") {
		t.Errorf("reflection lists %v", names)
	}
	if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "inference.ModelInferRequest"}}); err != nil {
		t.Fatal(err)
	}
	if rr, err = stream.Recv(); err != nil || len(rr.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("reflection: no descriptor for inference.ModelInferRequest: %v %v", rr, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func wantCode(t testing.TB, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), code, msg)
	}
}

// TestErrors checks that bad calls get the code HTTP's status maps to and
// a message naming what is wrong, and that each call is one event.
func TestErrors(t *testing.T) {
	g := testgw.Start(t)
	c, _ := dial(t, g)
	m, err := onnx.Add("add", onnx.Float, onnx.Sym("n"), onnx.Fixed(2))
	push(t, g, "add", m, err)
	f32 := func(name string, shape []int64, v ...float32) *pb.ModelInferRequest_InferInputTensor {
		return &pb.ModelInferRequest_InferInputTensor{Name: name, Datatype: "FP32", Shape: shape, Contents: &pb.InferTensorContents{Fp32Contents: v}}
	}
	good := []*pb.ModelInferRequest_InferInputTensor{f32("a", []int64{1, 2}, 1, 2), f32("b", []int64{1, 2}, 10, 20)}
	resp, err := c.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "add", Inputs: good})
	if err != nil || !reflect.DeepEqual(resp.Outputs[0].Contents.Fp32Contents, []float32{11, 22}) {
		t.Fatalf("add: %v %v", resp, err)
	}
	cases := []struct {
		what string
		req  *pb.ModelInferRequest
		code codes.Code
		msg  string
	}{
		{"unknown model", &pb.ModelInferRequest{ModelName: "nope", Inputs: good}, codes.NotFound, `"nope" not found`},
		{"bad name", &pb.ModelInferRequest{ModelName: "../x", Inputs: good}, codes.InvalidArgument, "is not valid"},
		{"unknown version", &pb.ModelInferRequest{ModelName: "add", ModelVersion: "9", Inputs: good}, codes.NotFound, "9"},
		{"wrong shape", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{f32("a", []int64{1, 3}, 1, 2, 3), good[1]}}, codes.InvalidArgument, `input "a" has shape [1 3]`},
		{"wrong count", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{f32("a", []int64{1, 2}, 1), good[1]}}, codes.InvalidArgument, `input "a"`},
		{"wrong datatype", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "a", Datatype: "INT64", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Int64Contents: []int64{1, 2}}}, good[1]}}, codes.InvalidArgument, "has datatype INT64, expected FP32"},
		{"unknown datatype", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "a", Datatype: "FP8", Shape: []int64{1, 2}}, good[1]}}, codes.InvalidArgument, `unknown datatype "FP8"`},
		{"wrong contents field", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "a", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp64Contents: []float64{1, 2}}}, good[1]}}, codes.InvalidArgument, "other than fp32_contents"},
		{"unknown input", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{f32("c", []int64{1, 2}, 1, 2), good[1]}}, codes.InvalidArgument, `unknown input "c"`},
		{"raw count", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "a", Datatype: "FP32", Shape: []int64{1, 2}}, {Name: "b", Datatype: "FP32", Shape: []int64{1, 2}}}, RawInputContents: [][]byte{make([]byte, 8)}}, codes.InvalidArgument, "raw_input_contents has 1 entries for 2 inputs"},
		{"raw too short", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "a", Datatype: "FP32", Shape: []int64{1, 2}}, {Name: "b", Datatype: "FP32", Shape: []int64{1, 2}}}, RawInputContents: [][]byte{make([]byte, 8), make([]byte, 7)}}, codes.InvalidArgument, "7 bytes of raw data"},
		{"huge shape", &pb.ModelInferRequest{ModelName: "add", Inputs: []*pb.ModelInferRequest_InferInputTensor{f32("a", []int64{1 << 40, 1 << 40}, 1, 2), good[1]}}, codes.InvalidArgument, "past the limit"},
		{"unknown output", &pb.ModelInferRequest{ModelName: "add", Inputs: good, Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "nope"}}}, codes.InvalidArgument, `unknown output "nope"`},
	}
	for _, tc := range cases {
		_, err := c.ModelInfer(ctx(t), tc.req)
		if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: %v %q, want %v containing %q", tc.what, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
	_, err = c.ModelReady(ctx(t), &pb.ModelReadyRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound, "nope")
	_, err = c.ModelMetadata(ctx(t), &pb.ModelMetadataRequest{Name: "add", Version: "7"})
	wantCode(t, err, codes.NotFound, "7")

	// One event per call that reached the model, as on HTTP: the good call
	// and the six refused by the model's signature, which are the caller's
	// errors (counted apart from the gateway's). Calls whose message cannot
	// be decoded (raw lengths, contents fields, shapes past the limit) and
	// names that do not exist make none.
	testpoll.For(t, 30*time.Second, "7 events (6 client errors) for route add", func() error {
		var st struct {
			Variants map[string]struct {
				Requests     int64 `json:"requests"`
				ClientErrors int64 `json:"client_errors"`
			} `json:"variants"`
		}
		if err := g.Client.Get(context.Background(), "/v1/routes/add/stats", &st); err != nil {
			return err
		}
		var n, e int64
		for _, v := range st.Variants {
			n, e = n+v.Requests, e+v.ClientErrors
		}
		if n != 7 || e != 6 {
			return fmt.Errorf("%d events (%d client errors): %+v", n, e, st)
		}
		return nil
	})
}

// TestAuth: with API keys, every RPC but ServerLive and ServerReady needs
// a key or the admin token in authorization metadata.
func TestAuth(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("# keys\nkey-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.APIKeysFile = keys }))
	c, _ := dial(t, g)
	m, err := onnx.Identity("id", onnx.Float, onnx.Sym("n"))
	push(t, g, "id", m, err)
	req := &pb.ModelInferRequest{ModelName: "id", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}}}}
	with := func(v string) context.Context { return metadata.AppendToOutgoingContext(ctx(t), "authorization", v) }

	if _, err := c.ServerLive(ctx(t), &pb.ServerLiveRequest{}); err != nil {
		t.Errorf("ServerLive without a key: %v", err)
	}
	if _, err := c.ServerReady(ctx(t), &pb.ServerReadyRequest{}); err != nil {
		t.Errorf("ServerReady without a key: %v", err)
	}
	_, err = c.ServerMetadata(ctx(t), &pb.ServerMetadataRequest{})
	wantCode(t, err, codes.Unauthenticated, "needs authorization metadata")
	_, err = c.ModelInfer(ctx(t), req)
	wantCode(t, err, codes.Unauthenticated, "needs authorization metadata")
	_, err = c.ModelMetadata(ctx(t), &pb.ModelMetadataRequest{Name: "id"})
	wantCode(t, err, codes.Unauthenticated, "needs authorization metadata")
	_, err = c.ModelReady(ctx(t), &pb.ModelReadyRequest{Name: "id"})
	wantCode(t, err, codes.Unauthenticated, "needs authorization metadata")
	_, err = c.ModelInfer(with("Bearer wrong"), req)
	wantCode(t, err, codes.Unauthenticated, "not valid")
	_, err = c.ModelInfer(with("key-1"), req)
	wantCode(t, err, codes.Unauthenticated, "Bearer")
	for _, tok := range []string{"key-1", g.Token} {
		if _, err := c.ModelInfer(with("Bearer "+tok), req); err != nil {
			t.Errorf("ModelInfer with %q: %v", tok, err)
		}
		if _, err := c.ModelMetadata(with("Bearer "+tok), &pb.ModelMetadataRequest{Name: "id"}); err != nil {
			t.Errorf("ModelMetadata with %q: %v", tok, err)
		}
		if _, err := c.ServerMetadata(with("Bearer "+tok), &pb.ServerMetadataRequest{}); err != nil {
			t.Errorf("ServerMetadata with %q: %v", tok, err)
		}
	}
}

// TestRouteAsModel: a route name is a model name, its split picks the
// variant, and a version pins a variant.
func TestRouteAsModel(t *testing.T) {
	g := testgw.Start(t)
	c, _ := dial(t, g)
	m1, err := onnx.Identity("m", onnx.Float, onnx.Sym("n"))
	push(t, g, "m", m1, err)
	if err := g.Client.SetRoute(context.Background(), "r", []byte(`{"variants":[{"name":"stable","model":"m","version":"1","weight":100}]}`)); err != nil {
		t.Fatal(err)
	}
	in := []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{7}}}}
	for _, v := range []string{"", "stable"} {
		var header metadata.MD
		resp, err := c.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "r", ModelVersion: v, Inputs: in}, grpc.Header(&header))
		if err != nil {
			t.Fatalf("route r, version %q: %v", v, err)
		}
		if resp.ModelName != "m" || resp.ModelVersion != "1" || !reflect.DeepEqual(header.Get("x-weir-variant"), []string{"stable"}) {
			t.Errorf("route r, version %q: %v, variant %v", v, resp, header.Get("x-weir-variant"))
		}
	}
	_, err = c.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "r", ModelVersion: "nope", Inputs: in})
	wantCode(t, err, codes.NotFound, "")
}
