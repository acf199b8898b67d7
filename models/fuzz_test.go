package models

import (
	"testing"

	"github.com/weirhq/weir/internal/weirerr"
)

// FuzzInferRequest fuzzes the OIP JSON request decoder: the body is decoded
// as the gateway does (Session.DecodeInferRequest, which counts the data
// that sizes Prepare's buffers) and prepared against models of every kind
// of signature. It must never panic, refuse only with Invalid errors, and
// accept only tensors whose data matches their shape, holding no more
// elements than the body has bytes (nothing is sized from the claimed
// shape). `make fuzz` runs it longer.
func FuzzInferRequest(f *testing.F) {
	// Every case of issue 11, and ordinary requests to mutate from.
	for _, seed := range []string{
		`{"inputs":[{"name":"f","shape":[2,4611686018427387904],"datatype":"FP32","data":[1]}]}`,
		`{"inputs":[{"name":"i","shape":[3,3074457345618258603],"datatype":"INT64","data":[1]}]}`,
		`{"inputs":[{"name":"s","shape":[2,4611686018427387904],"datatype":"BYTES","data":["a"]}]}`,
		`{"inputs":[{"name":"f","shape":[1,536870912],"datatype":"FP32","data":[1]}]}`,
		`{"inputs":[{"name":"i","shape":[4294967296,4294967296],"datatype":"INT64","data":[1]}]}`,
		`{"inputs":[{"name":"f","shape":[0,4611686018427387904],"datatype":"FP32","data":[]}]}`,
		`{"inputs":[{"name":"f","shape":[-1,2],"datatype":"FP32","data":[1,2]}]}`,
		`{"inputs":[{"name":"f","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,"NaN"]]}]}`,
		`{"inputs":[{"name":"f","shape":[1,3],"datatype":"FP32","data":[1,2]}]}`,
		`{"inputs":[{"name":"i","shape":[1,3],"datatype":"INT64","data":[1,2,9223372036854775808]}]}`,
		`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","b\"c"]}]}`,
		`{"inputs":[{"name":"b","shape":[2],"datatype":"BOOL","data":[true,0]}]}`,
		`{"inputs":[{"name":"f","shape":[1,1],"datatype":"FP32","data":[{"x":1}]}]}`,
		`{"inputs":[{"name":"f","shape":[1,1],"datatype":"FP32","data":"unterminated`,
		`{"inputs":[{"name":"nope","shape":[1],"datatype":"FP32","data":[1]}]}`,
		`{"inputs":[{"name":"f","shape":[1,1],"datatype":"FP99","data":[1]}]}`,
		`{"inputs":[]}`, `null`, `[]`, ``,
	} {
		f.Add([]byte(seed))
	}
	sessions := []*Session{
		signatureSession(TensorInfo{Name: "f", Datatype: FP32, Shape: []int64{-1, -1}}),
		signatureSession(TensorInfo{Name: "i", Datatype: Int64, Shape: []int64{-1, 3}}),
		signatureSession(TensorInfo{Name: "s", Datatype: Bytes, Shape: []int64{-1}}),
		signatureSession(TensorInfo{Name: "b", Datatype: Bool, Shape: []int64{2}}),
		signatureSession(TensorInfo{Name: "f", Datatype: FP16, Shape: []int64{-1, 2}},
			TensorInfo{Name: "u", Datatype: Uint8, Shape: []int64{-1}}),
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range sessions {
			var req InferRequest
			if s.DecodeInferRequest(body, &req) != nil {
				continue
			}
			ts, err := s.Prepare(req.Inputs)
			if err != nil {
				if k := weirerr.KindOf(err); k != weirerr.Invalid {
					t.Fatalf("error of kind %d, want Invalid: %v", k, err)
				}
				continue
			}
			for _, tn := range ts {
				n, err := elementCount(tn.Shape)
				if err != nil || n != tn.Data.Len() {
					t.Fatalf("accepted %s with shape %v and %d elements (%v)", tn.Name, tn.Shape, tn.Data.Len(), err)
				}
				if n > len(body) {
					t.Fatalf("accepted %d elements from a %d-byte body", n, len(body))
				}
			}
		}
	})
}
