package onnx

import (
	"fmt"

	"github.com/weirhq/weir/internal/weirerr"
)

// Defaults written by NewModel. IR version 8 is what ONNX 1.10+ writes for
// opset 15-17 and every ONNX Runtime since 1.10 loads it.
const (
	DefaultIRVersion = 8
	DefaultOpset     = 17
	producerName     = "weir"
)

// Dim is one dimension of a graph input or output: a fixed size, or a
// symbolic one (Param, e.g. "batch") that the runtime binds per call. The
// zero Param with a negative Value is an unknown, unnamed dimension.
type Dim struct {
	Value int64
	Param string
}

// Fixed is a dimension of size n.
func Fixed(n int64) Dim { return Dim{Value: n} }

// Sym is a symbolic dimension named name (e.g. "batch").
func Sym(name string) Dim { return Dim{Value: -1, Param: name} }

// Symbolic reports whether d has no fixed size.
func (d Dim) Symbolic() bool { return d.Param != "" || d.Value < 0 }

func (d Dim) String() string {
	switch {
	case d.Param != "":
		return d.Param
	case d.Value < 0:
		return "?"
	}
	return fmt.Sprint(d.Value)
}

// Model builds a ModelProto. Build it with NewModel, fill Graph(), then
// Marshal. Mistakes (a value slice of the wrong type, say) are remembered and
// reported by Marshal, so building code need not check each call.
type Model struct {
	IRVersion int64
	Opset     int64
	Name      string
	metadata  [][2]string
	graph     Graph
}

// NewModel starts a model named name importing the default ONNX domain at
// opset (DefaultOpset when 0).
func NewModel(name string, opset int64) *Model {
	if opset == 0 {
		opset = DefaultOpset
	}
	return &Model{IRVersion: DefaultIRVersion, Opset: opset, Name: name, graph: Graph{name: name}}
}

// Graph is the model's main graph.
func (m *Model) Graph() *Graph { return &m.graph }

// SetMetadata adds (or replaces) a metadata_props entry.
func (m *Model) SetMetadata(key, value string) {
	for i, kv := range m.metadata {
		if kv[0] == key {
			m.metadata[i][1] = value
			return
		}
	}
	m.metadata = append(m.metadata, [2]string{key, value})
}

// Graph builds a GraphProto. Nodes must be added in topological order.
type Graph struct {
	name    string
	inputs  [][]byte // encoded ValueInfoProto
	outputs [][]byte
	inits   [][]byte // encoded TensorProto
	nodes   [][]byte // encoded NodeProto
	err     error
}

func (g *Graph) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// Input declares a graph input of element type dt and shape dims.
func (g *Graph) Input(name string, dt DataType, dims ...Dim) {
	g.inputs = append(g.inputs, valueInfo(name, dt, dims))
}

// Output declares a graph output of element type dt and shape dims.
func (g *Graph) Output(name string, dt DataType, dims ...Dim) {
	g.outputs = append(g.outputs, valueInfo(name, dt, dims))
}

// Initializer adds a constant tensor (raw_data) that nodes may use as input.
// values follows Tensor.Values' types.
func (g *Graph) Initializer(name string, dt DataType, dims []int64, values any) {
	b, err := EncodeTensor(&Tensor{Name: name, DataType: dt, Dims: dims, Values: values})
	if err != nil {
		g.fail(fmt.Errorf("initializer %s: %w", name, err))
		return
	}
	g.inits = append(g.inits, b)
}

// Node appends an operator of the default ONNX domain. Its name is
// "<op>_<index>".
func (g *Graph) Node(op string, inputs, outputs []string, attrs ...Attr) {
	var b []byte
	for _, in := range inputs {
		b = putString(b, nodeInput, in)
	}
	for _, out := range outputs {
		b = putString(b, nodeOutput, out)
	}
	b = putString(b, nodeName, fmt.Sprintf("%s_%d", op, len(g.nodes)))
	b = putString(b, nodeOpType, op)
	for _, a := range attrs {
		ab, err := a.encode()
		if err != nil {
			g.fail(fmt.Errorf("node %s: %w", op, err))
			return
		}
		b = putBytes(b, nodeAttribute, ab)
	}
	g.nodes = append(g.nodes, b)
}

func (g *Graph) encode() []byte {
	var b []byte
	for _, n := range g.nodes {
		b = putBytes(b, graphNode, n)
	}
	b = putString(b, graphName, g.name)
	for _, t := range g.inits {
		b = putBytes(b, graphInitializer, t)
	}
	for _, v := range g.inputs {
		b = putBytes(b, graphInput, v)
	}
	for _, v := range g.outputs {
		b = putBytes(b, graphOutput, v)
	}
	return b
}

