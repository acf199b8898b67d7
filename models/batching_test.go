package models

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/artifacts"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

// built is a model builder's result, so that loadSession can take it.
type built struct {
	model []byte
	err   error
}

func mk(model []byte, err error) built { return built{model, err} }

// loadSession loads ONNX bytes into a real runtime session for the test.
func loadSession(t *testing.T, b built) *Session {
	t.Helper()
	model, err := b.model, b.err
	if err != nil {
		t.Fatal(err)
	}
	initRuntime(t)
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSession(path, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func setBatching(t *testing.T, s *Session, b Batching) *batcher {
	t.Helper()
	if err := s.SetBatching(b); err != nil {
		t.Fatal(err)
	}
	return s.batch.Load()
}

// mlpRows is rows of n features, distinct for each seed.
func mlpRows(seed, rows, n int) Tensor {
	data := make([]float32, rows*n)
	for i := range data {
		data[i] = float32(math.Sin(float64(seed*1000 + i)))
	}
	return Tensor{Name: "features", Datatype: FP32, Shape: []int64{int64(rows), int64(n)}, Data: TensorData{Values: data}}
}

func sameRows(got, want []Tensor) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d outputs, want %d", len(got), len(want))
	}
	for i := range got {
		if fmt.Sprint(got[i].Shape) != fmt.Sprint(want[i].Shape) {
			return fmt.Errorf("output %q shape %v, want %v", got[i].Name, got[i].Shape, want[i].Shape)
		}
		g, w := got[i].Data.Values.([]float32), want[i].Data.Values.([]float32)
		if len(g) != len(w) {
			return fmt.Errorf("output %q has %d values, want %d", got[i].Name, len(g), len(w))
		}
		for j := range g {
			// A batched GEMM may round differently from a single row's.
			if d := math.Abs(float64(g[j] - w[j])); d > 1e-5*math.Max(1, math.Abs(float64(w[j]))) {
				return fmt.Errorf("output %q value %d is %g, unbatched %g", got[i].Name, j, g[j], w[j])
			}
		}
	}
	return nil
}

// Concurrent callers with different row counts each get exactly their own
// rows, the same as running alone, and they did share batches.
func TestBatchingEachCallerGetsItsRows(t *testing.T) {
	s := loadSession(t, mk(onnx.MLP("m", []int{8, 32, 4}, 7)))
	callers := 24
	want := make([][]Tensor, callers)
	ins := make([]Tensor, callers)
	total := 0
	for i := range callers {
		ins[i] = mlpRows(i, 1+i%4, 8)
		total += 1 + i%4
		var err error
		if want[i], err = s.Run([]Tensor{ins[i]}); err != nil {
			t.Fatal(err)
		}
	}
	// Everyone fits one batch, and the delay is long: the batch runs when
	// the last caller has joined (or, on a very slow machine, in parts).
	b := setBatching(t, s, Batching{MaxBatchSize: total, MaxQueueDelay: time.Second})
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.RunContext(context.Background(), []Tensor{ins[i]})
			if err == nil {
				err = sameRows(got, want[i])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d (%d rows): %v", i, 1+i%4, err)
		}
	}
	if b.batches.Load() == 0 {
		t.Fatal("no batch of more than one request ran")
	}
	t.Logf("%d batches, %d rows in them", b.batches.Load(), b.batchedRows.Load())
}

