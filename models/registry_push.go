// The write path of the Registry: uploads and pushes of a version's model
// file, its reference data, and deletes, each recorded in the artifact store
// and, for a push, loaded here before it is announced.

package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/weirerr"
)

// Upload validates ONNX bytes by creating a real runtime session, and only
// then stores them; see UploadFile, which it calls with the bytes written to
// the model cache.
func (r *Registry) Upload(ctx context.Context, name, version string, onnx []byte, o UploadOptions) (*Version, error) {
	if len(onnx) == 0 {
		return nil, weirerr.Invalidf("the request body is empty: send the ONNX model's bytes")
	}
	digest := artifacts.Digest(onnx)
	tmp, err := r.writeTemp(digest, func(w io.Writer) error {
		if _, err := w.Write(onnx); err != nil {
			return fmt.Errorf("model cache: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp) // UploadFile moved it unless it failed early
	return r.UploadFile(ctx, name, version, File{Path: tmp, SHA256: digest, Size: int64(len(onnx))}, o)
}

// File is a model already on local disk: the gateway streams an upload to
// a temporary file, hashing it on the way, so that a model of gigabytes is
// never whole in memory.
type File struct {
	Path   string // on the same file system as the model cache, ideally
	SHA256 string // hex digest of the file's bytes
	Size   int64
}

// UploadFile is Push without saying whether the version was created.
func (r *Registry) UploadFile(ctx context.Context, name, version string, f File, o UploadOptions) (*Version, error) {
	v, _, err := r.Push(ctx, name, version, f, o)
	return v, err
}

// Push validates a model on disk by creating a real runtime session from
// the file (ONNX Runtime reads it itself, outside the Go heap), and only
// then stores it; a model that does not load (or cannot take the batching
// asked for) changes nothing. It moves f.Path into the model cache
// (copying it when it cannot be renamed there); the caller removes f.Path
// afterwards in any case.
//
// Versions are immutable: when name@version is stored already, the same
// bytes change nothing (created is false, whatever o says) and other bytes
// are a Conflict (once they are known to load: bytes that do not are
// refused for that first). The version's record in NATS is the truth every gateway
// follows, so it is written first: the version serves here only once it
// is recorded, and a push whose record cannot be written (Unavailable
// once ctx ends) serves nowhere. The version is ready in this process when
// Push returns with created true.
func (r *Registry) Push(ctx context.Context, name, version string, f File, o UploadOptions) (v *Version, created bool, err error) {
	if f.Size == 0 {
		return nil, false, weirerr.Invalidf("the request body is empty: send the ONNX model's bytes")
	}
	prev, exists, err := r.store.Meta(ctx, name, version)
	if err != nil {
		return nil, false, err
	}
	if exists && prev.Blob == f.SHA256 {
		v, err := r.existing(prev, f.SHA256)
		return v, false, err
	}
	path, cached, err := r.cacheFrom(f)
	if err != nil {
		return nil, false, err
	}
	sess, err := LoadSession(path, r.opts.Session)
	if err != nil {
		if cached {
			os.Remove(path)
		}
		return nil, false, err
	}
	features := o.Features
	if len(features) == 0 {
		features = metadataFeatures(path)
	}
	if err := checkFeatures(sess, features); err != nil {
		sess.Close()
		return nil, false, err
	}
	if exists { // other bytes (a model that does not load was told so above)
		sess.Close()
		if cached {
			os.Remove(path)
		}
		_, err := r.existing(prev, f.SHA256)
		return nil, false, err
	}
	meta := artifacts.Meta{Name: name, Version: version, Blob: f.SHA256, Size: f.Size, Uploaded: time.Now().UTC(), Attrs: map[string]string{}}
	if len(features) > 0 {
		meta.Attrs[attrFeatures] = strings.Join(features, ",")
	}
	if b := o.Batching; b != nil {
		if err := r.setBatching(sess, name, version, *b); err != nil {
			sess.Close()
			return nil, false, err
		}
		if b.Enabled() {
			meta.Attrs[attrBatching] = batchingAttr(*b)
		}
	}
	v = &Version{Name: name, Version: version, Meta: meta, Features: features, State: Ready, Session: sess}
	k := key(name, version)
	r.mu.Lock()
	r.pending[k] = f.SHA256
	r.mu.Unlock()
	err = r.putBlob(ctx, path, f.SHA256)
	if err == nil {
		var found artifacts.Meta
		if found, err = r.store.CreateMeta(ctx, meta); errors.Is(err, artifacts.ErrExists) {
			if found.Blob == f.SHA256 { // this push's own record (a try that timed out), or a twin's
				err = nil
			} else {
				_, err = r.existing(found, f.SHA256)
			}
		}
	}
	if !r.finishPush(v, err == nil) {
		sess.Close()
		return nil, false, err
	}
	if err != nil {
		// The record was written after all (the watch saw it while this
		// push waited on NATS): the version serves everywhere, this
		// gateway included; the client that retries is told it is there.
		r.log.Warn("model push answered as failed, but its record was written", "model", name, "version", version, "err", err)
		return nil, false, err
	}
	r.loads.WithLabelValues(name, version, "ok").Inc()
	r.log.Info("model uploaded", "model", name, "version", version, "sha256", f.SHA256[:12], "size", f.Size, "features", len(features))
	return v, true, nil
}

// existing answers a push of bytes with digest sha256 to a version stored
// as prev: the same bytes change nothing, other bytes are a Conflict.
func (r *Registry) existing(prev artifacts.Meta, sha256 string) (*Version, error) {
	if prev.Blob != sha256 {
		return nil, weirerr.Conflictf("model %s@%s exists already with other bytes (sha256 %s, this upload's %s): versions are immutable, so push these bytes as a new version (and roll it out with a canary)",
			prev.Name, prev.Version, short(prev.Blob), short(sha256))
	}
	r.mu.RLock()
	v := r.versions[prev.Name][prev.Version]
	r.mu.RUnlock()
	if v == nil { // recorded, and not yet seen by this gateway's watch
		v = &Version{Name: prev.Name, Version: prev.Version, Meta: prev, Features: splitList(prev.Attrs[attrFeatures]), State: Loading}
	}
	return v, nil
}

func short(digest string) string { return digest[:min(12, len(digest))] }

// finishPush ends a push of v, which no longer waits on NATS. When its
// record was written (recorded), or the watch saw it written while the push
// thought it failed, v is installed and finishPush reports true; else
// nothing of it stays.
func (r *Registry) finishPush(v *Version, recorded bool) bool {
	k := key(v.Name, v.Version)
	r.mu.Lock()
	delete(r.pending, k)
	if !recorded && r.want[k] != v.Meta.Blob {
		r.mu.Unlock()
		return false
	}
	r.want[k] = v.Meta.Blob
	old := r.putLocked(v)
	r.mu.Unlock()
	r.retire(old, v)
	r.announce(old, v.Name, v.Version, true)
	return true
}

// putBlob streams the cached model file at path into the artifact store.
func (r *Registry) putBlob(ctx context.Context, path, digest string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("model cache: %w", err)
	}
	defer fh.Close()
	return r.store.PutBlobFrom(ctx, digest, fh)
}

// SetReference stores reference (training) data for name@version. header
// is the data's feature names (its columns), which become the model's
// feature list when it has none. When it has one, the data must name at
// least one of its features (else Invalid, naming both lists); unmatched
// are the columns that name none.
func (r *Registry) SetReference(ctx context.Context, name, version string, data []byte, header []string) (unmatched []string, err error) {
	meta, ok, err := r.store.Meta(ctx, name, version)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	if features := splitList(meta.Attrs[attrFeatures]); len(features) > 0 {
		known := map[string]bool{}
		for _, f := range features {
			known[f] = true
		}
		for _, h := range header {
			if !known[h] {
				unmatched = append(unmatched, h)
			}
		}
		if len(unmatched) == len(header) {
			return nil, weirerr.Invalidf("the reference data names none of model %s@%s's features (%s); its columns are: %s",
				name, version, strings.Join(features, ", "), strings.Join(header, ", "))
		}
	}
	digest, err := r.store.PutBlob(ctx, data)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{}
	for k, v := range meta.Attrs {
		attrs[k] = v
	}
	attrs[attrReference] = digest
	if attrs[attrFeatures] == "" && len(header) > 0 {
		if v, err := r.Get(name, version); err == nil {
			if err := checkFeatures(v.Session, header); err != nil {
				return nil, err
			}
		}
		attrs[attrFeatures] = strings.Join(header, ",")
	}
	meta.Attrs = attrs
	r.mu.Lock()
	if v := r.versions[name][version]; v != nil {
		nv := *v
		nv.Meta = meta
		nv.Features = splitList(attrs[attrFeatures])
		r.versions[name][version] = &nv
	}
	r.mu.Unlock()
	return unmatched, r.store.PutMeta(ctx, meta)
}

// Reference returns the reference data of name@version, if any.
func (r *Registry) Reference(ctx context.Context, name, version string) ([]byte, bool, error) {
	meta, ok, err := r.store.Meta(ctx, name, version)
	if err != nil || !ok || meta.Attrs[attrReference] == "" {
		return nil, false, err
	}
	b, err := r.store.Blob(ctx, meta.Attrs[attrReference])
	return b, err == nil, err
}

// Delete removes name@version everywhere. The caller checks that no route
// sends it traffic.
func (r *Registry) Delete(ctx context.Context, name, version string) error {
	if _, ok, err := r.store.Meta(ctx, name, version); err != nil {
		return err
	} else if !ok {
		return weirerr.NotFoundf("model %q has no version %q", name, version)
	}
	if err := r.store.Delete(ctx, name, version); err != nil {
		return err
	}
	r.remove(name, version)
	return nil
}

// metadataFeatures reads the feature list weir's ONNX builder writes into
// the model's metadata, if present.
func metadataFeatures(path string) []string {
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		return nil
	}
	defer md.Destroy()
	v, ok, err := md.LookupCustomMetadataMap(FeaturesMetadataKey)
	if err != nil || !ok {
		return nil
	}
	return splitList(v)
}

// checkFeatures verifies a feature list fits the model's first input: a
// numeric tensor of shape [batch, n].
func checkFeatures(s *Session, features []string) error {
	if len(features) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, f := range features {
		if f == "" {
			return weirerr.Invalidf("feature list has an empty name")
		}
		if seen[f] {
			return weirerr.Invalidf("feature %q is listed twice", f)
		}
		seen[f] = true
	}
	in := s.Inputs()[0]
	if len(in.Shape) != 2 {
		return weirerr.Invalidf("a feature list needs the model's first input %q to have shape [batch, n], but it has %v", in.Name, in.Shape)
	}
	if n := in.Shape[1]; n >= 0 && n != int64(len(features)) {
		return weirerr.Invalidf("%d features given, but the model's input %q has %d columns (shape %v)", len(features), in.Name, n, in.Shape)
	}
	if in.Datatype == Bytes || in.Datatype == Bool {
		return weirerr.Invalidf("a feature list needs a numeric first input, but %q is %s", in.Name, in.Datatype)
	}
	return nil
}
