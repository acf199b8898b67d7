package gateway_test

import (
	"strings"
	"testing"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/apidoc"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/oipgrpc/inferencepb"
)

// TestAPIDocListsEveryEndpoint fails when the gateway serves an HTTP
// endpoint or a gRPC method that docs/api.md does not name: the reference
// users read must not fall behind the code.
func TestAPIDocListsEveryEndpoint(t *testing.T) {
	doc := apidoc.Load(t)
	gw := testgw.Start(t)
	routes := gateway.RoutesForTest(gw.Gateway)
	if len(routes) < 40 {
		t.Fatalf("the gateway lists %d endpoints; expected every endpoint of the contract", len(routes))
	}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		if !doc.HasEndpoint(method, path) {
			t.Errorf("docs/api.md does not name %s %s", method, path)
		}
	}
	for _, m := range inferencepb.GRPCInferenceService_ServiceDesc.Methods {
		if !doc.Has("`" + m.MethodName + "`") {
			t.Errorf("docs/api.md does not name the gRPC method %s", m.MethodName)
		}
	}
}
