package gateway_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
)

// postEncoded posts body with a Content-Encoding header.
func postEncoded(t *testing.T, url, encoding string, body []byte) answer {
	t.Helper()
	return callWith(t, "POST", url, "", body, http.Header{"Content-Encoding": {encoding}})
}

func compress(t *testing.T, encoding string, size int, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	if encoding == "gzip" {
		w = gzip.NewWriter(&buf)
	} else {
		w = zlib.NewWriter(&buf)
	}
	if body != nil {
		w.Write(body)
	}
	zeros := make([]byte, 1<<20)
	for ; size > 0; size -= len(zeros) {
		w.Write(zeros[:min(size, len(zeros))])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A compressed request body is inflated under the same limit as any body:
// fiber's Body() inflates without one, so 250 KiB of gzip claimed 256 MiB
// of memory (a few such requests, the process).
func TestCompressedBodiesAreBoundedByMaxBody(t *testing.T) {
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.MaxBodyBytes = 1 << 20 }))
	pushModel(t, g, "ident", "1", identityModel(t))
	url := g.URL + "/v2/models/ident/infer"
	ok := []byte(`{"inputs":[{"name":"f","shape":[1,1],"datatype":"FP32","data":[1]},{"name":"i","shape":[1,1],"datatype":"INT64","data":[1]},{"name":"s","shape":[1,1],"datatype":"BYTES","data":["a"]}]}`)
	for _, enc := range []string{"gzip", "deflate"} {
		if a := postEncoded(t, url, enc, compress(t, enc, 0, ok)); a.status != 200 {
			t.Errorf("a %s request: %d %s, want 200", enc, a.status, a.raw)
		}
	}

	bomb := compress(t, "gzip", 256<<20, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a := postEncoded(t, url, "gzip", bomb)
	runtime.ReadMemStats(&after)
	if a.status != 413 || !strings.Contains(a.raw, "--max-body") {
		t.Errorf("%d KiB of gzip inflating to 256 MiB: %d %s, want 413 naming --max-body", len(bomb)>>10, a.status, a.raw)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
		t.Errorf("the gateway allocated %d MiB for it", grown>>20)
	}

	for _, c := range []struct{ enc, body, want string }{
		{"br", string(ok), "Content-Encoding"},
		{"gzip", "not gzip at all", "gzip"},
		{"gzip, deflate", string(ok), "Content-Encoding"},
	} {
		if a := postEncoded(t, url, c.enc, []byte(c.body)); a.status != 400 || !strings.Contains(a.raw, c.want) {
			t.Errorf("Content-Encoding %q, body %.20q: %d %s, want 400 naming %s", c.enc, c.body, a.status, a.raw, c.want)
		}
	}
	// An upload goes to disk as it arrives: a compressed one is refused,
	// not stored as the model.
	up := callWith(t, "PUT", g.URL+"/v1/models/zipped/versions/1", g.Token, compress(t, "gzip", 0, identityModel(t)), http.Header{"Content-Encoding": {"gzip"}})
	if up.status != 400 || !strings.Contains(up.raw, "Content-Encoding") {
		t.Errorf("a gzip upload: %d %s, want 400 naming Content-Encoding", up.status, up.raw)
	}
}
