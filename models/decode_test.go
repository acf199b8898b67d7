package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// decodeCases are requests that DecodeInferRequest must accept or refuse
// exactly as json.Unmarshal does, with the same result.
var decodeCases = []string{
	`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`,
	`{"id":"r1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,"NaN"]]}],"outputs":[{"name":"y"}]}`,
	` { "Inputs" : [ { "NAME" : "x" , "Shape" : [ ] , "DataType" : "INT64" , "data" : 7 } ] } `,
	`{"parameters":{"a":1,"b":[true]},"inputs":[{"name":"x","parameters":{"binary_data":false},"shape":[1],"datatype":"BYTES","data":["a\"b\u00e9"]}]}`,
	`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":null}]}`,
	`{"inputs":[{"name":"x","shape":null,"datatype":"FP32"}]}`,
	`{"inputs":null,"outputs":null,"id":null,"parameters":null}`,
	`{"inputs":[null,{"name":"x"}]}`,
	`{"inputs":[{"name":"a","shape":[1]}],"inputs":[{"datatype":"FP32"}]}`,
	`{"id":"a","id":null}`,
	`{"unknown":{"deep":[1,{"x":null}],"s":"\ud83d\ude00"},"inputs":[]}`,
	`{"inputs":[{"name":"x","data":[1,{"x":2}]}]}`,
	`null`,
	`{}`,
	`{"id":"\u003c\u2028"}`,
	"{\"id\":\"caf\xe9\"}",
	`{"inputs":[{"name":"x","shape":[-0,9223372036854775807]}]}`,
	`{"outputs":[{"name":"y","parameters":{"binary_data":true}},{"parameters":null}],"outputs":[{"name":"z"}]}`,
	// refused
	``,
	`{"inputs":`,
	`{"inputs":[}`,
	`{"inputs":[{"name":"x","data":[1,,2]}]}`,
	`{"inputs":[{"name":"x","data":[1 2]}]}`,
	`{"inputs":[{"name":"x","data":[01]}]}`,
	`{"inputs":[{"name":"x","data":[1.]}]}`,
	`{"inputs":[{"name":"x","data":[-]}]}`,
	`{"inputs":[{"name":"x","data":[1e]}]}`,
	`{"inputs":[{"name":"x","data":[NaN]}]}`,
	`{"inputs":[{"name":"x","data":[tru]}]}`,
	`{"inputs":[{"name":"x","shape":[1.5]}]}`,
	`{"inputs":[{"name":"x","shape":[1e2]}]}`,
	`{"inputs":[{"name":"x","shape":[99999999999999999999]}]}`,
	`{"inputs":[{"name":"x","shape":["1"]}]}`,
	`{"inputs":[{"name":1}]}`,
	`{"inputs":{}}`,
	`{"inputs":[1]}`,
	`{"id":1}`,
	`{"outputs":[{"name":false}]}`,
	`{"parameters":[]}`,
	`{"outputs":[{"parameters":1}]}`,
	`[1]`,
	`"x"`,
	`{"a":1}x`,
	`{"a":1,}`,
	`{"a" 1}`,
	`{'a':1}`,
	"{\"id\":\"a\x01\"}",
	`{"id":"\x"}`,
	`{"id":"\u12"}`,
	`{"inputs":[{"name":"x","data":[1]}]`,
	`{"inputs":[{"name":"x","data":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}]}`,
}

func TestDecodeInferRequestMatchesEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		checkDecode(t, []byte(c))
	}
}

func checkDecode(t *testing.T, body []byte) {
	t.Helper()
	var want, got InferRequest
	werr := json.Unmarshal(body, &want)
	gerr := DecodeInferRequest(body, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: DecodeInferRequest error %v, encoding/json error %v", abbrevString(body), gerr, werr)
	}
	if werr != nil {
		return
	}
	for i := range got.Inputs {
		got.Inputs[i].count = 0
	}
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("%q:\n got  %#v\n want %#v", abbrevString(body), got, want)
	}
}

// Nesting counts from the top of the request, as encoding/json counts it,
// wherever the decoder skips or scans a value: unknown members, data, and
// members of the wrong type (whose error must then be encoding/json's
// syntax error, not a type error).
func TestDecodeNestingLimitCountsFromTheRequest(t *testing.T) {
	offset := regexp.MustCompile(` \(offset \d+\)$`)
	for _, at := range []string{
		`%s`,
		`{"unknown":%s}`,
		`{"id":%s}`,
		`{"inputs":%s}`,
		`{"inputs":[%s]}`,
		`{"inputs":[{"unknown":%s}]}`,
		`{"inputs":[{"name":%s}]}`,
		`{"inputs":[{"data":%s}]}`,
		`{"inputs":[{"shape":%s}]}`,
		`{"inputs":[{"shape":[%s]}]}`,
		`{"outputs":[{"unknown":%s}]}`,
	} {
		for n := 9995; n <= 10001; n++ {
			body := []byte(fmt.Sprintf(at, strings.Repeat("[", n)+strings.Repeat("]", n)))
			checkDecode(t, body)
			var want, got InferRequest
			werr := json.Unmarshal(body, &want)
			gerr := DecodeInferRequest(body, &got)
			var syntax *json.SyntaxError
			if errors.As(werr, &syntax) && offset.ReplaceAllString(gerr.Error(), "") != werr.Error() {
				t.Errorf("%s with %d arrays: DecodeInferRequest says %q, encoding/json %q", at, n, gerr, werr)
			}
		}
	}
}

