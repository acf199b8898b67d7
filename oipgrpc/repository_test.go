package oipgrpc_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testgw"
	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// TestRepositoryRPCs: Triton's RepositoryIndex, RepositoryModelLoad and
// RepositoryModelUnload, the last two for the admin token only.
func TestRepositoryRPCs(t *testing.T) {
	g := testgw.Start(t)
	c, _ := dial(t, g)
	m, err := onnx.Identity("id", onnx.Float, onnx.Sym("n"))
	push(t, g, "id", m, err)

	idx, err := c.RepositoryIndex(ctx(t), &pb.RepositoryIndexRequest{})
	if err != nil || len(idx.Models) != 1 || idx.Models[0].State != "READY" || idx.Models[0].Version != "1" {
		t.Fatalf("index: %v %v", idx, err)
	}
	unload := &pb.RepositoryModelUnloadRequest{ModelName: "id"}
	if _, err := c.RepositoryModelUnload(ctx(t), unload); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unload without the admin token: %v", err)
	}
	admin := metadata.AppendToOutgoingContext(ctx(t), "authorization", "Bearer "+g.Token)
	if _, err := c.RepositoryModelUnload(admin, unload); err != nil {
		t.Fatalf("unload: %v", err)
	}
	if r, err := c.ModelReady(ctx(t), &pb.ModelReadyRequest{Name: "id"}); err == nil && r.Ready {
		t.Fatalf("ready after unload: %v %v", r, err)
	}
	idx, err = c.RepositoryIndex(ctx(t), &pb.RepositoryIndexRequest{Ready: true})
	if err != nil || len(idx.Models) != 0 {
		t.Fatalf("index of ready versions after unload: %v %v", idx, err)
	}
	load := &pb.RepositoryModelLoadRequest{ModelName: "id", Parameters: map[string]*pb.ModelRepositoryParameter{
		"version": {ParameterChoice: &pb.ModelRepositoryParameter_StringParam{StringParam: "1"}},
	}}
	if _, err := c.RepositoryModelLoad(ctx(t), load); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("load without the admin token: %v", err)
	}
	if _, err := c.RepositoryModelLoad(admin, load); err != nil {
		t.Fatalf("load: %v", err)
	}
	if r, err := c.ModelReady(ctx(t), &pb.ModelReadyRequest{Name: "id", Version: "1"}); err != nil || !r.Ready {
		t.Fatalf("ready after load: %v %v", r, err)
	}
	if _, err := c.RepositoryModelLoad(admin, &pb.RepositoryModelLoadRequest{ModelName: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("load of an unknown model: %v", err)
	}
}
