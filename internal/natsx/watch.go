package natsx

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV watches in nats.go ride an ordered push consumer that notices a lost
// consumer only after two missed 5s heartbeats. On a cluster a watch's
// consumer lives on one node; when that node goes, replicas would not see
// uploads, routes or rollouts for 10s or more. Buckets opened through
// WithReplicas therefore watch through an ordered pull consumer with a 1s
// heartbeat, which the client recreates where it left off.

// watchHeartbeat bounds how long a lost watch consumer goes unnoticed (two
// of them).
const watchHeartbeat = time.Second

type healingKV struct {
	jetstream.KeyValue
	js     jetstream.JetStream
	bucket string
}

func (r *replicated) wrapKV(kv jetstream.KeyValue, err error) (jetstream.KeyValue, error) {
	if err != nil {
		return kv, err
	}
	return &healingKV{KeyValue: kv, js: r.JetStream, bucket: kv.Bucket()}, nil
}

func (r *replicated) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return r.wrapKV(r.JetStream.KeyValue(ctx, bucket))
}

func (h *healingKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	return h.WatchFiltered(ctx, []string{">"}, opts...)
}

func (h *healingKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	return h.WatchFiltered(ctx, []string{keys}, opts...)
}

// WatchFiltered with options (history, updates only, ...) is nats.go's;
// the plain watch (last value of each key, a nil entry, then updates) is
// ours.
func (h *healingKV) WatchFiltered(ctx context.Context, keys []string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	if len(opts) > 0 {
		return h.KeyValue.WatchFiltered(ctx, keys, opts...)
	}
	s, err := h.js.Stream(ctx, "KV_"+h.bucket)
	if err != nil {
		return nil, err
	}
	prefix := "$KV." + h.bucket + "."
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = prefix + k
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, err
	}
	w := &watcher{bucket: h.bucket, prefix: prefix, out: make(chan jetstream.KeyValueEntry, 256), stop: make(chan struct{})}
	pending := uint64(0)
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}
	if pending == 0 {
		w.out <- nil
		w.initDone = true
	}
	w.cc, err = cons.Consume(w.onMsg, jetstream.PullHeartbeat(watchHeartbeat))
	if err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.stop:
		}
	}()
	return w, nil
}

type watcher struct {
	bucket, prefix string
	cc             jetstream.ConsumeContext
	out            chan jetstream.KeyValueEntry
	initDone       bool
	stop           chan struct{} // closed by Stop: unblocks a waiting send
	stopOnce       sync.Once
	sendMu         sync.Mutex // held while sending, so Stop closes out after the last send
	closed         bool
}

func (w *watcher) onMsg(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	e := &entry{bucket: w.bucket, key: strings.TrimPrefix(m.Subject(), w.prefix), value: m.Data(),
		rev: meta.Sequence.Stream, created: meta.Timestamp, delta: meta.NumPending, op: jetstream.KeyValuePut}
	switch m.Headers().Get("KV-Operation") {
	case "DEL":
		e.op = jetstream.KeyValueDelete
	case "PURGE":
		e.op = jetstream.KeyValuePurge
	}
	if !w.send(e) {
		return
	}
	if !w.initDone && meta.NumPending == 0 {
		w.initDone = true
		w.send(nil)
	}
}

func (w *watcher) send(e jetstream.KeyValueEntry) bool {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.closed {
		return false
	}
	select {
	case w.out <- e:
		return true
	case <-w.stop:
		return false
	}
}

// Updates is closed by Stop, as nats.go's watchers' is.
func (w *watcher) Updates() <-chan jetstream.KeyValueEntry { return w.out }

func (w *watcher) Stop() error {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.cc.Stop()
		w.sendMu.Lock()
		w.closed = true
		close(w.out)
		w.sendMu.Unlock()
	})
	return nil
}

type entry struct {
	bucket, key string
	value       []byte
	rev, delta  uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

func (e *entry) Bucket() string                  { return e.bucket }
func (e *entry) Key() string                     { return e.key }
func (e *entry) Value() []byte                   { return e.value }
func (e *entry) Revision() uint64                { return e.rev }
func (e *entry) Created() time.Time              { return e.created }
func (e *entry) Delta() uint64                   { return e.delta }
func (e *entry) Operation() jetstream.KeyValueOp { return e.op }