// Requests whose shapes differ past the first dimension never share a
// batch; each still gets its own answer.
func TestBatchingKeepsShapesApart(t *testing.T) {
	s := loadSession(t, mk(onnx.Identity("id", onnx.Float, onnx.Sym("b"), onnx.Sym("n"))))
	setBatching(t, s, Batching{MaxBatchSize: 8, MaxQueueDelay: 5 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 2 + i%3 // three shapes
			in := Tensor{Name: "x", Datatype: FP32, Shape: []int64{1, int64(n)}, Data: TensorData{Values: mlpRows(i, 1, n).Data.Values}}
			got, err := s.RunContext(context.Background(), []Tensor{in})
			if err == nil {
				err = sameRows(got, []Tensor{{Name: "y", Shape: in.Shape, Data: in.Data}})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
}

// gatherModel looks rows up in a 10-row table: an index out of range fails
// the run, which is how one bad request can fail a whole batch.
func gatherModel() ([]byte, error) {
	m := onnx.NewModel("gather", 0)
	g := m.Graph()
	g.Input("idx", onnx.Int64, onnx.Sym("batch"))
	table := make([]float32, 30)
	for i := range table {
		table[i] = float32(i)
	}
	g.Initializer("table", onnx.Float, []int64{10, 3}, table)
	g.Node("Gather", []string{"table", "idx"}, []string{"rows"}, onnx.AttrInt("axis", 0))
	g.Output("rows", onnx.Float, onnx.Sym("batch"), onnx.Fixed(3))
	return m.Marshal()
}

// A request that makes ONNX Runtime fail fails only its own caller: the
// batch it was in reruns its requests one by one.
func TestBatchingBadRequestFailsOnlyItself(t *testing.T) {
	s := loadSession(t, mk(gatherModel()))
	idx := [][]int64{{1}, {2, 3}, {99}, {4}, {5, 6, 7}}
	b := setBatching(t, s, Batching{MaxBatchSize: 8, MaxQueueDelay: time.Second}) // 8 rows: all five
	var wg sync.WaitGroup
	outs := make([][]Tensor, len(idx))
	errs := make([]error, len(idx))
	for i, ix := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := Tensor{Name: "idx", Datatype: Int64, Shape: []int64{int64(len(ix))}, Data: TensorData{Values: ix}}
			outs[i], errs[i] = s.RunContext(context.Background(), []Tensor{in})
		}()
	}
	wg.Wait()
	for i, ix := range idx {
		if ix[0] == 99 {
			if errs[i] == nil || weirerr.KindOf(errs[i]) != weirerr.Invalid || !strings.Contains(errs[i].Error(), "99") {
				t.Errorf("the bad request: error %v, want ONNX Runtime's 400 about index 99", errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("request %v failed with the bad one: %v", ix, errs[i])
			continue
		}
		got := outs[i][0].Data.Values.([]float32)
		for r, x := range ix {
			for c := range 3 {
				if got[3*r+c] != float32(3*x+int64(c)) {
					t.Fatalf("request %v row %d: got %v", ix, r, got)
				}
			}
		}
	}
	if b.batches.Load() == 0 {
		t.Fatal("no batch ran: the test proved nothing")
	}
}

// A lone request is not held for company: once its oldest request has
// waited max_queue_delay, the batch runs, however small.
func TestBatchingQueueDelayBounded(t *testing.T) {
	s := loadSession(t, mk(onnx.MLP("m", []int{8, 4}, 1)))
	setBatching(t, s, Batching{MaxBatchSize: 64, MaxQueueDelay: 20 * time.Millisecond})
	want, err := s.Run([]Tensor{mlpRows(1, 1, 8)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		got, err := s.RunContext(context.Background(), []Tensor{mlpRows(1, 1, 8)})
		if err == nil {
			err = sameRows(got, want)
		}
		done <- err
	}()
	var result error
	testpoll.For(t, 30*time.Second, "a lone request answered after the queue delay", func() error {
		select {
		case result = <-done:
			return nil
		default:
			return errors.New("still queued")
		}
	})
	if result != nil {
		t.Fatal(result)
	}
}

// A caller that gives up while queued gets its context's error at once,
// and its rows are not in the batch the others then form.
func TestBatchingCallerGivesUp(t *testing.T) {
	s := loadSession(t, mk(onnx.MLP("m", []int{8, 4}, 1)))
	b := setBatching(t, s, Batching{MaxBatchSize: 8, MaxQueueDelay: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := s.RunContext(ctx, []Tensor{mlpRows(0, 3, 8)})
		gone <- err
	}()
	testpoll.For(t, 30*time.Second, "the first request queued", func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.groups) == 0 {
			return errors.New("not queued yet")
		}
		return nil
	})
	cancel()
	err := <-gone
	if !errors.Is(err, context.Canceled) || weirerr.KindOf(err) != weirerr.Unavailable {
		t.Fatalf("the caller who gave up got %v, want a 503 wrapping context.Canceled", err)
	}
	// Two requests of 4 rows fill a batch of 8 only if the 3 given up
	// are gone from the queue.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := mlpRows(i+1, 4, 8)
			want, err := s.Run([]Tensor{in})
			if err == nil {
				var got []Tensor
				if got, err = s.RunContext(context.Background(), []Tensor{in}); err == nil {
					err = sameRows(got, want)
				}
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := b.batchedRows.Load(); n > 8 || n%4 != 0 {
		t.Fatalf("batched rows %d: the given-up request's 3 rows went into a batch", n)
	}
}

// Batching is refused, naming the input and its shape, for a model whose
// first dimension is not a batch axis.
func TestBatchingRefusedWithoutBatchAxis(t *testing.T) {
	s := loadSession(t, mk(onnx.Identity("fixed", onnx.Float, onnx.Fixed(1), onnx.Fixed(3))))
	err := s.SetBatching(Batching{MaxBatchSize: 8})
	if weirerr.KindOf(err) != weirerr.Invalid || !strings.Contains(err.Error(), `input "x" has shape [1 3]`) {
		t.Fatalf("got %v, want a 400 naming input \"x\" and its shape", err)
	}
	if s.Batching().Enabled() {
		t.Fatal("batching is on after a refusal")
	}
}

func TestBatchingValidate(t *testing.T) {
	for _, tc := range []struct {
		b    Batching
		want string
	}{
		{Batching{MaxBatchSize: 1}, "use 0 to turn batching off"},
		{Batching{MaxBatchSize: -3}, "use 0"},
		{Batching{MaxBatchSize: MaxBatchRows + 1}, "past the limit"},
		{Batching{MaxBatchSize: 8, MaxQueueDelay: 2 * time.Second}, "between 0 and 1s"},
		{Batching{MaxBatchSize: 8, MaxQueueDelay: -time.Millisecond}, "between 0 and 1s"},
		{Batching{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 9}}, "preferred batch size 9"},
		{Batching{MaxBatchSize: 8, PreferredBatchSizes: []int{0}}, "preferred batch size 0"},
		{Batching{MaxQueueDelay: time.Millisecond}, "need max_batch_size"},
	} {
		if err := tc.b.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error saying %q", tc.b, err, tc.want)
		}
	}
	b := Batching{MaxBatchSize: 16, PreferredBatchSizes: []int{8, 4, 8}}
	if err := b.Validate(); err != nil || fmt.Sprint(b.PreferredBatchSizes) != "[4 8]" {
		t.Fatalf("got %v, %v; want sorted, deduplicated sizes", b.PreferredBatchSizes, err)
	}
	for _, in := range []string{`{"max_batch_size": 8, "max_queue_delay": "soon"}`, `{"max_batch_size": 8, "max_delay": "1ms"}`, `{"max_batch_size": "8"}`, `{} {}`} {
		if err := b.UnmarshalJSON([]byte(in)); weirerr.KindOf(err) != weirerr.Invalid {
			t.Errorf("%s: got %v, want a 400", in, err)
		}
	}
}

// readySize is Triton's choice: full or the largest preferred size at
// once; after the delay, the largest preferred size queued, else all.
func TestReadySize(t *testing.T) {
	cfg := &Batching{MaxBatchSize: 32, PreferredBatchSizes: []int{4, 16}}
	for _, tc := range []struct {
		rows     int
		expired  bool
		size     int
		runsNow  bool
		scenario string
	}{
		{3, false, 0, false, "small and fresh: wait"},
		{5, false, 0, false, "a preferred size but not the largest: wait for more"},
		{16, false, 16, true, "the largest preferred size: run it"},
		{40, false, 32, true, "past the max: a full batch"},
		{5, true, 4, true, "expired: the largest preferred size queued"},
		{3, true, 32, true, "expired, no preferred size queued: all of it"},
	} {
		size, now := readySize(cfg, tc.rows, tc.expired)
		if now != tc.runsNow || (now && size != tc.size) {
			t.Errorf("%s: got %d, %v", tc.scenario, size, now)
		}
	}
}

// The setting is part of the version's metadata in NATS: set at upload or
// later on one replica, every replica's session batches the same way; a
// re-push of the same bytes keeps it; a model without a batch axis is refused at upload,
// storing nothing.
func TestBatchingReplicatedThroughNATS(t *testing.T) {
	initRuntime(t)
	srv := natstest.Start(t)
	a, b := openRegistry(t, srv), openRegistry(t, srv)
	ctx := context.Background()
	mlp, err := onnx.MLP("m", []int{8, 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	on := Batching{MaxBatchSize: 16, MaxQueueDelay: 500 * time.Microsecond}
	if _, err := a.Upload(ctx, "m", "1", mlp, UploadOptions{Batching: &on}); err != nil {
		t.Fatal(err)
	}
	sees := func(r *Registry, want Batching, what string) {
		t.Helper()
		testpoll.For(t, time.Minute, what, func() error {
			v, err := r.Get("m", "1")
			if err != nil {
				return err
			}
			if got := v.Session.Batching(); got.String() != want.String() {
				return fmt.Errorf("batching %s, want %s", got, want)
			}
			if s := v.summary(); (s.Batching == nil) == want.Enabled() {
				return fmt.Errorf("listing shows batching %v, want %s", s.Batching, want)
			}
			return nil
		})
	}
	sees(a, on, "batching set at upload, here")
	sees(b, on, "batching set at upload, on the other replica")

	changed := Batching{MaxBatchSize: 32, MaxQueueDelay: 2 * time.Millisecond, PreferredBatchSizes: []int{8, 16}}
	if err := a.SetBatching(ctx, "m", "1", changed); err != nil {
		t.Fatal(err)
	}
	sees(a, changed, "batching changed, here")
	sees(b, changed, "batching changed, on the other replica")

	// A re-push of the same bytes changes nothing, the setting included.
	if _, err := b.Upload(ctx, "m", "1", mlp, UploadOptions{Batching: &on}); err != nil {
		t.Fatal(err)
	}
	sees(b, changed, "batching kept by a re-push, there")
	sees(a, changed, "batching kept by a re-push, on the first replica")

	if err := b.SetBatching(ctx, "m", "1", Batching{}); err != nil {
		t.Fatal(err)
	}
	sees(a, Batching{}, "batching turned off on the other replica")

	fixed, err := onnx.Identity("fixed", onnx.Float, onnx.Fixed(1), onnx.Fixed(3))
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Upload(ctx, "fixed", "1", fixed, UploadOptions{Batching: &on})
	if weirerr.KindOf(err) != weirerr.Invalid || !strings.Contains(err.Error(), `input "x" has shape [1 3]`) {
		t.Fatalf("upload of a model without a batch axis, with batching: %v, want a 400 naming the input", err)
	}
	if _, ok, _ := a.store.Meta(ctx, "fixed", "1"); ok {
		t.Fatal("the refused upload was stored")
	}
	if _, err := a.Upload(ctx, "fixed", "1", fixed, UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetBatching(ctx, "fixed", "1", on); weirerr.KindOf(err) != weirerr.Invalid {
		t.Fatalf("batching turned on for a model without a batch axis: %v, want a 400", err)
	}
}

// This replica's row limit (the gateway's --max-rows) caps a batch,
// whatever the stored setting says.
func TestBatchingCappedByReplicaLimit(t *testing.T) {
	initRuntime(t)
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	store, err := artifacts.Open(ctx, js, "models")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistry(ctx, store, Options{CacheDir: t.TempDir(), MaxBatchRows: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	mlp, err := onnx.MLP("m", []int{8, 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Upload(ctx, "m", "1", mlp, UploadOptions{Batching: &Batching{MaxBatchSize: 64, PreferredBatchSizes: []int{8, 32}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Session.Batching(); got.MaxBatchSize != 10 || fmt.Sprint(got.PreferredBatchSizes) != "[8]" {
		t.Fatalf("batching in effect %s, want max_batch_size 10, preferred 8", got)
	}
	if s := v.summary(); s.Batching == nil || s.Batching.MaxBatchSize != 64 {
		t.Fatalf("the listing shows %v, want the stored setting (64)", s.Batching)
	}
}

// A caller that gives up while its batch is running returns at once; the
// batch's other requests still get their rows.
func TestBatchingCallerGivesUpMidBatch(t *testing.T) {
	s := loadSession(t, mk(onnx.MLP("m", []int{8, 4}, 1)))
	entered, proceed := make(chan struct{}), make(chan struct{})
	s.bmu.Lock()
	s.batch.Store(newBatcher(s, Batching{MaxBatchSize: 8, MaxQueueDelay: time.Second}, 1, nil))
	b := s.batch.Load()
	b.mu.Lock()
	var once sync.Once
	b.testRun = func(rows []int) {
		if len(rows) > 1 {
			once.Do(func() { close(entered) })
			<-proceed
		}
	}
	b.mu.Unlock()
	s.bmu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := s.RunContext(ctx, []Tensor{mlpRows(0, 4, 8)})
		gone <- err
	}()
	in := mlpRows(1, 4, 8)
	want, err := s.Run([]Tensor{in})
	if err != nil {
		t.Fatal(err)
	}
	kept := make(chan error, 1)
	go func() {
		got, err := s.RunContext(context.Background(), []Tensor{in})
		if err == nil {
			err = sameRows(got, want)
		}
		kept <- err
	}()
	<-entered // both are in a running batch
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller who gave up mid-batch got %v", err)
	}
	close(proceed)
	if err := <-kept; err != nil {
		t.Fatalf("the other caller: %v", err)
	}
}

// hookedBatcher is a batcher of s with runners runners whose runs are seen
// (their row counts, in order) and, while hold says so, held until release
// is closed.
func hookedBatcher(t *testing.T, s *Session, cfg Batching, runners int, hold func(rows []int) bool) (b *batcher, runs func() [][]int, release func()) {
	t.Helper()
	var mu sync.Mutex
	var seen [][]int
	gate := make(chan struct{})
	s.bmu.Lock()
	s.batch.Store(newBatcher(s, cfg, runners, nil))
	b = s.batch.Load()
	b.mu.Lock()
	b.testRun = func(rows []int) {
		mu.Lock()
		seen = append(seen, slices.Clone(rows))
		mu.Unlock()
		if hold(rows) {
			<-gate
		}
	}
	b.mu.Unlock()
	s.bmu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return b, func() [][]int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}, release
}

// queued reports the rows waiting in b's queues: in groups, and oversized.
func queued(b *batcher) (grouped, alone int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, g := range b.groups {
		grouped += g.rows
	}
	for _, m := range b.alone {
		alone += m.rows
	}
	return grouped, alone
}

// callAsync runs in through s's batcher and checks the answer against an
// unbatched run.
func callAsync(t *testing.T, s *Session, in Tensor) <-chan error {
	t.Helper()
	want, err := s.Run([]Tensor{in})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		got, err := s.RunContext(context.Background(), []Tensor{in})
		if err == nil {
			err = sameRows(got, want)
		}
		done <- err
	}()
	return done
}

// TestBatchingRowsPerBatch pins issue 25 defect 10, the batching rule:
// rows count against max_batch_size (no batch holds more), whole requests
// oldest first, and a request of at least max_batch_size rows runs on its
// own, in its turn, as a batch of one.
func TestBatchingRowsPerBatch(t *testing.T) {
	s := loadSession(t, mk(onnx.MLP("m", []int{8, 4}, 1)))
	var first atomic.Bool
	first.Store(true)
	b, runs, release := hookedBatcher(t, s, Batching{MaxBatchSize: 4}, 1, func([]int) bool {
		return first.Swap(false)
	})
	// One runner, held by an oversized request while the rest queue up.
	var waits []<-chan error
	waits = append(waits, callAsync(t, s, mlpRows(0, 4, 8)))
	testpoll.For(t, 10*time.Second, "the first request running", func() error {
		if r := runs(); len(r) != 1 {
			return fmt.Errorf("runs %v", r)
		}
		return nil
	})
	queuedRows := 0
	for i, rows := range []int{3, 3, 2, 1, 6} {
		waits = append(waits, callAsync(t, s, mlpRows(i+1, rows, 8)))
		queuedRows += rows
		testpoll.For(t, 10*time.Second, fmt.Sprintf("request %d (%d rows) queued", i+1, rows), func() error {
			if g, a := queued(b); g+a != queuedRows {
				return fmt.Errorf("%d rows grouped and %d oversized queued, want %d in all", g, a, queuedRows)
			}
			return nil
		})
	}
	release()
	for i, w := range waits {
		if err := <-w; err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if got, want := fmt.Sprint(runs()), "[[4] [3] [3] [2 1] [6]]"; got != want {
		t.Fatalf("batches (rows of each request) %s, want %s", got, want)
	}
}

// TestBatchingOversizedLeavesARunner: oversized requests hold at most all
// runners but one, so however many a client sends, other requests keep
// being batched and answered while they run.
func TestBatchingOversizedLeavesARunner(t *testing.T) {
	s := loadSession(t, mk(onnx.MLP("m", []int{8, 4}, 1)))
	const maxRows = 4
	b, runs, release := hookedBatcher(t, s, Batching{MaxBatchSize: maxRows}, 2, func(rows []int) bool {
		return rows[0] >= maxRows
	})
	big1 := callAsync(t, s, mlpRows(0, 100, 8))
	testpoll.For(t, 10*time.Second, "the first oversized request running", func() error {
		if r := runs(); fmt.Sprint(r) != "[[100]]" {
			return fmt.Errorf("runs %v", r)
		}
		return nil
	})
	big2 := callAsync(t, s, mlpRows(1, 100, 8))
	testpoll.For(t, 10*time.Second, "the second oversized request queued", func() error {
		if _, a := queued(b); a != 100 {
			return fmt.Errorf("%d oversized rows queued", a)
		}
		return nil
	})
	// The second runner is the small requests': they are answered while
	// the first oversized request still runs and the second waits.
	for i := range 3 {
		if err := <-callAsync(t, s, mlpRows(10+i, 1, 8)); err != nil {
			t.Fatalf("small request %d: %v", i, err)
		}
	}
	if _, a := queued(b); a != 100 {
		t.Fatalf("%d oversized rows queued while the first runs, want 100", a)
	}
	release()
	for i, w := range []<-chan error{big1, big2} {
		if err := <-w; err != nil {
			t.Errorf("oversized request %d: %v", i+1, err)
		}
	}
	if r := runs(); fmt.Sprint(r[len(r)-1]) != "[100]" || len(r) != 5 {
		t.Errorf("runs %v, want the first oversized, three small, then the second oversized", r)
	}
}
