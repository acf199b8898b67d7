package models

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/weirhq/weir/internal/weirerr"
)

// TensorInfo describes one input or output of a model: name, OIP datatype
// and shape, with -1 for dynamic dimensions.
type TensorInfo struct {
	Name     string   `json:"name"`
	Datatype Datatype `json:"datatype"`
	Shape    []int64  `json:"shape"`
}

// SessionOptions tune how ONNX Runtime runs a model.
type SessionOptions struct {
	// IntraOpThreads is the number of threads one Run may use. On small
	// machines serving concurrent requests, 1 is best: requests already run
	// in parallel, and spinning pools fight over the cores
	// (docs/rationale.md has the measurements).
	IntraOpThreads int
	// BatchRunners is how many batches of one model version may run at
	// once when dynamic batching is on (SetBatching). 0 means
	// GOMAXPROCS / IntraOpThreads: one per core, as each run uses
	// IntraOpThreads cores.
	BatchRunners int
}

// Session is a loaded model, safe for concurrent Infer calls. Close waits
// for calls in flight and then frees the runtime session.
type Session struct {
	inputs  []TensorInfo
	outputs []TensorInfo
	byName  map[string]int

	mu     sync.RWMutex // read-held by each Run; Close takes it to free the session
	sess   *ort.DynamicAdvancedSession
	closed bool

	runners int                     // batches that may run at once
	bmu     sync.Mutex              // serialises SetBatching and Close
	batch   atomic.Pointer[batcher] // nil while batching is off
	bclosed bool                    // under bmu: Close has stopped batching for good
	onBatch func(requests int)      // under bmu: told each batched run's request count
}

// LoadSession creates a runtime session for the ONNX file at path. A model
// weir cannot serve is refused here, with the reason, rather than failing
// (or crashing the process) on its first request.
func LoadSession(path string, o SessionOptions) (*Session, error) {
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, weirerr.Invalidf("ONNX Runtime cannot load the model: %s", cleanORTError(err))
	}
	s := &Session{byName: map[string]int{}}
	s.runners = o.BatchRunners
	if s.runners <= 0 {
		s.runners = max(1, runtime.GOMAXPROCS(0)/max(1, o.IntraOpThreads))
	}
	if s.inputs, err = describe("input", ins); err != nil {
		return nil, err
	}
	if s.outputs, err = describe("output", outs); err != nil {
		return nil, err
	}
	// The binding indexes the first name unconditionally: a model without
	// inputs or outputs would panic inside it.
	if len(s.inputs) == 0 {
		return nil, weirerr.Invalidf("the model has no inputs; weir serves models that take at least one tensor")
	}
	if len(s.outputs) == 0 {
		return nil, weirerr.Invalidf("the model has no outputs")
	}
	for i, in := range s.inputs {
		s.byName[in.Name] = i
		if len(in.Shape) == 0 && (in.Datatype == FP16 || in.Datatype == Bytes) {
			return nil, weirerr.Invalidf("input %q is a rank-0 %s tensor, which the ONNX Runtime Go binding cannot build", in.Name, in.Datatype)
		}
	}
	for _, out := range s.outputs {
		if out.Datatype == FP16 && !static(out.Shape) {
			return nil, weirerr.Invalidf("output %q is FP16 with dynamic shape %v: the ONNX Runtime Go binding truncates runtime-allocated FP16 outputs, so weir needs a static shape to allocate it", out.Name, out.Shape)
		}
		if len(out.Shape) == 0 && out.Datatype == Bytes {
			return nil, weirerr.Invalidf("output %q is a rank-0 BYTES tensor, which the ONNX Runtime Go binding cannot hold", out.Name)
		}
	}

	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	threads := o.IntraOpThreads
	if threads <= 0 {
		threads = 1
	}
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, err
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	// Spinning threads burn the cores that concurrent requests need.
	_ = opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0")
	_ = opts.AddSessionConfigEntry("session.inter_op.allow_spinning", "0")

	inNames := make([]string, len(s.inputs))
	for i, in := range s.inputs {
		inNames[i] = in.Name
	}
	outNames := make([]string, len(s.outputs))
	for i, out := range s.outputs {
		outNames[i] = out.Name
	}
	s.sess, err = ort.NewDynamicAdvancedSession(path, inNames, outNames, opts)
	if err != nil {
		return nil, weirerr.Invalidf("ONNX Runtime cannot load the model: %s", cleanORTError(err))
	}
	return s, nil
}

func describe(kind string, infos []ort.InputOutputInfo) ([]TensorInfo, error) {
	out := make([]TensorInfo, 0, len(infos))
	for _, info := range infos {
		if info.OrtValueType != ort.ONNXTypeTensor {
			return nil, weirerr.Invalidf("%s %q is a %s; weir serves models whose inputs and outputs are tensors", kind, info.Name, info.OrtValueType)
		}
		dt, ok := datatypeOf(info.DataType)
		if !ok {
			return nil, weirerr.Invalidf("%s %q has element type %s, which the Open Inference Protocol has no datatype for", kind, info.Name, info.DataType)
		}
		shape := make([]int64, len(info.Dimensions))
		for i, d := range info.Dimensions {
			if d < 0 {
				d = -1
			}
			shape[i] = d
		}
		out = append(out, TensorInfo{Name: info.Name, Datatype: dt, Shape: shape})
	}
	return out, nil
}

