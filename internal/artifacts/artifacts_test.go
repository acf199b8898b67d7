package artifacts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, version, key string }{
		{"fraud", "1", "fraud.1"},
		{"fraud.v2", "1.0.3", "fraud=2Ev2.1=2E0=2E3"},
		{"a-b_c", "latest", "a-b_c.latest"},
	} {
		if got := Key(tc.name, tc.version); got != tc.key {
			t.Errorf("Key(%q, %q) = %q, want %q", tc.name, tc.version, got, tc.key)
		}
		name, version, ok := ParseKey(tc.key)
		if !ok || name != tc.name || version != tc.version {
			t.Errorf("ParseKey(%q) = %q, %q, %v; want %q, %q", tc.key, name, version, ok, tc.name, tc.version)
		}
	}
	if _, _, ok := ParseKey("nodot"); ok {
		t.Errorf("ParseKey accepted a key without a version")
	}
}

func openStore(t *testing.T) *Store {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	s, err := Open(context.Background(), js, "things")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *Store, name, version string, b []byte, attrs map[string]string) Meta {
	t.Helper()
	ctx := context.Background()
	d, err := s.PutBlob(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	m := Meta{Name: name, Version: version, Blob: d, Size: int64(len(b)), Uploaded: time.Now().UTC(), Attrs: attrs}
	if err := s.PutMeta(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func blobExists(t *testing.T, s *Store, digest string) bool {
	t.Helper()
	_, err := s.Blob(context.Background(), digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// A blob is collected when the last name@version that uses it, as its bytes
// or in an attribute (a model's reference data), is deleted.
func TestDeleteCollectsBlobsNoLongerUsed(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	shared := []byte("the same bytes")
	ref := []byte("reference data")
	refDigest, err := s.PutBlob(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	a := put(t, s, "m", "1", shared, map[string]string{"reference": refDigest})
	b := put(t, s, "m", "2", shared, nil)
	if a.Blob != b.Blob || a.Blob != Digest(shared) {
		t.Fatalf("same bytes stored under %s and %s, want one digest %s", a.Blob, b.Blob, Digest(shared))
	}

	steps := []struct {
		del             string
		shared, refData bool // still stored afterwards
	}{
		{del: "1", shared: true, refData: false},  // v2 still uses the bytes; nothing else the reference
		{del: "2", shared: false, refData: false}, // the last user is gone
		{del: "2", shared: false, refData: false}, // deleting what is gone is no error
	}
	for _, st := range steps {
		if err := s.Delete(ctx, "m", st.del); err != nil {
			t.Fatalf("delete m@%s: %v", st.del, err)
		}
		if got := blobExists(t, s, a.Blob); got != st.shared {
			t.Errorf("after deleting m@%s the shared blob exists = %v, want %v", st.del, got, st.shared)
		}
		if got := blobExists(t, s, refDigest); got != st.refData {
			t.Errorf("after deleting m@%s the reference blob exists = %v, want %v", st.del, got, st.refData)
		}
	}
}

func TestBlobRefusesCorruptBytes(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	// Bytes stored under a name that is not their digest: what a damaged or
	// tampered object store would hand back.
	if _, err := s.obj.PutBytes(ctx, Digest([]byte("expected")), []byte("something else")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Blob(ctx, Digest([]byte("expected"))); err == nil {
		t.Fatal("Blob returned bytes whose digest does not match")
	}
}

func TestListAndWatch(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	put(t, s, "b", "1", []byte("b1"), nil)
	put(t, s, "a", "1", []byte("a1"), nil)

	var mu sync.Mutex
	var seen []string
	w, err := s.Watch(ctx, func(c Change) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s@%s deleted=%v", c.Name, c.Version, c.Deleted))
	})
	if err != nil {
		t.Fatal(err)
	}
	<-w.Ready()
	mu.Lock()
	initial := len(seen)
	mu.Unlock()
	if initial != 2 {
		t.Fatalf("ready after %d existing entries, want 2", initial)
	}
	put(t, s, "a", "2", []byte("a2"), nil)
	if err := s.Delete(ctx, "b", "1"); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 0, "the put and the delete watched", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < 4 || seen[2] != "a@2 deleted=false" || seen[3] != "b@1 deleted=true" {
			return fmt.Errorf("seen %q", seen)
		}
		return nil
	})

	// Stop joins the watch: once it returns, fn runs no more.
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	after := len(seen)
	mu.Unlock()
	put(t, s, "c", "1", []byte("c1"), nil)
	if err := s.Delete(ctx, "c", "1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seen) != after {
		t.Errorf("changes delivered after Stop returned: %q", seen[after:])
	}
	mu.Unlock()

	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range all {
		got = append(got, m.Name+"@"+m.Version)
	}
	if fmt.Sprint(got) != "[a@1 a@2]" {
		t.Errorf("List = %v, want [a@1 a@2] (by name, then upload time)", got)
	}
}
