package oipgrpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/weirhq/weir/oipgrpc/inferencepb"
)

// Repository is Triton's model repository extension. A Backend that
// implements it serves RepositoryIndex, RepositoryModelLoad and
// RepositoryModelUnload; the others answer UNIMPLEMENTED.
type Repository interface {
	// RepositoryIndex lists every stored version (only ready ones, if
	// ready) and its state here.
	RepositoryIndex(ready bool) []RepositoryEntry
	// RepositoryLoad and RepositoryUnload serve, or stop serving, a model's
	// stored versions here; token is the caller's bearer token (they are
	// admin calls).
	RepositoryLoad(token, name string, params map[string]any) error
	RepositoryUnload(token, name string, params map[string]any) error
}

// RepositoryEntry is one version in the index, with Triton's state names
// (READY, LOADING, UNAVAILABLE).
type RepositoryEntry struct {
	Name, Version, State, Reason string
}

func (s *service) repository() (Repository, error) {
	r, ok := s.b.(Repository)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server has no model repository")
	}
	return r, nil
}

func (s *service) RepositoryIndex(_ context.Context, req *pb.RepositoryIndexRequest) (*pb.RepositoryIndexResponse, error) {
	r, err := s.repository()
	if err != nil {
		return nil, err
	}
	out := &pb.RepositoryIndexResponse{}
	for _, e := range r.RepositoryIndex(req.Ready) {
		out.Models = append(out.Models, &pb.RepositoryIndexResponse_ModelIndex{Name: e.Name, Version: e.Version, State: e.State, Reason: e.Reason})
	}
	return out, nil
}

func (s *service) RepositoryModelLoad(ctx context.Context, req *pb.RepositoryModelLoadRequest) (*pb.RepositoryModelLoadResponse, error) {
	return &pb.RepositoryModelLoadResponse{}, s.loadOrUnload(ctx, Repository.RepositoryLoad, req.ModelName, req.Parameters)
}

func (s *service) RepositoryModelUnload(ctx context.Context, req *pb.RepositoryModelUnloadRequest) (*pb.RepositoryModelUnloadResponse, error) {
	return &pb.RepositoryModelUnloadResponse{}, s.loadOrUnload(ctx, Repository.RepositoryUnload, req.ModelName, req.Parameters)
}

// loadOrUnload runs one of the repository's admin calls with the call's
// bearer token.
func (s *service) loadOrUnload(ctx context.Context, do func(r Repository, token, name string, params map[string]any) error,
	name string, params map[string]*pb.ModelRepositoryParameter) error {
	r, err := s.repository()
	if err != nil {
		return err
	}
	tok, err := bearerToken(ctx)
	if err != nil {
		return err
	}
	return toStatus(do(r, tok, name, repoParams(params)))
}

func repoParams(m map[string]*pb.ModelRepositoryParameter) map[string]any {
	out := make(map[string]any, len(m))
	for k, p := range m {
		switch v := p.GetParameterChoice().(type) {
		case *pb.ModelRepositoryParameter_BoolParam:
			out[k] = v.BoolParam
		case *pb.ModelRepositoryParameter_Int64Param:
			out[k] = v.Int64Param
		case *pb.ModelRepositoryParameter_StringParam:
			out[k] = v.StringParam
		case *pb.ModelRepositoryParameter_BytesParam:
			out[k] = v.BytesParam
		default:
			out[k] = nil
		}
	}
	return out
}
