package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/sdk/client"
)

// Uploads have their own limit (--max-upload), apart from --max-body: a
// model larger than --max-body loads, one larger than --max-upload is
// refused with 413 before its body is read, and inference stays bounded by
// --max-body.
func TestMaxUploadIsSeparateFromMaxBody(t *testing.T) {
	const maxBody, maxUpload = 256, 64 << 10
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) {
		o.MaxBodyBytes, o.MaxUploadBytes = maxBody, maxUpload
	}))
	ctx := context.Background()

	model := scorer(t, []string{"a", "b", "c", "d", "e", "f", "g", "h"}, []float32{1, 2, 3, 4, 5, 6, 7, 8}, 0)
	if len(model) <= maxBody {
		t.Fatalf("test model of %d bytes is not over --max-body %d", len(model), maxBody)
	}
	if err := g.Client.PushModel(ctx, "m", "1", bytes.NewReader(model), nil); err != nil {
		t.Fatalf("push a %d-byte model (over --max-body, under --max-upload): %v", len(model), err)
	}

	// A streamed file of known length over --max-upload: 413.
	path := filepath.Join(t.TempDir(), "big.onnx")
	if err := os.WriteFile(path, make([]byte, 2*maxUpload), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = g.Client.PushModel(ctx, "m", "2", io.NewSectionReader(f, 0, 2*maxUpload), nil)
	var ge *client.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("push a %d-byte model over --max-upload %d: %v, want HTTP 413", 2*maxUpload, maxUpload, err)
	}
	if err := g.Client.PushPlugin(ctx, "p", "1", bytes.NewReader(make([]byte, 2*maxUpload))); !errors.As(err, &ge) || ge.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("push a plugin over --max-upload: %v, want HTTP 413", err)
	}

	// Inference is still held to --max-body.
	resp, err := http.Post(g.URL+"/v2/models/m/infer", "application/json", bytes.NewReader(make([]byte, 4*maxBody)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("inference body over --max-body: HTTP %d, want 413", resp.StatusCode)
	}
}
