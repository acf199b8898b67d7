package models

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirhq/weir/internal/weirerr"
)

// The dynamic batcher of one session (docs/rationale.md, "Dynamic
// batching"). Callers queue requests by shape; one scheduler goroutine cuts
// batches when a runner is free and a batch is ready (full, a preferred
// size, or its oldest request has waited MaxQueueDelay); each batch runs in
// its own goroutine, at most runners at a time. Rows count: a batch holds at
// most MaxBatchSize of them. A request of at least MaxBatchSize rows is
// oversized: it runs on its own, as a batch of one, and oversized requests
// hold at most runners-1 runners at once (all of one runner), so that
// however many a client sends, the other requests keep a runner.

// batcher queues and runs batches for one session.
type batcher struct {
	s       *Session
	cfg     atomic.Pointer[Batching]
	runners int
	onBatch func(requests int) // may be nil
	// testRun, in tests, is called with the row counts of each batch as it
	// is about to run (a batch of several with their inputs copied).
	testRun func(rows []int)
	wake    chan struct{} // buffered 1: something changed
	// batches counts runs of more than one request, batchedRows their
	// rows: what tests (and one day metrics) see of batching working.
	batches, batchedRows atomic.Int64
	stopped              chan struct{} // closed when the scheduler has returned

	mu           sync.Mutex
	groups       map[string]*group // requests whose inputs agree, by shape key
	alone        []*member         // oversized requests waiting for a runner, oldest first
	running      int               // batches running now
	aloneRunning int               // of them, oversized requests
	closing      bool              // no new requests; flush what is queued
	runs         sync.WaitGroup    // batch goroutines
}

// group is the queue of requests of one shape (all but the first dimension).
type group struct {
	key     string
	members []*member
	rows    int
}

// member is one caller's request in the queue.
type member struct {
	ctx     context.Context
	inputs  []Tensor
	rows    int
	arrived time.Time
	alone   bool // oversized: runs on its own (batcher.alone)

	// Set by the scheduler under batcher.mu: the request left the queue,
	// into a batch or dropped.
	taken bool
	// released is closed once the batch no longer reads the caller's
	// inputs, so the caller may return (and free them) only after it.
	released chan struct{}
	done     chan struct{} // closed when outs or err is set
	outs     []Tensor
	err      error
}

func newBatcher(s *Session, cfg Batching, runners int, onBatch func(int)) *batcher {
	if runners <= 0 {
		runners = runtime.GOMAXPROCS(0)
	}
	b := &batcher{s: s, onBatch: onBatch, runners: runners, wake: make(chan struct{}, 1), stopped: make(chan struct{}), groups: map[string]*group{}}
	b.cfg.Store(&cfg)
	go b.schedule()
	return b
}

func (b *batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// setConfig changes the setting; queued requests are judged by the new one.
func (b *batcher) setConfig(cfg Batching) {
	b.cfg.Store(&cfg)
	b.signal()
}

// stop refuses new requests, runs what is queued, and waits for every
// batch to finish.
func (b *batcher) stop() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.signal()
	<-b.stopped
	b.runs.Wait()
}

// batchKey is the shape of a request's inputs past the first dimension, and
// its row count; ok is false when the request cannot share a batch (a
// scalar input, or inputs whose first dimensions differ).
func batchKey(inputs []Tensor) (key string, rows int, ok bool) {
	if len(inputs) == 0 || len(inputs[0].Shape) == 0 {
		return "", 0, false
	}
	rows64 := inputs[0].Shape[0]
	var sb strings.Builder
	for _, in := range inputs {
		if len(in.Shape) == 0 || in.Shape[0] != rows64 {
			return "", 0, false
		}
		for _, d := range in.Shape[1:] {
			sb.WriteString(strconv.FormatInt(d, 10))
			sb.WriteByte(',')
		}
		sb.WriteByte(';')
	}
	return sb.String(), int(rows64), true
}