// normalize makes empty and nil raw data compare equal (a RawMessage keeps
// a nil slice nil; a view of the body may be empty but not nil).
func normalize(r InferRequest) InferRequest {
	for i := range r.Inputs {
		if len(r.Inputs[i].Data) == 0 {
			r.Inputs[i].Data = nil
		}
	}
	return r
}

func abbrevString(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

func FuzzDecodeInferRequest(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode(t, body)
	})
}

// TestDecodeCountsData checks that the decoder counts scalars, so that
// Prepare sizes its buffer by the data, never by the claimed shape.
func TestDecodeCountsData(t *testing.T) {
	var req InferRequest
	if err := DecodeInferRequest([]byte(`{"inputs":[{"name":"x","shape":[2147483647],"datatype":"FP32","data":[[1,2],[3]]}]}`), &req); err != nil {
		t.Fatal(err)
	}
	if got := req.Inputs[0].count; got != 3 {
		t.Fatalf("counted %d scalars, want 3", got)
	}
}

func TestAppendInferResponseMatchesEncodingJSON(t *testing.T) {
	cases := []InferResponse{
		{ModelName: "m", ModelVersion: "1", Outputs: []OutputTensor{
			{Name: "y", Shape: []int64{1, 3}, Datatype: FP32, Data: TensorData{Values: []float32{0.1, float32(math.Inf(1)), -3e-9}}},
			{Name: "z", Shape: []int64{}, Datatype: FP64, Data: TensorData{Values: []float64{math.NaN()}}},
			{Name: "s", Shape: []int64{2}, Datatype: Bytes, Data: TensorData{Values: []string{"<a&b>\"\\\n", "é\u2028\xff"}}},
			{Name: "b", Shape: []int64{1}, Datatype: Bool, Data: TensorData{Values: []bool{true}}},
			{Name: "u", Shape: nil, Datatype: Uint8, Data: TensorData{Values: []uint8{0, 255}}},
		}},
		{ModelName: "m<&>", ModelVersion: "v\t1", ID: "id-\"1\"", Outputs: []OutputTensor{}},
		{ModelName: "m", ModelVersion: "1"},
	}
	for _, r := range cases {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendInferResponse(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("AppendInferResponse:\n got  %s\n want %s", got, want)
		}
	}
}

// BenchmarkDecodeInferRequest is a batch-1 request of 32 features (the
// serving benchmarks' MLP): decode, validate and parse into the typed
// buffer, then release it.
func BenchmarkDecodeInferRequest(b *testing.B) {
	body := []byte(`{"inputs":[{"name":"features","shape":[1,32],"datatype":"FP32","data":[` +
		strings.TrimSuffix(strings.Repeat("0.03125,", 32), ",") + `]}]}`)
	s := &Session{inputs: []TensorInfo{{Name: "features", Datatype: FP32, Shape: []int64{-1, 32}}}, byName: map[string]int{"features": 0}}
	b.ReportAllocs()
	var req InferRequest
	for b.Loop() {
		if err := DecodeInferRequest(body, &req); err != nil {
			b.Fatal(err)
		}
		ts, err := s.Prepare(req.Inputs)
		if err != nil {
			b.Fatal(err)
		}
		Release(ts)
	}
}

// BenchmarkDecodeInferRequestEncodingJSON is the same with encoding/json,
// as the gateway decoded requests before.
func BenchmarkDecodeInferRequestEncodingJSON(b *testing.B) {
	body := []byte(`{"inputs":[{"name":"features","shape":[1,32],"datatype":"FP32","data":[` +
		strings.TrimSuffix(strings.Repeat("0.03125,", 32), ",") + `]}]}`)
	s := &Session{inputs: []TensorInfo{{Name: "features", Datatype: FP32, Shape: []int64{-1, 32}}}, byName: map[string]int{"features": 0}}
	b.ReportAllocs()
	for b.Loop() {
		var req InferRequest
		if err := json.Unmarshal(body, &req); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Prepare(req.Inputs); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecoderReadsEveryField fails when a field is added to the request
// types without DecodeInferRequest learning to read it.
func TestDecoderReadsEveryField(t *testing.T) {
	known := map[string][]string{
		"InferRequest":    {"id", "parameters", "inputs", "outputs"},
		"InputTensor":     {"name", "shape", "datatype", "parameters", "data"},
		"RequestedOutput": {"name", "parameters"},
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[InferRequest](), reflect.TypeFor[InputTensor](), reflect.TypeFor[RequestedOutput]()} {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if !slices.Contains(known[typ.Name()], name) {
				t.Errorf("%s.%s (JSON %q) is not read by DecodeInferRequest: teach models/decode.go and add it here", typ.Name(), f.Name, name)
			}
		}
	}
}

// Syntax errors say what encoding/json says, with the offset added.
func TestDecodeSyntaxErrorsWordedAsEncodingJSON(t *testing.T) {
	offset := regexp.MustCompile(` \(offset \d+\)$`)
	for _, c := range []string{`{"id":\}`, `{"inputs":[{"name":tru}]}`, `{"id":"\x"}`, `{"inputs":[{"data":[1 2]}]}`, "{\"id\":\xe9}", `{"id" 1}`} {
		var want InferRequest
		werr := json.Unmarshal([]byte(c), &want)
		gerr := DecodeInferRequest([]byte(c), &want)
		if werr == nil || gerr == nil {
			t.Fatalf("%q: DecodeInferRequest error %v, encoding/json error %v", c, gerr, werr)
		}
		if got := offset.ReplaceAllString(gerr.Error(), ""); got != werr.Error() {
			t.Errorf("%q: DecodeInferRequest says %q, encoding/json %q", c, got, werr.Error())
		}
	}
}