func static(shape []int64) bool {
	for _, d := range shape {
		if d < 0 {
			return false
		}
	}
	return true
}

// cleanORTError trims the binding's wrapping so the runtime's own reason shows.
func cleanORTError(err error) string {
	msg := err.Error()
	for _, p := range []string{"Error creating C session: ", "Error running network: ", "Error loading temporary session: "} {
		if i := strings.Index(msg, p); i >= 0 {
			msg = msg[i+len(p):]
		}
	}
	// "Load model from /local/cache/path failed:<reason>": the path means
	// nothing to the caller.
	if strings.HasPrefix(msg, "Load model from ") {
		if i := strings.Index(msg, " failed:"); i >= 0 {
			msg = msg[i+len(" failed:"):]
		}
	}
	return strings.TrimSpace(msg)
}

// Inputs describes the model's inputs.
func (s *Session) Inputs() []TensorInfo { return s.inputs }

// Outputs describes the model's outputs.
func (s *Session) Outputs() []TensorInfo { return s.outputs }

// Tensor is a named, typed tensor: a request input after validation, or an
// output.
type Tensor struct {
	Name     string
	Datatype Datatype
	Shape    []int64
	Data     TensorData

	buf any // the pooled buffer behind Data, for Release
}

// Prepare validates request inputs against the model's signature and
// parses their data: every error names the input, what came and what was
// expected. The runtime never sees data that would fail these checks.
func (s *Session) Prepare(inputs []InputTensor) ([]Tensor, error) {
	if len(inputs) != len(s.inputs) {
		seen := map[string]bool{}
		for _, in := range inputs {
			if _, ok := s.byName[in.Name]; !ok {
				return nil, weirerr.Invalidf("unknown input %q: the model's inputs are %s", in.Name, s.inputList())
			}
			seen[in.Name] = true
		}
		for _, want := range s.inputs {
			if !seen[want.Name] {
				return nil, weirerr.Invalidf("missing input %q (%s %v)", want.Name, want.Datatype, want.Shape)
			}
		}
	}
	out := make([]Tensor, len(s.inputs))
	for _, in := range inputs {
		i, ok := s.byName[in.Name]
		if !ok {
			return nil, weirerr.Invalidf("unknown input %q: the model's inputs are %s", in.Name, s.inputList())
		}
		if out[i].Name != "" {
			return nil, weirerr.Invalidf("input %q given twice", in.Name)
		}
		t, err := s.prepareOne(s.inputs[i], in)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

func (s *Session) inputList() string {
	parts := make([]string, len(s.inputs))
	for i, in := range s.inputs {
		parts[i] = fmt.Sprintf("%q (%s %v)", in.Name, in.Datatype, in.Shape)
	}
	return strings.Join(parts, ", ")
}

func (s *Session) prepareOne(want TensorInfo, in InputTensor) (Tensor, error) {
	if in.Datatype != want.Datatype {
		if !in.Datatype.Valid() {
			return Tensor{}, weirerr.Invalidf("input %q: unknown datatype %q, expected %s", in.Name, in.Datatype, want.Datatype)
		}
		return Tensor{}, weirerr.Invalidf("input %q has datatype %s, expected %s", in.Name, in.Datatype, want.Datatype)
	}
	if in.Shape == nil {
		return Tensor{}, weirerr.Invalidf("input %q has no shape, expected a shape like %v", in.Name, want.Shape)
	}
	if len(in.Shape) != len(want.Shape) {
		return Tensor{}, weirerr.Invalidf("input %q has shape %v (rank %d), expected rank %d shape %v", in.Name, in.Shape, len(in.Shape), len(want.Shape), want.Shape)
	}
	for d, got := range in.Shape {
		if got < 0 {
			return Tensor{}, weirerr.Invalidf("input %q has shape %v with negative dimension %d", in.Name, in.Shape, d)
		}
		if w := want.Shape[d]; w >= 0 && got != w {
			return Tensor{}, weirerr.Invalidf("input %q has shape %v, expected %v (dimension %d must be %d)", in.Name, in.Shape, want.Shape, d, w)
		}
	}
	n, err := elementCount(in.Shape)
	if err != nil {
		return Tensor{}, weirerr.Invalidf("input %q has shape %v: %w", in.Name, in.Shape, err)
	}
	vals := in.Values
	var buf any
	if vals != nil {
		if !valuesMatch(in.Datatype, vals) {
			return Tensor{}, weirerr.Invalidf("input %q (%s): data of type %T", in.Name, in.Datatype, vals)
		}
	} else {
		if len(in.Data) == 0 {
			return Tensor{}, weirerr.Invalidf("input %q has no data", in.Name)
		}
		// The shape is a claim, the data is what arrived: the buffer is
		// sized by the scalars the data holds, and the count is compared
		// after.
		count := in.count
		if count == 0 { // not counted by DecodeInferRequest
			if count, err = countScalars(in.Data); err != nil {
				return Tensor{}, weirerr.Invalidf("input %q (%s): %w", in.Name, in.Datatype, err)
			}
		}
		if vals, buf, err = parseData(in.Data, in.Datatype, count); err != nil {
			return Tensor{}, weirerr.Invalidf("input %q (%s): %w", in.Name, in.Datatype, err)
		}
	}
	t := Tensor{Name: in.Name, Datatype: in.Datatype, Shape: in.Shape, Data: TensorData{Values: vals}, buf: buf}
	if got := t.Data.Len(); got != n {
		Release([]Tensor{t})
		return Tensor{}, weirerr.Invalidf("input %q has shape %v, which needs %d elements, but its data has %d %s", in.Name, in.Shape, n, got, plural(got, "element"))
	}
	return t, nil
}

// MaxElements bounds the element count of one tensor, and each of its
// dimensions: past it a shape is refused before anything is allocated.
const MaxElements = 1<<31 - 1

// elementCount is the product of a shape's dimensions, refusing negative
// dimensions and products (or dimensions) past MaxElements without ever
// overflowing: a claimed shape is untrusted input.
func elementCount(shape []int64) (int, error) {
	n := int64(1)
	for d, got := range shape {
		if got < 0 {
			return 0, fmt.Errorf("dimension %d is negative", d)
		}
		if got > MaxElements {
			return 0, fmt.Errorf("dimension %d is %d, past the limit of %d", d, got, MaxElements)
		}
		if got != 0 && n > MaxElements/got {
			return 0, fmt.Errorf("it holds more than %d elements", MaxElements)
		}
		n *= got
	}
	return int(n), nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// Run executes the model on prepared inputs (in the model's input order, as
// Prepare returns them) and returns every output.
func (s *Session) Run(inputs []Tensor) ([]Tensor, error) {
	vals := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, in := range inputs {
		v, err := newValue(in.Datatype, in.Shape, in.Data.Values)
		if err != nil {
			return nil, weirerr.Invalidf("input %q: %w", in.Name, err)
		}
		vals[i] = v
	}
	outs := make([]ort.Value, len(s.outputs))
	defer func() {
		for _, v := range outs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, o := range s.outputs {
		var err error
		switch {
		case len(o.Shape) == 0:
			outs[i], err = emptyScalar(o.Datatype)
		case o.Datatype == FP16:
			outs[i], err = emptyFP16(o.Shape)
		}
		if err != nil {
			return nil, err
		}
	}

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, weirerr.Unavailablef("model version was unloaded")
	}
	err := s.sess.Run(vals, outs)
	s.mu.RUnlock()
	if err != nil {
		return nil, weirerr.Invalidf("ONNX Runtime rejected the request: %s", cleanORTError(err))
	}
	result := make([]Tensor, len(outs))
	for i, v := range outs {
		data, shape, err := valueData(v)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", s.outputs[i].Name, err)
		}
		result[i] = Tensor{Name: s.outputs[i].Name, Datatype: s.outputs[i].Datatype, Shape: shape, Data: TensorData{Values: data}}
	}
	return result, nil
}

// SetBatching turns dynamic batching on, changes it, or (with the zero
// Batching) turns it off. Turning it on fails, naming the tensor, for a
// model whose inputs and outputs do not all have a dynamic first dimension.
// Requests queued when it is turned off still run, batched.
func (s *Session) SetBatching(cfg Batching) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Enabled() {
		if err := s.CheckBatchable(); err != nil {
			return err
		}
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if s.bclosed {
		return nil
	}
	cur := s.batch.Load()
	switch {
	case !cfg.Enabled() && cur != nil:
		s.batch.Store(nil)
		cur.stop()
	case cfg.Enabled() && cur != nil:
		cur.setConfig(cfg)
	case cfg.Enabled():
		s.batch.Store(newBatcher(s, cfg, s.runners, s.onBatch))
	}
	return nil
}

// observeBatches has f told the number of requests in each batched run
// (from the next time batching is turned on).
func (s *Session) observeBatches(f func(requests int)) {
	s.bmu.Lock()
	s.onBatch = f
	s.bmu.Unlock()
}

// Batching is the session's batching setting (the zero value when off).
func (s *Session) Batching() Batching {
	if b := s.batch.Load(); b != nil {
		return *b.cfg.Load()
	}
	return Batching{}
}

// RunContext is Run, through the dynamic batcher when batching is on and
// the request can share a batch. ctx is the caller's alone: when it ends,
// the caller gets its error at once and its rows leave (or are dropped
// from) the batch, without failing the batch's other requests.
func (s *Session) RunContext(ctx context.Context, inputs []Tensor) ([]Tensor, error) {
	if b := s.batch.Load(); b != nil {
		if outs, handled, err := b.run(ctx, inputs); handled {
			return outs, err
		}
	}
	return s.Run(inputs)
}

// Close stops batching (queued requests still run), then frees the runtime
// session after the calls in flight finish.
func (s *Session) Close() {
	s.bmu.Lock()
	s.bclosed = true
	if b := s.batch.Swap(nil); b != nil {
		b.stop()
	}
	s.bmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.sess.Destroy()
	}
}