// run queues inputs for a batch and waits for its share of the outputs, or
// for ctx. handled is false when the request cannot join a batch (the
// caller then runs it alone).
func (b *batcher) run(ctx context.Context, inputs []Tensor) (outs []Tensor, handled bool, err error) {
	cfg := b.cfg.Load()
	key, rows, ok := batchKey(inputs)
	if !ok || rows == 0 {
		return nil, false, nil
	}
	m := &member{ctx: ctx, inputs: inputs, rows: rows, arrived: time.Now(), released: make(chan struct{}), done: make(chan struct{})}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil, false, nil
	}
	if rows >= cfg.MaxBatchSize {
		m.alone = true
		b.alone = append(b.alone, m)
	} else {
		g := b.groups[key]
		if g == nil {
			g = &group{key: key}
			b.groups[key] = g
		}
		g.members = append(g.members, m)
		g.rows += rows
	}
	b.mu.Unlock()
	b.signal()

	select {
	case <-m.done:
		return m.outs, true, m.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !m.taken {
		// Still queued: leave the queue; no batch ever sees this request.
		m.taken = true
		if m.alone {
			b.alone = slices.DeleteFunc(b.alone, func(x *member) bool { return x == m })
		} else {
			b.removeLocked(key, m)
		}
		b.mu.Unlock()
		return nil, true, gaveUp(ctx)
	}
	b.mu.Unlock()
	// In a batch: its rows are dropped from what comes back, the others'
	// are not affected. Wait only until the batch has copied the inputs.
	<-m.released
	return nil, true, gaveUp(ctx)
}

// gaveUp is the error of a caller whose context ended while its request
// was queued or in a batch.
func gaveUp(ctx context.Context) error {
	return weirerr.Unavailablef("the request ended (%w) while it waited for a batch", ctx.Err())
}

func (b *batcher) removeLocked(key string, m *member) {
	g := b.groups[key]
	if g == nil {
		return
	}
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i], g.members[i+1:]...)
			g.rows -= m.rows
			break
		}
	}
	if len(g.members) == 0 {
		delete(b.groups, key)
	}
}

