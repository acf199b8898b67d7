package onnx

import (
	"fmt"
	"strings"

	"github.com/weirhq/weir/internal/weirerr"
)

// MetadataFeatures is the metadata_props key under which weir keeps a
// model's feature names, comma-separated, in input column order.
const MetadataFeatures = "weir.features"

// ValueInfo describes a graph input or output.
type ValueInfo struct {
	Name     string
	DataType DataType // Undefined when the value is not a tensor
	// Shape is nil when the model does not declare one (rank unknown), and
	// empty but non-nil for a scalar.
	Shape []Dim
}

// Dims returns the shape with -1 for every symbolic or unknown dimension.
func (v ValueInfo) Dims() []int64 {
	if v.Shape == nil {
		return nil
	}
	d := make([]int64, len(v.Shape))
	for i, s := range v.Shape {
		d[i] = s.Value
		if s.Symbolic() {
			d[i] = -1
		}
	}
	return d
}

// ModelInfo is what ReadModel learns from a ModelProto without a runtime.
type ModelInfo struct {
	IRVersion    int64
	ProducerName string
	Opsets       map[string]int64 // domain ("" is ai.onnx) -> version
	Metadata     map[string]string
	Inputs       []ValueInfo // graph inputs that are not initializers
	Outputs      []ValueInfo
}

// Features returns the feature names stored under MetadataFeatures, or nil.
func (m *ModelInfo) Features() []string {
	s := strings.TrimSpace(m.Metadata[MetadataFeatures])
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// ReadModelIO returns a ModelProto's graph inputs (without those that are
// initializers, which older exporters list as inputs) and outputs.
func ReadModelIO(b []byte) (inputs, outputs []ValueInfo, err error) {
	m, err := ReadModel(b)
	if err != nil {
		return nil, nil, err
	}
	return m.Inputs, m.Outputs, nil
}

// ReadModel decodes the parts of a ModelProto weir looks at. It does not
// validate the graph; only a runtime can say whether a model loads.
func ReadModel(b []byte) (*ModelInfo, error) {
	m := &ModelInfo{Opsets: map[string]int64{}, Metadata: map[string]string{}}
	var graph []byte
	hasGraph := false
	err := eachField(b, func(f field) error {
		switch f.num {
		case modelIRVersion:
			m.IRVersion = int64(f.u64)
		case modelProducerName:
			m.ProducerName = string(f.bytes)
		case modelGraph:
			graph, hasGraph = f.bytes, true
		case modelOpsetImport:
			var domain string
			var version int64
			err := eachField(f.bytes, func(f field) error {
				switch f.num {
				case opsetDomain:
					domain = string(f.bytes)
				case opsetVersion:
					version = int64(f.u64)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("opset_import: %w", err)
			}
			m.Opsets[domain] = version
		case modelMetadataProps:
			var k, v string
			err := eachField(f.bytes, func(f field) error {
				switch f.num {
				case entryKey:
					k = string(f.bytes)
				case entryValue:
					v = string(f.bytes)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("metadata_props: %w", err)
			}
			m.Metadata[k] = v
		}
		return nil
	})
	if err == nil && !hasGraph {
		err = fmt.Errorf("no graph")
	}
	if err == nil {
		err = readGraph(graph, m)
	}
	if err != nil {
		return nil, weirerr.Invalidf("not an ONNX model: %w", err)
	}
	return m, nil
}

func readGraph(b []byte, m *ModelInfo) error {
	inits := map[string]bool{}
	var inputs []ValueInfo
	err := eachField(b, func(f field) error {
		switch f.num {
		case graphInitializer:
			// Only the name is needed: scan the TensorProto's fields.
			return eachField(f.bytes, func(f field) error {
				if f.num == tensorName {
					inits[string(f.bytes)] = true
				}
				return nil
			})
		case graphInput, graphOutput:
			v, err := readValueInfo(f.bytes)
			if err != nil {
				return err
			}
			if f.num == graphInput {
				inputs = append(inputs, v)
			} else {
				m.Outputs = append(m.Outputs, v)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	for _, in := range inputs {
		if !inits[in.Name] {
			m.Inputs = append(m.Inputs, in)
		}
	}
	return nil
}

func readValueInfo(b []byte) (ValueInfo, error) {
	var v ValueInfo
	err := eachField(b, func(f field) error {
		switch f.num {
		case valueInfoName:
			v.Name = string(f.bytes)
		case valueInfoType:
			return eachField(f.bytes, func(f field) error {
				if f.num != typeTensorType { // sequences, maps, optionals
					return nil
				}
				return eachField(f.bytes, func(f field) error {
					switch f.num {
					case tensorTypeElemType:
						v.DataType = DataType(int32(f.u64))
					case tensorTypeShape:
						shape, err := readShape(f.bytes)
						v.Shape = shape
						return err
					}
					return nil
				})
			})
		}
		return nil
	})
	if err != nil {
		return v, fmt.Errorf("value %q: %w", v.Name, err)
	}
	return v, nil
}

func readShape(b []byte) ([]Dim, error) {
	shape := []Dim{} // present, so a scalar is not "unknown rank"
	err := eachField(b, func(f field) error {
		if f.num != shapeDim {
			return nil
		}
		d := Dim{Value: -1}
		err := eachField(f.bytes, func(f field) error {
			switch f.num {
			case dimValue:
				d.Value = int64(f.u64)
			case dimParam:
				d.Param = string(f.bytes)
			}
			return nil
		})
		shape = append(shape, d)
		return err
	})
	return shape, err
}
