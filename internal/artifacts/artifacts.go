package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/lifecycle"
	"github.com/weirhq/weir/internal/weirerr"
)

// Meta describes one name@version. Blob is the sha256 of its bytes in the
// object store; Attrs holds what the owning package needs (feature list,
// limits, the reference data's digest, ...).
type Meta struct {
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Blob     string            `json:"sha256"`
	Size     int64             `json:"size"`
	Uploaded time.Time         `json:"uploaded"`
	Attrs    map[string]string `json:"attrs,omitempty"`
}

// Store is one kind of artifact ("models", "plugins") in JetStream.
type Store struct {
	kind     string
	kv       jetstream.KeyValue
	obj      jetstream.ObjectStore
	retryFor time.Duration
}

// Open creates or binds the buckets weir-<kind> (KV) and weir-<kind>-blobs
// (Object Store).
func Open(ctx context.Context, js jetstream.JetStream, kind string) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      "weir-" + kind,
		Description: "weir " + kind + ": metadata per name and version",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open KV bucket weir-%s: %w", kind, err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      "weir-" + kind + "-blobs",
		Description: "weir " + kind + ": bytes by sha256",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open object store weir-%s-blobs: %w", kind, err)
	}
	return &Store{kind: kind, kv: kv, obj: obj}, nil
}

// Digest is the hex sha256 of b, the name a blob is stored under.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// PutBlob stores b (once per content) and returns its digest.
func (s *Store) PutBlob(ctx context.Context, b []byte) (string, error) {
	d := Digest(b)
	return d, s.PutBlobFrom(ctx, d, bytes.NewReader(b))
}

// PutBlobFrom stores the bytes r yields under digest, which the caller
// computed as it received them (once per content), streaming them in the
// object store's chunks: a model of gigabytes is never whole in memory. A
// NATS failure that may pass (a stream leader being elected) is retried
// from r's start until ctx ends, and is then Unavailable.
func (s *Store) PutBlobFrom(ctx context.Context, digest string, r io.ReadSeeker) error {
	if s.hasBlob(ctx, digest) {
		return nil
	}
	what := fmt.Sprintf("store %s blob %s", s.kind, short(digest))
	err := s.retry(ctx, what, 0, func(ctx context.Context) error {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return putObject(ctx, s.obj, digest, r)
	})
	if err != nil && weirerr.KindOf(err) == weirerr.Internal {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

// hasBlob reports whether digest is stored; when that cannot be known in
// time, it is stored again (the same bytes under the same name).
func (s *Store) hasBlob(ctx context.Context, digest string) bool {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	_, err := s.obj.GetInfo(ctx, digest)
	return err == nil
}

// BlobTo streams the bytes stored under digest into w, checking them
// against the digest on the way; on a mismatch w has received bytes that
// must not be used.
func (s *Store) BlobTo(ctx context.Context, digest string, w io.Writer) error {
	res, err := s.obj.Get(ctx, digest)
	if err != nil {
		return fmt.Errorf("fetch %s blob %s: %w", s.kind, short(digest), err)
	}
	defer res.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), res); err != nil {
		return fmt.Errorf("fetch %s blob %s: %w", s.kind, short(digest), err)
	}
	if hex.EncodeToString(h.Sum(nil)) != digest {
		return fmt.Errorf("%s blob %s is corrupt (digest mismatch)", s.kind, short(digest))
	}
	return nil
}

