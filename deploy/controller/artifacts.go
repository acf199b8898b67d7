package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/weirerr"
)

// badArtifactError is an artifact that will not get better by retrying the
// same declaration: its checksum does not match, it is too large, the
// gateway rejected its bytes, or its ConfigMap key is missing. Reason is the
// condition reason.
type badArtifactError struct {
	Reason string
	Err    error
}

func (e *badArtifactError) Error() string { return e.Err.Error() }
func (e *badArtifactError) Unwrap() error { return e.Err }

// fetcher reads artifact bytes from an http(s) URL or a ConfigMap key.
//
// A URL is streamed into a temporary file while its sha256 is computed, so a
// model of gigabytes costs the controller a copy buffer, not its size in
// memory; the file is pushed to the gateway from disk and removed.
type fetcher struct {
	reader  client.Reader
	http    *http.Client
	maxSize int64
	// idle aborts a download that sends no byte for this long.
	idle time.Duration
	// total bounds one download from request to last byte.
	total  time.Duration
	tmpDir string
}

// newHTTPClient is the download client: connecting, the TLS handshake and
// the response headers each get connect; the body is bounded by the fetch
// deadline and the idle watchdog, not here, so a large artifact may take as
// long as it keeps moving.
func newHTTPClient(connect time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = connect
	tr.ResponseHeaderTimeout = connect
	return &http.Client{Transport: tr}
}

// artifact is fetched, verified bytes, ready to be pushed. Close removes
// what it holds on disk.
type artifact struct {
	io.ReadSeeker
	size  int64
	close func() error
}

// body returns a reader of the whole artifact whose size the HTTP client
// can send as Content-Length (so the gateway can refuse an upload too large
// before reading it).
func (a *artifact) body() (io.Reader, error) {
	if _, err := a.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if ra, ok := a.ReadSeeker.(io.ReaderAt); ok {
		return io.NewSectionReader(ra, 0, a.size), nil
	}
	return a.ReadSeeker, nil
}

func (a *artifact) Close() error {
	if a.close == nil {
		return nil
	}
	return a.close()
}

// fetch returns the bytes of src, checked against its sha256 when one is
// given. what names the artifact in messages ("model fraud@2"). The caller
// closes the artifact.
func (f *fetcher) fetch(ctx context.Context, namespace, what string, src v1alpha1.ArtifactSource) (*artifact, error) {
	switch {
	case src.URL != "":
		return f.fetchURL(ctx, what, src)
	case src.ConfigMapRef != nil:
		b, err := f.fetchConfigMap(ctx, namespace, what, *src.ConfigMapRef)
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		h.Write(b)
		if err := checkSum(what, h, int64(len(b)), src.SHA256); err != nil {
			return nil, err
		}
		return &artifact{ReadSeeker: bytes.NewReader(b), size: int64(len(b))}, nil
	default:
		return nil, &badArtifactError{Reason: "NoSource", Err: weirerr.Invalidf("%s: source has neither url nor configMapRef", what)}
	}
}

func checkSum(what string, h hash.Hash, n int64, want string) error {
	if want == "" {
		return nil
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return &badArtifactError{Reason: "ChecksumMismatch", Err: weirerr.Invalidf(
			"%s: sha256 of the %d fetched bytes is %s, the resource declares %s", what, n, got, strings.ToLower(want))}
	}
	return nil
}

func (f *fetcher) fetchURL(ctx context.Context, what string, src v1alpha1.ArtifactSource) (_ *artifact, err error) {
	url := src.URL
	ctx, cancel := context.WithTimeoutCause(ctx, f.total, fmt.Errorf("%s: download of %s took longer than %v", what, url, f.total))
	defer cancel()
	ctx, stall := context.WithCancelCause(ctx)
	defer stall(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &badArtifactError{Reason: "BadURL", Err: fmt.Errorf("%s: url %q: %w", what, url, err)}
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: fetch %s: %w", what, url, cause(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, weirerr.Unavailablef("%s: fetch %s: HTTP %d, expected 200", what, url, resp.StatusCode)
	}
	if resp.ContentLength > f.maxSize {
		return nil, tooLarge(what, url, f.maxSize)
	}

	tmp, err := os.CreateTemp(f.tmpDir, "weir-artifact-*")
	if err != nil {
		return nil, fmt.Errorf("%s: temporary file for the download: %w", what, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	body := &watchdog{r: resp.Body, idle: f.idle, stall: func() {
		stall(fmt.Errorf("%s: no byte of %s for %v", what, url, f.idle))
	}}
	defer body.stop()
	// Read one byte past the limit to tell "exactly the limit" from "more".
	n, err := io.Copy(io.MultiWriter(tmp, h, fetchBytes), io.LimitReader(body, f.maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", what, url, cause(ctx, err))
	}
	if n > f.maxSize {
		return nil, tooLarge(what, url, f.maxSize)
	}
	if err := checkSum(what, h, n, src.SHA256); err != nil {
		return nil, err
	}
	return &artifact{ReadSeeker: tmp, size: n, close: func() error {
		tmp.Close()
		return os.Remove(tmp.Name())
	}}, nil
}

func tooLarge(what, url string, limit int64) error {
	return &badArtifactError{Reason: "TooLarge", Err: weirerr.TooLargef(
		"%s: %s is larger than the controller's %d-byte artifact limit (--max-artifact-size)", what, url, limit)}
}

// cause prefers the reason a context was cancelled (deadline, stall) over
// the bare "context canceled" the HTTP client reports.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) && !errors.Is(c, context.DeadlineExceeded) {
		return c
	}
	return err
}

// watchdog calls stall when no Read returned a byte for idle.
type watchdog struct {
	r     io.Reader
	idle  time.Duration
	stall func()

	once  sync.Once
	timer *time.Timer
}

func (w *watchdog) Read(p []byte) (int, error) {
	w.once.Do(func() { w.timer = time.AfterFunc(w.idle, w.stall) })
	n, err := w.r.Read(p)
	if n > 0 {
		w.timer.Reset(w.idle)
	}
	return n, err
}

func (w *watchdog) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// fetchBytes counts downloaded bytes into the controller's metrics.
var fetchBytes = writerFunc(func(p []byte) (int, error) {
	metricFetchBytes.Add(float64(len(p)))
	return len(p), nil
})

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (f *fetcher) fetchConfigMap(ctx context.Context, namespace, what string, ref v1alpha1.ConfigMapKeyRef) ([]byte, error) {
	var cm corev1.ConfigMap
	if err := f.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &cm); err != nil {
		return nil, fmt.Errorf("%s: get ConfigMap %s/%s: %w", what, namespace, ref.Name, err)
	}
	if b, ok := cm.BinaryData[ref.Key]; ok {
		return b, nil
	}
	if s, ok := cm.Data[ref.Key]; ok {
		return []byte(s), nil
	}
	return nil, &badArtifactError{Reason: "ConfigMapKeyMissing", Err: weirerr.NotFoundf(
		"%s: ConfigMap %s/%s has no key %q in binaryData or data", what, namespace, ref.Name, ref.Key)}
}

func isBadArtifact(err error) (*badArtifactError, bool) {
	var b *badArtifactError
	ok := errors.As(err, &b)
	return b, ok
}
