package models

import (
	"encoding/json"
	"math"
)

// InferRequest is an Open Inference Protocol (KServe V2) inference request.
type InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []InputTensor     `json:"inputs"`
	Outputs    []RequestedOutput `json:"outputs,omitempty"`
}

// InputTensor is one input of a request. Data is kept raw and parsed for
// the datatype the model expects, flat or nested (row major).
type InputTensor struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   Datatype        `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
	// Values, when not nil, is the input's data already decoded into a
	// typed slice (see TensorData) by a transport that carries tensors in
	// binary (the OIP binary extension, gRPC); Data is then ignored.
	Values any `json:"-"`

	count int // scalars in Data, as DecodeInferRequest counted them; 0: not counted
}

// RequestedOutput names an output the caller wants; none means all.
type RequestedOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferResponse is an Open Inference Protocol inference response.
type InferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id,omitempty"`
	Outputs      []OutputTensor `json:"outputs"`
}

// OutputTensor is one output of a response. Data holds a typed Go slice
// ([]float32, []int64, []string, ...); see TensorData.
type OutputTensor struct {
	Name     string     `json:"name"`
	Shape    []int64    `json:"shape"`
	Datatype Datatype   `json:"datatype"`
	Data     TensorData `json:"data"`
}

// TensorData is a flat, typed tensor payload. It marshals to a JSON array of
// numbers, booleans or strings: uint8 data as numbers (not base64), FP16 as
// the float32 it stands for, and non-finite floats as the strings "NaN",
// "Infinity" and "-Infinity" (which inputs accept too), since JSON numbers
// cannot hold them.
type TensorData struct {
	Values any
}

// Len is the number of elements.
func (d TensorData) Len() int {
	switch v := d.Values.(type) {
	case []float32:
		return len(v)
	case []float64:
		return len(v)
	case []int8:
		return len(v)
	case []int16:
		return len(v)
	case []int32:
		return len(v)
	case []int64:
		return len(v)
	case []uint8:
		return len(v)
	case []uint16:
		return len(v)
	case []uint32:
		return len(v)
	case []uint64:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	}
	return 0
}

// Float64 returns element i as a float64 (strings as NaN); for events and
// statistics.
func (d TensorData) Float64(i int) float64 {
	switch v := d.Values.(type) {
	case []float32:
		return float64(v[i])
	case []float64:
		return v[i]
	case []int8:
		return float64(v[i])
	case []int16:
		return float64(v[i])
	case []int32:
		return float64(v[i])
	case []int64:
		return float64(v[i])
	case []uint8:
		return float64(v[i])
	case []uint16:
		return float64(v[i])
	case []uint32:
		return float64(v[i])
	case []uint64:
		return float64(v[i])
	case []bool:
		if v[i] {
			return 1
		}
		return 0
	}
	return math.NaN()
}