// Blob returns the bytes stored under digest.
func (s *Store) Blob(ctx context.Context, digest string) ([]byte, error) {
	b, err := s.obj.GetBytes(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("fetch %s blob %s: %w", s.kind, short(digest), err)
	}
	if Digest(b) != digest {
		return nil, fmt.Errorf("%s blob %s is corrupt (digest mismatch)", s.kind, short(digest))
	}
	return b, nil
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// Key is the KV key of name@version. Names may hold dots, which KV treats as
// token separators, so they are escaped ('=' cannot appear in a name).
func Key(name, version string) string {
	return escape(name) + "." + escape(version)
}

func escape(s string) string { return strings.ReplaceAll(s, ".", "=2E") }

func unescape(s string) string { return strings.ReplaceAll(s, "=2E", ".") }

// ParseKey splits a KV key back into name and version.
func ParseKey(key string) (name, version string, ok bool) {
	i := strings.IndexByte(key, '.')
	if i < 0 {
		return "", "", false
	}
	return unescape(key[:i]), unescape(key[i+1:]), true
}

// PutMeta records m; every replica's watch sees it. Failures that may pass
// are retried until ctx ends (see PutBlobFrom).
func (s *Store) PutMeta(ctx context.Context, m Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("record %s %s@%s", s.kind, m.Name, m.Version)
	err = s.retry(ctx, what, attemptTimeout, func(ctx context.Context) error {
		_, err := s.kv.Put(ctx, Key(m.Name, m.Version), b)
		return err
	})
	if err != nil && weirerr.KindOf(err) == weirerr.Internal {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

// Meta returns the metadata of name@version. Failures that may pass are
// retried until ctx ends (see PutBlobFrom).
func (s *Store) Meta(ctx context.Context, name, version string) (m Meta, found bool, err error) {
	err = s.retry(ctx, fmt.Sprintf("read %s %s@%s", s.kind, name, version), attemptTimeout, func(ctx context.Context) error {
		m, found, err = s.meta(ctx, name, version)
		return err
	})
	return m, found, err
}

func (s *Store) meta(ctx context.Context, name, version string) (Meta, bool, error) {
	e, err := s.kv.Get(ctx, Key(name, version))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Meta{}, false, nil
	}
	if err != nil {
		return Meta{}, false, err
	}
	var m Meta
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return Meta{}, false, fmt.Errorf("decode %s metadata %s: %w", s.kind, e.Key(), err)
	}
	return m, true, nil
}

// List returns every name@version, by name then upload time.
func (s *Store) List(ctx context.Context) ([]Meta, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []Meta
	for k := range lister.Keys() {
		name, version, ok := ParseKey(k)
		if !ok {
			continue
		}
		m, found, err := s.Meta(ctx, name, version)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Uploaded.Before(out[j].Uploaded)
	})
	return out, nil
}

// Delete removes name@version's metadata, and each blob it refers to (its
// bytes, and any digest among its attributes, such as a model's reference
// data) that no other name@version still uses.
func (s *Store) Delete(ctx context.Context, name, version string) error {
	m, found, err := s.Meta(ctx, name, version)
	if err != nil {
		return err
	}
	if !found {
		return nil
	}
	if err := s.kv.Delete(ctx, Key(name, version)); err != nil {
		return fmt.Errorf("delete %s %s@%s: %w", s.kind, name, version, err)
	}
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, other := range all {
		for _, d := range other.blobs() {
			inUse[d] = true
		}
	}
	for _, d := range m.blobs() {
		if inUse[d] {
			continue
		}
		if err := s.obj.Delete(ctx, d); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("delete %s blob %s: %w", s.kind, short(d), err)
		}
	}
	return nil
}

// blobs are the digests m refers to: its bytes and digest-valued attributes.
func (m Meta) blobs() []string {
	out := []string{m.Blob}
	for _, v := range m.Attrs {
		if isDigest(v) {
			out = append(out, v)
		}
	}
	return out
}

func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Change is one update seen by Watch.
type Change struct {
	Name, Version string
	Meta          Meta // zero when Deleted
	Deleted       bool
}

// Watcher is a running Watch; its owner stops it with Stop.
type Watcher struct {
	ready  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// Ready is closed once the existing entries have been delivered.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Stop ends the watch and waits (until ctx ends) for its goroutine, so that
// fn is not running and will not run again when it returns nil.
func (w *Watcher) Stop(ctx context.Context) error {
	w.cancel()
	return lifecycle.Wait(ctx, "the artifact watch", w.done)
}

// Watch calls fn for every existing name@version and then for every change,
// in order, on one goroutine, until Stop (or ctx ends).
func (s *Store) Watch(ctx context.Context, fn func(Change)) (*Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	kw, err := s.kv.WatchAll(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch %s: %w", s.kind, err)
	}
	wr := &Watcher{ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(wr.done)
		defer kw.Stop()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-kw.Updates():
				if !ok {
					return
				}
				if e == nil { // end of the initial values
					if initial {
						initial = false
						close(wr.ready)
					}
					continue
				}
				name, version, ok := ParseKey(e.Key())
				if !ok {
					continue
				}
				c := Change{Name: name, Version: version}
				if e.Operation() != jetstream.KeyValuePut {
					c.Deleted = true
				} else if err := json.Unmarshal(e.Value(), &c.Meta); err != nil {
					continue
				}
				fn(c)
			}
		}
	}()
	return wr, nil
}
