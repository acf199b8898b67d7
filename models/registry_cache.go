// The Registry's local cache of model files (ONNX Runtime loads from disk):
// moving uploads in, fetching blobs from the artifact store with retries, and
// writing through temporary files.

package models

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/retry"
)

// cacheFrom moves (or, across file systems, copies) f into the model
// cache as <sha256>.onnx and returns that path; created is false when the
// cache held those bytes already.
func (r *Registry) cacheFrom(f File) (path string, created bool, err error) {
	path = filepath.Join(r.opts.CacheDir, f.SHA256+".onnx")
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	}
	if err := os.Rename(f.Path, path); err == nil {
		return path, true, nil
	}
	src, err := os.Open(f.Path)
	if err != nil {
		return "", false, fmt.Errorf("model cache: %w", err)
	}
	defer src.Close()
	copyFile := func(w io.Writer) error {
		if _, err := io.Copy(w, src); err != nil {
			return fmt.Errorf("model cache: %w", err)
		}
		return nil
	}
	if err := r.writeCache(f.SHA256, copyFile); err != nil {
		return "", false, err
	}
	return path, true, nil
}

// fetchAttempts and fetchBackoff bound how a replica retries fetching a
// blob: a busy or restarting NATS now and then stalls a read past
// nats.go's 5 s per-read timeout (or a writer announces before its blob is
// stored), and one such failure must not leave the version failed here for
// good. Six attempts span about 16 s.
const (
	fetchAttempts = 6
	fetchBackoff  = 250 * time.Millisecond
)

// fetchWithRetry fetches meta's blob into the cache, trying again with
// back-off while the version is still wanted and the registry open.
func (r *Registry) fetchWithRetry(meta artifacts.Meta) error {
	backoff := retry.Backoff{Base: fetchBackoff, Max: fetchBackoff << (fetchAttempts - 2)}
	for attempt := 1; ; attempt++ {
		err := r.fetchToCache(meta.Blob)
		if err == nil || attempt == fetchAttempts || !r.wanted(meta) {
			return err
		}
		wait := backoff.Next()
		r.log.Warn("model fetch failed; retrying", "model", meta.Name, "version", meta.Version,
			"attempt", attempt, "retry_in", wait, "err", err)
		if r.opts.fetchFailed != nil {
			r.opts.fetchFailed(meta)
		}
		select {
		case <-r.ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// fetchToCache streams a blob another replica stored into the model cache,
// checking its digest on the way.
func (r *Registry) fetchToCache(digest string) error {
	ctx, cancel := context.WithTimeout(r.ctx, FetchTimeout)
	defer cancel()
	return r.writeCache(digest, func(w io.Writer) error { return r.store.BlobTo(ctx, digest, w) })
}

// FetchTimeout bounds one attempt at fetching a blob (a model or its
// reference data) announced in NATS: 10 minutes is 2 GiB, the upload
// limit's default, at 3.5 MB/s. A stalled read fails sooner, at nats.go's
// per-read timeout.
const FetchTimeout = 10 * time.Minute

// writeCache writes <digest>.onnx in the model cache through a temporary
// file, so that a failed or partial write never leaves a file under the
// final name.
func (r *Registry) writeCache(digest string, write func(io.Writer) error) error {
	tmp, err := r.writeTemp(digest, write)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(r.opts.CacheDir, digest+".onnx")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("model cache: %w", err)
	}
	return nil
}

// writeTemp writes a temporary <digest>.*.tmp in the model cache (which a
// crash leaves for Open to remove) and returns its path; on error nothing
// is left.
func (r *Registry) writeTemp(digest string, write func(io.Writer) error) (string, error) {
	tmp, err := os.CreateTemp(r.opts.CacheDir, digest+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	err = write(tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("model cache: %w", cerr)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}
