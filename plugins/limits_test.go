package plugins

import (
	"bytes"
	"context"
	"testing"

	"github.com/weirhq/weir/internal/weirerr"
)

// TestOutputLimit pins issue 11 defect 5: a plugin's output is capped
// (default 1 MiB); past it the call fails with a clear Upstream (502) error
// that names the size and the limit and echoes none of the output.
func TestOutputLimit(t *testing.T) {
	h := newHost(t, Options{PoolSize: 1})
	load(t, h, "bigoutput", Limits{})
	// bigoutput answers 1 KiB per input byte.
	out, err := h.Call(context.Background(), "bigoutput", "1", nil, bytes.Repeat([]byte(" "), 1000))
	if err != nil || len(out) != 1000<<10 {
		t.Fatalf("a 1000 KiB output: %d bytes, %v", len(out), err)
	}
	_, err = h.Call(context.Background(), "bigoutput", "1", nil, bytes.Repeat([]byte(" "), 1025))
	wantErr(t, err, weirerr.Upstream, `"bigoutput@1"`, "1049600 bytes", "limit of 1048576 bytes")
	if len(err.Error()) > 300 || bytes.Contains([]byte(err.Error()), []byte("big")) && bytes.Contains([]byte(err.Error()), []byte(`{"big"`)) {
		t.Errorf("error echoes the output: %.300s", err)
	}
	// The instance is still good.
	if out, err := h.Call(context.Background(), "bigoutput", "1", nil, []byte("{}")); err != nil || len(out) != 2048 {
		t.Errorf("call after the refused output: %d bytes, %v", len(out), err)
	}

	small := newHost(t, Options{PoolSize: 1, MaxOutputBytes: 4096})
	load(t, small, "bigoutput", Limits{})
	_, err = small.Call(context.Background(), "bigoutput", "1", nil, []byte("12345"))
	wantErr(t, err, weirerr.Upstream, "5120 bytes", "limit of 4096 bytes")
}
