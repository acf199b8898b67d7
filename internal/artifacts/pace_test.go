package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx/natstest"
)

// startSmallIngest runs a NATS server whose streams buffer at most ingest
// bytes of published messages not yet stored (jetstream.max_buffered_size),
// as an operator may configure a shared cluster; past it the server drops
// messages with 429 Too Many Requests.
func startSmallIngest(t *testing.T, ingest int64) jetstream.JetStream {
	t.Helper()
	_, js := natstest.StartTuned(t, func(o *server.Options) { o.StreamMaxBufferedSize = ingest })
	return js
}

// A blob many times the server's ingest buffer is stored whole: the upload
// keeps a bounded window of chunks in flight instead of publishing them all
// at once (nats.go's Put alone allows 4,000 chunks, 500 MiB, in flight and
// fails on such a server, nats-io/nats.go#1908).
func TestPutBlobFromKeepsToTheServersIngestBuffer(t *testing.T) {
	const ingest, size = 4 << 20, 48 << 20
	js := startSmallIngest(t, ingest)
	ctx := context.Background()
	s, err := Open(ctx, js, "things")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rand.N(256))
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	if err := s.PutBlobFrom(ctx, digest, bytes.NewReader(b)); err != nil {
		t.Fatalf("store a %d MiB blob on a server buffering %d MiB: %v", size>>20, ingest>>20, err)
	}
	// Without a deadline nats.go gives each chunk read 5 s, which a loaded
	// machine can exceed while 48 MiB stream back.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var got bytes.Buffer
	if err := s.BlobTo(rctx, digest, &got); err != nil {
		t.Fatal(err)
	}
	if got.Len() != size {
		t.Fatalf("read back %d bytes, want %d", got.Len(), size)
	}
	// Bytes already in memory take the same path.
	if _, err := s.PutBlob(ctx, b[:size/2]); err != nil {
		t.Fatalf("store a %d MiB blob from memory: %v", size>>21, err)
	}
}
