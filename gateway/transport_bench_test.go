package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/models"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// BenchmarkImage224 sends one 1x3x224x224 FP32 tensor (602 KB of data) per
// request, end to end on loopback, to a model that sums it (so the
// transport, not the model, is what is measured): as OIP JSON, with the
// binary tensor extension on HTTP, and over gRPC in raw_input_contents.
// Client encoding and decoding are included. The Identity variants send
// the same tensor to a model that returns it, so the output path (602 KB
// back) is measured too.
func BenchmarkImage224(b *testing.B) {
	g := testgw.Start(b)
	m, err := onnx.SumAll("img", onnx.Sym("n"), onnx.Fixed(3), onnx.Fixed(224), onnx.Fixed(224))
	if err != nil {
		b.Fatal(err)
	}
	pushModel(b, g, "img", "1", m)
	id, err := onnx.Identity("imgid", onnx.Float, onnx.Sym("n"), onnx.Fixed(3), onnx.Fixed(224), onnx.Fixed(224))
	if err != nil {
		b.Fatal(err)
	}
	pushModel(b, g, "imgid", "1", id)
	img := make([]float32, 3*224*224)
	for i := range img {
		img[i] = float32(i%255) / 255
	}
	shape := []int64{1, 3, 224, 224}
	url := g.URL + "/v2/models/img/infer"

	run := func(b *testing.B, do func() error) {
		b.ReportAllocs()
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t := time.Now()
			if err := do(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		reportPercentiles(b, lat)
	}
	post := func(url string, body []byte, hlen int) error {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		if hlen >= 0 {
			req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(hlen))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return &httpError{resp.StatusCode}
		}
		return nil
	}

	b.Run("JSON", func(b *testing.B) {
		run(b, func() error {
			body, err := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "x", "shape": shape, "datatype": "FP32", "data": img}}})
			if err != nil {
				return err
			}
			return post(url, body, -1)
		})
	})
	binary := func(url string, outputs bool) func(b *testing.B) {
		return func(b *testing.B) {
			run(b, func() error {
				raw, _ := models.AppendRaw(make([]byte, 0, 4*len(img)), models.FP32, img)
				h, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "x", "shape": shape, "datatype": "FP32",
					"parameters": map[string]any{"binary_data_size": len(raw)}}},
					"parameters": map[string]any{"binary_data_output": outputs}})
				return post(url, append(h, raw...), len(h))
			})
		}
	}
	b.Run("BinaryHTTP", binary(url, false))
	b.Run("BinaryHTTPIdentity", binary(g.URL+"/v2/models/imgid/infer", true))
	grpcRun := func(model string) func(b *testing.B) {
		return func(b *testing.B) {
			cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := pb.NewGRPCInferenceServiceClient(cc)
			run(b, func() error {
				raw, _ := models.AppendRaw(make([]byte, 0, 4*len(img)), models.FP32, img)
				_, err := c.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: model,
					Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: shape}},
					RawInputContents: [][]byte{raw}})
				return err
			})
		}
	}
	b.Run("GRPC", grpcRun("img"))
	b.Run("GRPCIdentity", grpcRun("imgid"))
}

type httpError struct{ status int }

func (e *httpError) Error() string { return "HTTP status " + strconv.Itoa(e.status) }

// BenchmarkSmallGRPC is one small request at a time over gRPC (raw
// contents) to the [64,256,256,10] MLP of issue 26's small-model rows: a
// request whose cost is the transport's and the gateway's, not the model's.
func BenchmarkSmallGRPC(b *testing.B) {
	g := testgw.Start(b)
	m, err := onnx.MLP("small", []int{64, 256, 256, 10}, 5)
	if err != nil {
		b.Fatal(err)
	}
	pushModel(b, g, "small", "1", m)
	x := make([]float32, 64)
	for i := range x {
		x[i] = float32(i) / 64
	}
	raw, _ := models.AppendRaw(nil, models.FP32, x)
	cc, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	c := pb.NewGRPCInferenceServiceClient(cc)
	req := &pb.ModelInferRequest{ModelName: "small",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "features", Datatype: "FP32", Shape: []int64{1, 64}}},
		RawInputContents: [][]byte{raw}}
	if _, err := c.ModelInfer(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		if _, err := c.ModelInfer(context.Background(), req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}
