package models

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// signatureSession is a Session with a signature and no runtime session:
// enough for Prepare, which never touches ONNX Runtime.
func signatureSession(inputs ...TensorInfo) *Session {
	s := &Session{inputs: inputs, byName: map[string]int{}}
	for i, in := range inputs {
		s.byName[in.Name] = i
	}
	return s
}

// TestPrepareShapeOverflow pins issue 11 defect 1: a claimed shape whose
// product overflows int64 (or is absurd) is a 400 naming the input, never
// a panic in make with a negative or huge capacity.
func TestPrepareShapeOverflow(t *testing.T) {
	for _, dt := range []Datatype{FP32, Int64, Bytes, Bool, Uint8, FP64} {
		s := signatureSession(TensorInfo{Name: "x", Datatype: dt, Shape: []int64{-1, -1}})
		for _, shape := range [][]int64{
			{2, 4611686018427387904},
			{3, 3074457345618258603},
			{4611686018427387904, 2},
			{1 << 32, 1 << 32},
			{0, 1 << 62}, // zero elements, but a dimension no runtime can index
		} {
			data := `[1]`
			if dt == Bytes {
				data = `["a"]`
			}
			_, err := s.Prepare([]InputTensor{{Name: "x", Datatype: dt, Shape: shape, Data: json.RawMessage(data)}})
			if err == nil || !strings.Contains(err.Error(), `input "x"`) {
				t.Errorf("%s shape %v: error %v, want a 400 naming input \"x\"", dt, shape, err)
			}
		}
	}
}

// TestPrepareClaimedCountCostsBytes pins the other half of defect 1: the
// buffer is sized by the data received, not by the count the shape claims.
// A request claiming [1,536870912] with one element used to allocate 2 GB.
func TestPrepareClaimedCountCostsBytes(t *testing.T) {
	for _, dt := range []Datatype{FP32, Int64, Bytes} {
		s := signatureSession(TensorInfo{Name: "x", Datatype: dt, Shape: []int64{-1, -1}})
		data := `[7]`
		if dt == Bytes {
			data = `["a"]`
		}
		in := []InputTensor{{Name: "x", Datatype: dt, Shape: []int64{1, 536870912}, Data: json.RawMessage(data)}}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := s.Prepare(in)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%s: a shape claiming 536870912 elements with 1 given was accepted", dt)
		}
		for _, want := range []string{`input "x"`, "536870912", "1 element"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", dt, err, want)
			}
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Errorf("%s: preparing a 3-byte tensor allocated %d bytes", dt, got)
		}
	}
}

// TestPrepareCountMismatch: the 400 names the claimed and received counts
// both ways, and the data is counted before anything is sized from it.
func TestPrepareCountMismatch(t *testing.T) {
	s := signatureSession(TensorInfo{Name: "x", Datatype: FP32, Shape: []int64{-1, 3}})
	_, err := s.Prepare([]InputTensor{{Name: "x", Datatype: FP32, Shape: []int64{2, 3}, Data: json.RawMessage(`[1,2,3,4,5,6,7]`)}})
	if err == nil || !strings.Contains(err.Error(), "6 elements") || !strings.Contains(err.Error(), "7 elements") {
		t.Errorf("7 elements for shape [2,3]: %v", err)
	}
	got, err := s.Prepare([]InputTensor{{Name: "x", Datatype: FP32, Shape: []int64{2, 3}, Data: json.RawMessage(`[[1,2,3],[4,5,6]]`)}})
	if err != nil || got[0].Data.Len() != 6 {
		t.Errorf("a valid [2,3] input: %v %v", got, err)
	}
	// A zero-sized dimension is a valid empty tensor.
	if _, err := s.Prepare([]InputTensor{{Name: "x", Datatype: FP32, Shape: []int64{0, 3}, Data: json.RawMessage(`[]`)}}); err != nil {
		t.Errorf("an empty [0,3] input: %v", err)
	}
}

// TestParseDataHintIsUntrusted: parseData never sizes a buffer from its
// hint alone, whatever the caller passes.
func TestParseDataHintIsUntrusted(t *testing.T) {
	for _, n := range []int{-1, -1 << 62, 1 << 40} {
		for _, dt := range []Datatype{FP32, FP64, Int8, Int64, Uint64, Bool, Bytes} {
			raw := `[1]`
			if dt == Bytes {
				raw = `["a"]`
			}
			if _, _, err := parseData([]byte(raw), dt, n); err != nil {
				t.Errorf("%s with hint %d: %v", dt, n, err)
			}
		}
	}
}
