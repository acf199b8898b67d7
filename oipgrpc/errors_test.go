package oipgrpc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirhq/weir/internal/weirerr"
)

// TestInternalErrorsAreLoggedNotShown pins issue 31's error policy on gRPC:
// a bug (an error of no weir kind, or a panic) answers Internal with a
// request id only, its details logged under that id; weir's own errors keep
// their message and code.
func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	var logs bytes.Buffer
	s := &service{log: slog.New(slog.NewTextHandler(&logs, nil)), newID: func() string { return "req-42" }}
	info := &grpc.UnaryServerInfo{FullMethod: "/inference.GRPCInferenceService/ModelInfer"}
	call := func(h grpc.UnaryHandler) error {
		_, err := s.hideInternal(context.Background(), nil, info, h)
		return err
	}
	for name, h := range map[string]grpc.UnaryHandler{
		"error": func(context.Context, any) (any, error) {
			return nil, toStatus(errors.New("open /srv/secret/state.db: permission denied"))
		},
		"panic": func(context.Context, any) (any, error) { panic("secret runtime state") },
	} {
		logs.Reset()
		st, _ := status.FromError(call(h))
		if st.Code() != codes.Internal || !strings.Contains(st.Message(), "req-42") || strings.Contains(st.Message(), "secret") {
			t.Errorf("%s: answered %v %q, want Internal naming request id req-42 and nothing else", name, st.Code(), st.Message())
		}
		if !strings.Contains(logs.String(), "req-42") || !strings.Contains(logs.String(), "secret") {
			t.Errorf("%s: log lacks the request id or the details:\n%s", name, logs.String())
		}
	}
	st, _ := status.FromError(call(func(context.Context, any) (any, error) {
		return nil, toStatus(weirerr.NotFoundf("model %q not found", "m"))
	}))
	if st.Code() != codes.NotFound || st.Message() != `model "m" not found` {
		t.Errorf("a weir error answered %v %q, want NotFound with its message", st.Code(), st.Message())
	}
}
