package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ArchiveStore is where the Archiver puts finished Parquet files and Export
// reads them: keys are slash-separated, route=<r>/date=<d>/hour=<h>/<name>.
// The default is a shared, replicated JetStream object store
// (ObjectArchive), so every gateway writes its share of the events into one
// archive; a local directory (DirArchive) stays an option. See
// docs/rationale.md ("One archive").
type ArchiveStore interface {
	// Put stores a whole file under key: readers see all of it or nothing.
	Put(ctx context.Context, key string, data []byte) error
	// List returns the keys starting with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Get returns the bytes under key.
	Get(ctx context.Context, key string) ([]byte, error)
}

// ArchiveBucket is the object store the gateways archive into.
const ArchiveBucket = "weir-archive"

// DirArchive keeps the archive under dir on local disk.
func DirArchive(dir string) ArchiveStore { return dirArchive(dir) }

type dirArchive string

func (d dirArchive) Put(_ context.Context, key string, data []byte) (err error) {
	p := filepath.Join(string(d), filepath.FromSlash(key))
	dir, name := filepath.Split(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create partition dir: %w", err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create archive file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write archive file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync archive file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close archive file: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("rename archive file into place: %w", err)
	}
	// Make the rename itself durable before acking.
	if dh, err := os.Open(dir); err == nil {
		_ = dh.Sync()
		_ = dh.Close()
	}
	return nil
}

// List walks the directory; stale temp files from a crash are removed on
// the way.
func (d dirArchive) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	root := string(d)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".tmp") {
			return os.Remove(p)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			out = append(out, key)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func (d dirArchive) Get(_ context.Context, key string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), filepath.FromSlash(key)))
}

// ObjectArchive keeps the archive in a JetStream object store (created with
// OpenObjectArchive), replicated like the rest of weir's state.
func ObjectArchive(obj jetstream.ObjectStore) ArchiveStore { return objArchive{obj} }

// OpenObjectArchive creates or binds the bucket ArchiveBucket.
func OpenObjectArchive(ctx context.Context, js jetstream.JetStream) (ArchiveStore, error) {
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      ArchiveBucket,
		Description: "weir: inference events as Parquet files, route=/date=/hour=",
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open object store %s: %w", ArchiveBucket, err)
	}
	return objArchive{obj}, nil
}

type objArchive struct{ obj jetstream.ObjectStore }

// Put: an object is visible only once its last chunk and its info are
// stored, which is the all-or-nothing Put promises.
func (o objArchive) Put(ctx context.Context, key string, data []byte) error {
	_, err := o.obj.Put(ctx, jetstream.ObjectMeta{Name: key}, bytes.NewReader(data))
	return err
}

func (o objArchive) List(ctx context.Context, prefix string) ([]string, error) {
	infos, err := o.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range infos {
		if !i.Deleted && strings.HasPrefix(i.Name, prefix) {
			out = append(out, i.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (o objArchive) Get(ctx context.Context, key string) ([]byte, error) {
	return o.obj.GetBytes(ctx, key)
}

// archiveKey joins key parts with slashes.
func archiveKey(parts ...string) string { return path.Join(parts...) }
