package models

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testpoll"
)

func initRuntime(t *testing.T) {
	t.Helper()
	lib, err := FindLibrary("")
	if err != nil {
		t.Fatal(err)
	}
	if err := InitRuntime(lib); err != nil {
		t.Fatal(err)
	}
}

// openRegistry is one gateway replica's registry over the shared NATS.
func openRegistry(t *testing.T, srv *natstest.Server) *Registry {
	t.Helper()
	return openRegistryWith(t, srv, Options{})
}

// openRegistryWith is openRegistry with options (its own cache dir is set).
func openRegistryWith(t *testing.T, srv *natstest.Server, o Options) *Registry {
	t.Helper()
	_, js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := artifacts.Open(ctx, js, "models")
	if err != nil {
		t.Fatal(err)
	}
	o.CacheDir = t.TempDir()
	r, err := NewRegistry(ctx, store, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// A version pushed, deleted and pushed again with other bytes, quickly: the
// other replica loads both announcements concurrently, and they may finish
// in either order. Whatever the order, it must end serving the newer bytes.
func TestQuickRepushServesNewestBytesOnOtherReplica(t *testing.T) {
	initRuntime(t)
	srv := natstest.Start(t)
	a, b := openRegistry(t, srv), openRegistry(t, srv)
	// The older bytes are the slower model to load, so an unordered loader
	// tends to install them last.
	slow, err := onnx.MLP("m", []int{64, 512, 512, 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := range 6 {
		fast, err := onnx.MLP("m", []int{64, 1}, int64(round))
		if err != nil {
			t.Fatal(err)
		}
		if round > 0 {
			if err := a.Delete(ctx, "m", "1"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Upload(ctx, "m", "1", slow, UploadOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := a.Delete(ctx, "m", "1"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Upload(ctx, "m", "1", fast, UploadOptions{}); err != nil {
			t.Fatal(err)
		}
		want := artifacts.Digest(fast)
		for _, r := range []*Registry{a, b} {
			testpoll.For(t, time.Minute, "the newest bytes announced", func() error {
				r.mu.RLock()
				defer r.mu.RUnlock()
				if got := r.want[key("m", "1")]; got != want {
					return fmt.Errorf("round %d: wants %.12s, not yet %.12s", round, got, want)
				}
				return nil
			})
			r.wg.Wait() // every load of this round has finished
			v, err := r.Get("m", "1")
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if v.Meta.Blob != want {
				t.Fatalf("round %d: a replica serves %.12s after the re-push of %.12s", round, v.Meta.Blob, want)
			}
		}
	}
}

// A cache file left half-written by a killed process is removed at start.
func TestStaleCacheDownloadsRemovedAtStart(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	store, err := artifacts.Open(ctx, js, "models")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, "0123abcd.4567.tmp")
	if err := os.WriteFile(stale, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry(ctx, store, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale download %s still there after start (stat: %v)", stale, err)
	}
}

// A replica whose first fetch of an announced model fails (here the blob is
// stored a moment after its announcement; in production a busy or
// restarting NATS stalls a read past nats.go's 5 s per-read timeout) tries
// again with back-off instead of leaving the version failed for good.
func TestFetchIsRetried(t *testing.T) {
	initRuntime(t)
	srv := natstest.Start(t)
	failed := make(chan struct{})
	var once sync.Once
	b := openRegistryWith(t, srv, Options{fetchFailed: func(artifacts.Meta) { once.Do(func() { close(failed) }) }})
	_, js := srv.Connect(t)
	ctx := context.Background()
	store, err := artifacts.Open(ctx, js, "models")
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.MLP("m", []int{4, 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	digest := artifacts.Digest(m)
	meta := artifacts.Meta{Name: "m", Version: "1", Blob: digest, Size: int64(len(m)), Uploaded: time.Now().UTC()}
	if err := store.PutMeta(ctx, meta); err != nil {
		t.Fatal(err)
	}
	select { // the replica's first fetch finds no blob
	case <-failed:
	case <-time.After(time.Minute):
		t.Fatal("the replica's fetch of m@1 did not fail within a minute, with no blob stored")
	}
	if _, err := store.PutBlob(ctx, m); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, time.Minute, "m@1 ready on the replica", func() error {
		v, err := b.Get("m", "1")
		if err != nil {
			return err
		}
		if v.State != Ready {
			return fmt.Errorf("m@1 is %s: %s", v.State, v.Err)
		}
		return nil
	})
}
