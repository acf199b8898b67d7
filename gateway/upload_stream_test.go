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
	"github.com/weirhq/weir/internal/onnx"
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
// highest value seen. With live, each sample follows a collection, so it
// counts what is retained, not garbage waiting for the collector.
func heapPeak(live bool) (stop func() uint64) {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	interval := 5 * time.Millisecond
	if live {
		interval = 20 * time.Millisecond // each sample stops the world for a collection
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			if live {
				runtime.GC()
			}
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(interval):
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
// the versions already served keep serving, and no temporary file is left.
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
	stop := heapPeak(false)
	err := g.Client.PushModel(ctx, "m", "2", io.LimitReader(zeros{}, payload), nil)
	peak := stop()
	var ge *client.Error
	if !errors.As(err, &ge) || ge.Status != http.StatusBadRequest || !strings.Contains(ge.Message, "ONNX Runtime") {
		t.Fatalf("push %d bytes of zeros as m@2: %v, want HTTP 400 from ONNX Runtime", payload, err)
	}
	growth := int64(peak) - int64(base)
	t.Logf("heap in use: %d MiB before, %d MiB at the peak of a %d MiB upload (growth %d MiB)", base>>20, peak>>20, payload>>20, growth>>20)
	if growth > payload/4 {
		t.Errorf("the heap grew by %d MiB during a %d MiB upload, want under %d MiB: the upload is held in memory", growth>>20, payload>>20, payload/4>>20)
	}

	// The served version still serves.
	out, err := g.Client.Infer(ctx, "m", "1", []byte(`{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[1,1]}]}`))
	if err != nil {
		t.Fatalf("infer m@1 after a refused upload of m@2: %v", err)
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
	pushModel(t, g, "id", "1", identityModel(t))
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v2/models/id/infer", io.LimitReader(zeros{}, maxUpload))
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

// bigModel writes a valid ONNX model of about size bytes (an Identity graph
// with a large constant it carries) to a file and returns its path.
func bigModel(t *testing.T, size int) string {
	t.Helper()
	m := onnx.NewModel("big", 0)
	g := m.Graph()
	g.Input("features", onnx.Float, onnx.Sym("batch"), onnx.Fixed(2))
	g.Output("out", onnx.Float, onnx.Sym("batch"), onnx.Fixed(2))
	g.Initializer("ballast", onnx.Float, []int64{int64(size / 4)}, make([]float32, size/4))
	g.Node("Identity", []string{"features"}, []string{"out"})
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "big.onnx")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A valid model of 200 MiB goes the whole way from a file: received to disk,
// loaded by ONNX Runtime, streamed into the object store; what the heap
// retains meanwhile (counted after a collection) grows by a fraction of it,
// and it serves. The growth is the in-process NATS server's (its message
// block cache and the chunks it has received and not yet stored, which the
// upload keeps to a window: internal/artifacts/pace.go), about 25 MiB for
// 100 and 200 MiB models alike: bounded, not in proportion.
func TestLargeModelUploadStoresWithBoundedHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and uploads a 200 MiB model")
	}
	const size = 200 << 20
	g := testgw.Start(t)
	ctx := context.Background()
	path := bigModel(t, size)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := heapPeak(true)
	err = g.Client.PushModel(ctx, "big", "1", io.NewSectionReader(f, 0, st.Size()), nil)
	peak := stop()
	if err != nil {
		t.Fatalf("push a valid %d MiB model: %v", st.Size()>>20, err)
	}
	growth := int64(peak) - int64(base)
	t.Logf("live heap: %d MiB before, %d MiB at the peak of a valid %d MiB model's upload and store (growth %d MiB)", base>>20, peak>>20, st.Size()>>20, growth>>20)
	if growth > size/2 {
		t.Errorf("the live heap grew by %d MiB while a %d MiB model was uploaded and stored, want under %d MiB", growth>>20, st.Size()>>20, size/2>>20)
	}
	if _, err := g.Client.Infer(ctx, "big", "1", []byte(`{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[1,2]}]}`)); err != nil {
		t.Fatalf("infer big@1: %v", err)
	}
}

// A body over its limit is answered 413 and the client reads that answer,
// not a connection reset: the gateway stops writing, then reads and drops
// what the client is still sending for a moment before it closes (a close
// with unread bytes would send a TCP reset, which can destroy the answer
// in the client's buffer). Sent many times, with and without
// Content-Length, since a reset is a race. A request refused before its
// body is read (an unknown model) is answered the same way.
func TestBodyOverLimitIsAnswered413NotReset(t *testing.T) {
	const maxBody = 64 << 10
	g := testgw.Start(t, testgw.WithOptions(func(o *gateway.Options) { o.MaxUploadBytes, o.MaxBodyBytes = maxBody, maxBody }))
	pushModel(t, g, "m", "1", identityModel(t))
	for i := range 40 {
		if i%4 == 3 {
			resp, err := http.Post(g.URL+"/v2/models/junk/infer", "application/json", io.LimitReader(zeros{}, 4<<20))
			if err != nil {
				t.Fatalf("request %d of a 4 MiB body to an unknown model: %v, want a 404 answer", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("request %d to an unknown model: HTTP %d %s, want 404", i, resp.StatusCode, b)
			}
			continue
		}
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/v2/models/m/infer", io.LimitReader(zeros{}, 4<<20))
		if i%2 == 0 {
			req.ContentLength = 4 << 20
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("request %d (Content-Length %d) of a 4 MiB body over --max-body: %v, want a 413 answer", i, req.ContentLength, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "--max-body") {
			t.Fatalf("request %d: HTTP %d %s, want 413 naming --max-body", i, resp.StatusCode, b)
		}
	}
}
