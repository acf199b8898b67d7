package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/weirhq/weir/deploy/api/v1alpha1"
	"github.com/weirhq/weir/internal/weirerr"
)

// badArtifactError is an artifact that will not get better by retrying:
// its checksum does not match, it is too large, or its ConfigMap key is
// missing. Reason is the condition reason.
type badArtifactError struct {
	Reason string
	Err    error
}

func (e *badArtifactError) Error() string { return e.Err.Error() }
func (e *badArtifactError) Unwrap() error { return e.Err }

// fetcher reads artifact bytes from an http(s) URL or a ConfigMap key.
type fetcher struct {
	reader  client.Reader
	http    *http.Client
	maxSize int64
}

// fetch returns the bytes of src, checked against its sha256 when one is given.
// what names the artifact in messages ("model fraud@2").
func (f *fetcher) fetch(ctx context.Context, namespace, what string, src v1alpha1.ArtifactSource) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	switch {
	case src.URL != "":
		b, err = f.fetchURL(ctx, what, src.URL)
	case src.ConfigMapRef != nil:
		b, err = f.fetchConfigMap(ctx, namespace, what, *src.ConfigMapRef)
	default:
		return nil, &badArtifactError{Reason: "NoSource", Err: weirerr.Invalidf("%s: source has neither url nor configMapRef", what)}
	}
	if err != nil {
		return nil, err
	}
	if src.SHA256 != "" {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, src.SHA256) {
			return nil, &badArtifactError{Reason: "ChecksumMismatch", Err: weirerr.Invalidf(
				"%s: sha256 of the %d fetched bytes is %s, the resource declares %s", what, len(b), got, strings.ToLower(src.SHA256))}
		}
	}
	return b, nil
}

func (f *fetcher) fetchURL(ctx context.Context, what, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &badArtifactError{Reason: "BadURL", Err: fmt.Errorf("%s: url %q: %w", what, url, err)}
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: fetch %s: %w", what, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, weirerr.Unavailablef("%s: fetch %s: HTTP %d, expected 200", what, url, resp.StatusCode)
	}
	// Read one byte past the limit to tell "exactly the limit" from "more".
	b, err := io.ReadAll(io.LimitReader(resp.Body, f.maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", what, url, err)
	}
	if int64(len(b)) > f.maxSize {
		return nil, &badArtifactError{Reason: "TooLarge", Err: weirerr.TooLargef(
			"%s: %s is larger than the %d-byte limit", what, url, f.maxSize)}
	}
	return b, nil
}

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
