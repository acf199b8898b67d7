package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// nats.go's ObjectStore.Put publishes an object's chunks asynchronously
// with up to 4,000 (500 MiB) unacknowledged, and offers no way to lower
// that (nats-io/nats.go#1908). A server buffers what it has received and
// not yet stored up to jetstream.max_buffered_size (128 MiB by default, less
// where an operator says so, and a replicated stream drains slower), drops
// the rest with 429 Too Many Requests, and the upload fails; until then the
// buffered chunks sit in the server's memory, the embedded one's included.
// putObject keeps at most putWindow chunks in flight by pacing the reader
// Put pulls chunks from against the stream's last stored sequence.
const (
	putChunk  = 128 << 10
	putWindow = 16 // chunks: 2 MiB published and not yet stored
	// putStall is how long the stream may store nothing of an upload
	// before it is given up.
	putStall = 30 * time.Second
)

func putObject(ctx context.Context, obj jetstream.ObjectStore, name string, r io.Reader) error {
	// Put waits on the context alone (for the stream's acks, say): a
	// stream that lost its leader would hold it until the context ends,
	// which for an upload is many minutes away. A watchdog ends it once
	// nothing has moved for putStall.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &pacedReader{ctx: ctx, obj: obj, r: r}
	p.moved()
	watchdog := time.AfterFunc(putStall, func() { p.checkStall(cancel) })
	defer watchdog.Stop()
	err := p.put(obj, name)
	if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
		return cause
	}
	return err
}

func (p *pacedReader) put(obj jetstream.ObjectStore, name string) error {
	var err error
	if p.base, err = p.lastSeq(); err != nil {
		return err
	}
	meta := jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: putChunk}}
	_, err = obj.Put(p.ctx, meta, p)
	return err
}

// errStalled ends a put on which nothing moved for putStall; it is a
// timeout (worth another try: the stream may have a new leader by now).
var errStalled = fmt.Errorf("the object store took nothing of the upload for %s: %w", putStall, nats.ErrTimeout)

// moved notes progress: a chunk handed over, or stored.
func (p *pacedReader) moved() { p.lastMove.Store(time.Now().UnixNano()) }

// checkStall cancels the put when nothing moved for putStall, or looks
// again when that will be the case.
func (p *pacedReader) checkStall(cancel context.CancelCauseFunc) {
	idle := time.Duration(time.Now().UnixNano() - p.lastMove.Load())
	if idle >= putStall {
		cancel(errStalled)
		return
	}
	time.AfterFunc(putStall-idle, func() { p.checkStall(cancel) })
}

// pacedReader hands Put one chunk per Read (Put publishes each Read that
// returns bytes as one message) and, every half window, waits until the
// stream has stored all but half a window of them.
type pacedReader struct {
	ctx  context.Context
	obj  jetstream.ObjectStore
	r    io.Reader
	base uint64 // the stream's last sequence before the first chunk
	sent uint64 // chunks handed to Put

	lastMove atomic.Int64 // unix nanos of the last progress (moved)
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.sent >= putWindow && p.sent%(putWindow/2) == 0 {
		if err := p.waitStored(p.sent - putWindow/2); err != nil {
			return 0, err
		}
	}
	n, err := p.r.Read(b)
	if n > 0 {
		p.sent++
		p.moved()
	}
	return n, err
}

// waitStored returns once the stream's last sequence is n past base (other
// writers' messages count too, which only loosens the pace).
func (p *pacedReader) waitStored(n uint64) error {
	last, progress := p.base, time.Now()
	for pause := 200 * time.Microsecond; ; pause = min(2*pause, 20*time.Millisecond) {
		seq, err := p.lastSeq()
		if err != nil {
			return err
		}
		if seq-p.base >= n {
			return nil
		}
		if seq != last {
			last, progress = seq, time.Now()
			p.moved()
		} else if time.Since(progress) > putStall {
			return fmt.Errorf("the object store stored nothing of the upload for %s (%d of %d chunks stored)", putStall, seq-p.base, p.sent)
		}
		select {
		case <-p.ctx.Done():
			return p.ctx.Err()
		case <-time.After(pause):
		}
	}
}

// lastSeq asks the stream's state; a stream without a leader does not
// answer, so the question has a deadline of its own.
func (p *pacedReader) lastSeq() (uint64, error) {
	ctx, cancel := context.WithTimeout(p.ctx, attemptTimeout)
	defer cancel()
	st, err := p.obj.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("object store status: %w", err)
	}
	bs, ok := st.(*jetstream.ObjectBucketStatus)
	if !ok {
		return 0, fmt.Errorf("object store status of type %T has no stream state", st)
	}
	return bs.StreamInfo().State.LastSeq, nil
}
