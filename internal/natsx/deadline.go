package natsx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CallTimeout bounds one KV or object-store call (a put, a get, a status)
// made through WithDeadlines, also when the caller's context allows more:
// a request's deadline is 30s, and a NATS node that froze (SIGSTOP, a hung
// disk) answers nothing, so without it an admin write waited out the whole
// request. Five seconds is also what nats.go gives a call whose context has
// no deadline, and outlasts a JetStream leader election.
const CallTimeout = 5 * time.Second

// WithDeadlines returns js such that every KV bucket and object store
// opened through it bounds each of its one-shot calls to d (CallTimeout
// when d <= 0), or to the caller's deadline when that comes first. Calls
// that return something read later (watches, key listers, object readers),
// whose work grows with the bucket (listings, history) or with the object
// (uploads, downloads) keep the caller's context: an upload's progress is
// watched with bounded status calls (artifacts' paced reader).
func WithDeadlines(js jetstream.JetStream, d time.Duration) jetstream.JetStream {
	if d <= 0 {
		d = CallTimeout
	}
	return &bounded{JetStream: js, d: d}
}

type bounded struct {
	jetstream.JetStream
	d time.Duration
}

// call runs f under a context that ends within d, and says so in the error
// when that bound, not the caller's context, ended it.
func call[T any](ctx context.Context, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return f(ctx)
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := f(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer from NATS within %s: %w", d, err)
	}
	return v, err
}

// call0 is call for functions that return only an error.
func call0(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	_, err := call(ctx, d, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

func (b *bounded) kv(kv jetstream.KeyValue, err error) (jetstream.KeyValue, error) {
	if err != nil {
		return kv, err
	}
	return &boundedKV{KeyValue: kv, d: b.d}, nil
}

func (b *bounded) obj(o jetstream.ObjectStore, err error) (jetstream.ObjectStore, error) {
	if err != nil {
		return o, err
	}
	return &boundedObj{ObjectStore: o, d: b.d}, nil
}

func (b *bounded) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return b.kv(b.JetStream.KeyValue(ctx, bucket))
}

func (b *bounded) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return b.kv(b.JetStream.CreateKeyValue(ctx, cfg))
}

func (b *bounded) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return b.kv(b.JetStream.UpdateKeyValue(ctx, cfg))
}

func (b *bounded) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return b.kv(b.JetStream.CreateOrUpdateKeyValue(ctx, cfg))
}

func (b *bounded) ObjectStore(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	return b.obj(b.JetStream.ObjectStore(ctx, bucket))
}

func (b *bounded) CreateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return b.obj(b.JetStream.CreateObjectStore(ctx, cfg))
}

func (b *bounded) UpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return b.obj(b.JetStream.UpdateObjectStore(ctx, cfg))
}

func (b *bounded) CreateOrUpdateObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return b.obj(b.JetStream.CreateOrUpdateObjectStore(ctx, cfg))
}

type boundedKV struct {
	jetstream.KeyValue
	d time.Duration
}

func (k *boundedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return call(ctx, k.d, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return k.KeyValue.Get(ctx, key) })
}

func (k *boundedKV) GetRevision(ctx context.Context, key string, revision uint64) (jetstream.KeyValueEntry, error) {
	return call(ctx, k.d, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
		return k.KeyValue.GetRevision(ctx, key, revision)
	})
}

func (k *boundedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return call(ctx, k.d, func(ctx context.Context) (uint64, error) { return k.KeyValue.Put(ctx, key, value) })
}

func (k *boundedKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	return call(ctx, k.d, func(ctx context.Context) (uint64, error) { return k.KeyValue.PutString(ctx, key, value) })
}

func (k *boundedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return call(ctx, k.d, func(ctx context.Context) (uint64, error) { return k.KeyValue.Create(ctx, key, value, opts...) })
}

func (k *boundedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	return call(ctx, k.d, func(ctx context.Context) (uint64, error) { return k.KeyValue.Update(ctx, key, value, revision) })
}

func (k *boundedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return call0(ctx, k.d, func(ctx context.Context) error { return k.KeyValue.Delete(ctx, key, opts...) })
}

func (k *boundedKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	return call0(ctx, k.d, func(ctx context.Context) error { return k.KeyValue.Purge(ctx, key, opts...) })
}

func (k *boundedKV) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	return call(ctx, k.d, k.KeyValue.Status)
}

type boundedObj struct {
	jetstream.ObjectStore
	d time.Duration
}

func (o *boundedObj) GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	return call(ctx, o.d, func(ctx context.Context) (*jetstream.ObjectInfo, error) {
		return o.ObjectStore.GetInfo(ctx, name, opts...)
	})
}

func (o *boundedObj) UpdateMeta(ctx context.Context, name string, meta jetstream.ObjectMeta) error {
	return call0(ctx, o.d, func(ctx context.Context) error { return o.ObjectStore.UpdateMeta(ctx, name, meta) })
}

func (o *boundedObj) Delete(ctx context.Context, name string) error {
	return call0(ctx, o.d, func(ctx context.Context) error { return o.ObjectStore.Delete(ctx, name) })
}

func (o *boundedObj) AddLink(ctx context.Context, name string, obj *jetstream.ObjectInfo) (*jetstream.ObjectInfo, error) {
	return call(ctx, o.d, func(ctx context.Context) (*jetstream.ObjectInfo, error) { return o.ObjectStore.AddLink(ctx, name, obj) })
}

func (o *boundedObj) Seal(ctx context.Context) error { return call0(ctx, o.d, o.ObjectStore.Seal) }

func (o *boundedObj) Status(ctx context.Context) (jetstream.ObjectStoreStatus, error) {
	return call(ctx, o.d, o.ObjectStore.Status)
}
