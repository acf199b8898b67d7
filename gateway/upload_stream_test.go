package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/sdk/client"
)

// zeros is an endless reader of zero bytes: a payload that never exists
// whole in the test's memory either.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// heapPeak samples the Go heap in use until stop is called and returns the
// highest value seen.
func heapPeak() (stop func() uint64) {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// A model upload is streamed to a file under the data dir, not held in
// memory: a 200 MB upload (sent chunked, so its size is only known by the
// bytes received) grows the gateway's heap by a small fraction of that. It
// is not a loadable model, so ONNX Runtime refuses it (400) from the file,
// the version already served keeps serving, and no temporary file is left.
func TestModelUploadIsStreamedToDisk(t *testing.T) {
	const payload = 200 << 20
	dir := t.TempDir()
	g := testgw.Start(t, testgw.WithDataDir(dir))
	ctx := context.Background()

	model := scorer(t, []string{"a", "b"}, []float32{1, 2}, 0)
	if err := g.Client.PushModel(ctx, "m", "1", bytes.NewReader(model), nil); err != nil {
		t.Fatalf("push a real model: %v", err)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := heapPeak()
	err := g.Client.PushModel(ctx, "m", "1", io.LimitReader(zeros{}, payload), nil)
	peak := stop()
	var ge *client.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusBadRequest || !strings.Contains(ge.Message, "ONNX Runtime") {
		t.Fatalf("push %d bytes of zeros as m@1: %v, want HTTP 400 from ONNX Runtime", payload, err)
	}
	growth := int64(peak) - int64(base)
	t.Logf("heap in use: %d MiB before, %d MiB at the peak of a %d MiB upload (growth %d MiB)", base>>20, peak>>20, payload>>20, growth>>20)
	if growth > payload/4 {
		t.Errorf("the heap grew by %d MiB during a %d MiB upload, want under %d MiB: the upload is held in memory", growth>>20, payload>>20, payload/4>>20)
	}

	// The served version still serves.
	out, err := g.Client.Infer(ctx, "m", "1", []byte(`{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[1,1]}]}`))
	if err != nil {
		t.Fatalf("infer m@1 after a refused upload of m@1: %v", err)
	}
	if !bytes.Contains(out, []byte(`"outputs"`)) {
		t.Fatalf("infer m@1 after a refused upload: %s", out)
	}
	assertNoSpool(t, dir)

	// A real model streamed the same way loads (ONNX Runtime reads the
	// spooled file) and serves; its file moved into the model cache.
	model2 := scorer(t, []string{"a", "b"}, []float32{3, 4}, 1)
	if err := g.Client.PushModel(ctx, "m", "2", struct{ io.Reader }{bytes.NewReader(model2)}, nil); err != nil {
		t.Fatalf("push a real model chunked: %v", err)
	}
	if _, err := g.Client.Infer(ctx, "m", "2", []byte(`{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[1,1]}]}`)); err != nil {
		t.Fatalf("infer m@2: %v", err)
	}
	assertNoSpool(t, dir)
}

// assertNoSpool fails if an upload left a file in the upload dir or a
// temporary file in the model cache.
func assertNoSpool(t *testing.T, dataDir string) {
	t.Helper()
	for _, d := range []string{filepath.Join(dataDir, "uploads"), filepath.Join(dataDir, "cache", "models")} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "upload-") || strings.HasSuffix(e.Name(), ".tmp") {
				t.Errorf("%s is left in %s", e.Name(), d)
			}
			if info, err := e.Info(); err == nil && info.Size() > 1<<20 {
				t.Errorf("%s (%d bytes) is left in %s", e.Name(), info.Size(), d)
			}
		}
	}
}

// --max-upload counts the bytes received: a chunked upload (no
// Content-Length) over it is refused with 413 naming the limit and the
// flag, and leaves nothing on disk.
func TestMaxUploadCountsChunkedBytes(t *testing.T) {
	const maxUpload = 1 << 20
	dir := t.TempDir()
	g := testgw.Start(t, testgw.WithDataDir(dir), testgw.WithOptions(func(o *gateway.Options) { o.MaxUploadBytes, o.MaxBodyBytes = maxUpload, 64<<10 }))
	err := g.Client.PushModel(context.Background(), "m", "1", io.LimitReader(zeros{}, 2*maxUpload), nil)
	var ge *client.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusRequestEntityTooLarge ||
		!strings.Contains(ge.Message, "1 MiB") || !strings.Contains(ge.Message, "--max-upload") {
		t.Fatalf("chunked upload of %d bytes over --max-upload %d: %v, want 413 naming 1 MiB and --max-upload", 2*maxUpload, maxUpload, err)
	}
	assertNoSpool(t, dir)
	// An inference body, sent chunked too, is held to --max-body.
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v2/models/m/infer", io.LimitReader(zeros{}, maxUpload))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "--max-body") {
		t.Fatalf("chunked inference body over --max-body: HTTP %d %s, want 413 naming --max-body", resp.StatusCode, b)
	}
}