// schedule is the batcher's one scheduling goroutine.
func (b *batcher) schedule() {
	defer close(b.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		b.mu.Lock()
		cfg := b.cfg.Load()
		now := time.Now()
		for b.running < b.runners {
			batch := b.cutLocked(cfg, now)
			if batch == nil {
				break
			}
			b.running++
			b.runs.Add(1)
			go b.runBatch(batch)
		}
		// The next time a queued group becomes ready by its delay.
		var next time.Time
		if b.running < b.runners {
			for _, g := range b.groups {
				if t := g.members[0].arrived.Add(cfg.MaxQueueDelay); next.IsZero() || t.Before(next) {
					next = t
				}
			}
		}
		done := b.closing && len(b.groups) == 0 && len(b.alone) == 0
		b.mu.Unlock()
		if done {
			return
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-b.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// maxAlone is how many runners oversized requests may hold at once: all
// but one, so that the others always keep one.
func (b *batcher) maxAlone() int { return max(1, b.runners-1) }

// cutLocked takes the next batch to run off the queue, or nil when no
// group is ready: of the ready groups and the oldest oversized request
// (while oversized requests hold fewer than maxAlone runners), the one whose
// oldest request came first. Requests whose callers have given up are
// dropped on the way.
func (b *batcher) cutLocked(cfg *Batching, now time.Time) []*member {
	b.alone, _ = b.dropGone(b.alone)
	best := b.readyGroupLocked(cfg, now)
	if len(b.alone) > 0 && b.aloneRunning < b.maxAlone() &&
		(best == nil || b.alone[0].arrived.Before(best.members[0].arrived)) {
		m := b.alone[0]
		b.alone[0] = nil
		b.alone = b.alone[1:]
		m.taken = true
		b.aloneRunning++
		return []*member{m}
	}
	if best == nil {
		return nil
	}
	return b.cutGroupLocked(cfg, best, now)
}

// readyGroupLocked is the ready group whose oldest request came first, or
// nil.
func (b *batcher) readyGroupLocked(cfg *Batching, now time.Time) *group {
	var best *group
	for _, g := range b.groups {
		var gone int
		g.members, gone = b.dropGone(g.members)
		g.rows -= gone
		if len(g.members) == 0 {
			delete(b.groups, g.key)
			continue
		}
		_, ready := readySize(cfg, g.rows, b.expired(cfg, g, now))
		if ready && (best == nil || g.members[0].arrived.Before(best.members[0].arrived)) {
			best = g
		}
	}
	return best
}

func (b *batcher) expired(cfg *Batching, g *group, now time.Time) bool {
	return now.Sub(g.members[0].arrived) >= cfg.MaxQueueDelay || b.closing
}

// cutGroupLocked takes a ready group's next batch: whole requests, oldest
// first, up to the size readySize chose, never more than MaxBatchSize rows
// (one request of more, queued before the setting shrank, runs alone).
func (b *batcher) cutGroupLocked(cfg *Batching, best *group, now time.Time) []*member {
	bestSize, _ := readySize(cfg, best.rows, b.expired(cfg, best, now))
	bestSize = min(bestSize, cfg.MaxBatchSize)
	var batch []*member
	rows := 0
	for len(best.members) > 0 {
		m := best.members[0]
		if len(batch) > 0 && rows+m.rows > bestSize {
			break
		}
		m.taken = true
		batch = append(batch, m)
		rows += m.rows
		best.members = best.members[1:]
	}
	best.rows -= rows
	if len(best.members) == 0 {
		delete(b.groups, best.key)
	}
	return batch
}

// dropGone removes queued requests whose callers have given up (they
// remove themselves too; this only spares a batch their rows), in place,
// and returns the rest and the rows removed. Called with b.mu held.
func (b *batcher) dropGone(ms []*member) (kept []*member, rows int) {
	kept = ms[:0]
	for _, m := range ms {
		if m.ctx.Err() != nil {
			m.taken = true
			rows += m.rows
			close(m.released)
			continue
		}
		kept = append(kept, m)
	}
	clear(ms[len(kept):])
	return kept, rows
}

// readySize says whether a group with rows queued should run now, and how
// many rows its batch may hold. expired is true when its oldest request has
// waited MaxQueueDelay.
func readySize(cfg *Batching, rows int, expired bool) (int, bool) {
	max := cfg.MaxBatchSize
	if rows >= max {
		return max, true
	}
	if p := cfg.PreferredBatchSizes; len(p) > 0 && rows >= p[len(p)-1] {
		return p[len(p)-1], true
	}
	if !expired {
		return 0, false
	}
	// Expired: the largest preferred size that is queued, or all of it.
	for i := len(cfg.PreferredBatchSizes) - 1; i >= 0; i-- {
		if p := cfg.PreferredBatchSizes[i]; p <= rows {
			return p, true
		}
	}
	return max, true
}

// runBatch runs one batch and hands each member its rows.
func (b *batcher) runBatch(batch []*member) {
	alone := batch[0].alone
	defer func() {
		b.mu.Lock()
		b.running--
		if alone {
			b.aloneRunning--
		}
		b.mu.Unlock()
		b.signal()
		b.runs.Done()
	}()
	if f := b.onBatch; f != nil && !alone {
		f(len(batch))
	}
	if len(batch) == 1 {
		m := batch[0]
		if b.testRun != nil {
			b.testRun([]int{m.rows})
		}
		m.outs, m.err = b.s.Run(m.inputs)
		close(m.released)
		close(m.done)
		return
	}
	rows := make([]int, len(batch))
	parts := make([][]Tensor, len(batch))
	total := 0
	for i, m := range batch {
		rows[i], parts[i] = m.rows, m.inputs
		total += m.rows
	}
	b.batches.Add(1)
	b.batchedRows.Add(int64(total))
	joined := concatInputs(parts, total)
	for _, m := range batch {
		close(m.released) // the batch holds its own copy now
	}
	if b.testRun != nil {
		b.testRun(rows)
	}
	outs, err := b.s.Run(joined)
	if err == nil {
		var split [][]Tensor
		if split, err = splitOutputs(outs, rows, total); err == nil {
			for i, m := range batch {
				m.outs = split[i]
				close(m.done)
			}
			return
		}
	}
	// The batch failed (or its outputs cannot be split by row): run each
	// request alone, from the batch's copy of its rows, so that a bad
	// request fails only its own caller.
	off := 0
	for _, m := range batch {
		if m.ctx.Err() != nil {
			m.err = gaveUp(m.ctx)
		} else {
			m.outs, m.err = b.s.Run(sliceRows(joined, off, m.rows, total))
		}
		off += m.rows
		close(m.done)
	}
}

// concatInputs joins requests' inputs along the first dimension.
func concatInputs(parts [][]Tensor, total int) []Tensor {
	first := parts[0]
	out := make([]Tensor, len(first))
	for i, t := range first {
		vals := make([]any, len(parts))
		for j, p := range parts {
			vals[j] = p[i].Data.Values
		}
		shape := append([]int64{int64(total)}, t.Shape[1:]...)
		out[i] = Tensor{Name: t.Name, Datatype: t.Datatype, Shape: shape, Data: TensorData{Values: concatValues(vals)}}
	}
	return out
}

func concatValues(vals []any) any {
	switch vals[0].(type) {
	case []float32:
		return concatTyped[float32](vals)
	case []float64:
		return concatTyped[float64](vals)
	case []int8:
		return concatTyped[int8](vals)
	case []int16:
		return concatTyped[int16](vals)
	case []int32:
		return concatTyped[int32](vals)
	case []int64:
		return concatTyped[int64](vals)
	case []uint8:
		return concatTyped[uint8](vals)
	case []uint16:
		return concatTyped[uint16](vals)
	case []uint32:
		return concatTyped[uint32](vals)
	case []uint64:
		return concatTyped[uint64](vals)
	case []bool:
		return concatTyped[bool](vals)
	case []string:
		return concatTyped[string](vals)
	}
	return nil
}

func concatTyped[T any](vals []any) []T {
	n := 0
	for _, v := range vals {
		n += len(v.([]T))
	}
	out := make([]T, 0, n)
	for _, v := range vals {
		out = append(out, v.([]T)...)
	}
	return out
}

// splitOutputs cuts a batch's outputs into each member's rows. Every output
// must have the batch's row count as its first dimension.
func splitOutputs(outs []Tensor, rows []int, total int) ([][]Tensor, error) {
	for _, o := range outs {
		if len(o.Shape) == 0 || o.Shape[0] != int64(total) || o.Data.Len()%max(total, 1) != 0 {
			return nil, fmt.Errorf("output %q of a %d-row batch has shape %v: it cannot be split by row", o.Name, total, o.Shape)
		}
	}
	split := make([][]Tensor, len(rows))
	off := 0
	for i, r := range rows {
		split[i] = sliceRows(outs, off, r, total)
		off += r
	}
	return split, nil
}

// sliceRows is rows [off, off+n) of tensors whose first dimension is total:
// sub-slices that share the tensors' data (capped, so nothing appends into
// a neighbour's rows).
func sliceRows(ts []Tensor, off, n, total int) []Tensor {
	out := make([]Tensor, len(ts))
	for i, t := range ts {
		per := t.Data.Len() / total
		shape := append([]int64{int64(n)}, t.Shape[1:]...)
		out[i] = Tensor{Name: t.Name, Datatype: t.Datatype, Shape: shape, Data: TensorData{Values: subSlice(t.Data.Values, off*per, (off+n)*per)}}
	}
	return out
}

func subSlice(v any, i, j int) any {
	switch s := v.(type) {
	case []float32:
		return s[i:j:j]
	case []float64:
		return s[i:j:j]
	case []int8:
		return s[i:j:j]
	case []int16:
		return s[i:j:j]
	case []int32:
		return s[i:j:j]
	case []int64:
		return s[i:j:j]
	case []uint8:
		return s[i:j:j]
	case []uint16:
		return s[i:j:j]
	case []uint32:
		return s[i:j:j]
	case []uint64:
		return s[i:j:j]
	case []bool:
		return s[i:j:j]
	case []string:
		return s[i:j:j]
	}
	return nil
}