// valueInfo encodes a ValueInfoProto with a tensor type and a shape (an
// empty, present shape for a scalar).
func valueInfo(name string, dt DataType, dims []Dim) []byte {
	var shape []byte
	for _, d := range dims {
		var db []byte
		switch {
		case d.Param != "":
			db = putString(db, dimParam, d.Param)
		case d.Value >= 0:
			db = putInt64(db, dimValue, d.Value)
		}
		shape = putBytes(shape, shapeDim, db)
	}
	var tt []byte
	tt = putInt64(tt, tensorTypeElemType, int64(dt))
	tt = putBytes(tt, tensorTypeShape, shape)
	var typ []byte
	typ = putBytes(typ, typeTensorType, tt)
	var b []byte
	b = putString(b, valueInfoName, name)
	return putBytes(b, valueInfoType, typ)
}

// Marshal encodes the model as ModelProto bytes, ready for ONNX Runtime.
func (m *Model) Marshal() ([]byte, error) {
	if m.graph.err != nil {
		return nil, weirerr.Invalidf("onnx model %s: %w", m.Name, m.graph.err)
	}
	var b []byte
	b = putInt64(b, modelIRVersion, m.IRVersion)
	b = putString(b, modelProducerName, producerName)
	b = putInt64(b, modelModelVersion, 1)
	b = putBytes(b, modelGraph, m.graph.encode())
	var opset []byte
	opset = putString(opset, opsetDomain, "")
	opset = putInt64(opset, opsetVersion, m.Opset)
	b = putBytes(b, modelOpsetImport, opset)
	for _, kv := range m.metadata {
		var e []byte
		e = putString(e, entryKey, kv[0])
		e = putString(e, entryValue, kv[1])
		b = putBytes(b, modelMetadataProps, e)
	}
	return b, nil
}

// Attr is a node attribute; build one with AttrFloat, AttrInt, ...
type Attr struct {
	name    string
	kind    int
	f       float32
	i       int64
	s       string
	floats  []float32
	ints    []int64
	strings []string
	t       *Tensor
}

// AttrFloat is a FLOAT attribute.
func AttrFloat(name string, v float32) Attr { return Attr{name: name, kind: attrTypeFloat, f: v} }

// AttrInt is an INT attribute.
func AttrInt(name string, v int64) Attr { return Attr{name: name, kind: attrTypeInt, i: v} }

// AttrString is a STRING attribute.
func AttrString(name, v string) Attr { return Attr{name: name, kind: attrTypeString, s: v} }

// AttrFloats is a FLOATS attribute.
func AttrFloats(name string, v ...float32) Attr {
	return Attr{name: name, kind: attrTypeFloats, floats: v}
}

// AttrInts is an INTS attribute.
func AttrInts(name string, v ...int64) Attr { return Attr{name: name, kind: attrTypeInts, ints: v} }

// AttrStrings is a STRINGS attribute.
func AttrStrings(name string, v ...string) Attr {
	return Attr{name: name, kind: attrTypeStrings, strings: v}
}

// AttrTensor is a TENSOR attribute (e.g. Constant's "value").
func AttrTensor(name string, t *Tensor) Attr { return Attr{name: name, kind: attrTypeTensor, t: t} }

func (a Attr) encode() ([]byte, error) {
	var b []byte
	b = putString(b, attrName, a.name)
	b = putInt64(b, attrType, int64(a.kind))
	switch a.kind {
	case attrTypeFloat:
		b = putFloat(b, attrF, a.f)
	case attrTypeInt:
		b = putInt64(b, attrI, a.i)
	case attrTypeString:
		b = putString(b, attrS, a.s)
	case attrTypeFloats:
		b = putPackedFloats(b, attrFloats, a.floats)
	case attrTypeInts:
		b = putPackedInt64s(b, attrInts, a.ints)
	case attrTypeStrings:
		for _, s := range a.strings {
			b = putString(b, attrStrings, s)
		}
	case attrTypeTensor:
		if a.t == nil {
			return nil, fmt.Errorf("attribute %s: nil tensor", a.name)
		}
		tb, err := EncodeTensor(a.t)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.name, err)
		}
		b = putBytes(b, attrT, tb)
	default:
		return nil, fmt.Errorf("attribute %s: unknown kind %d (build attributes with AttrFloat, AttrInt, ...)", a.name, a.kind)
	}
	return b, nil
}
