package gateway

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/models"
)

// The Open Inference Protocol's binary tensor extension on HTTP, as Triton
// and KServe define it: a request whose Inference-Header-Content-Length
// header is N carries its JSON in the body's first N bytes and, after it,
// the raw data (models.DecodeRaw's layout) of every input whose
// "binary_data_size" parameter gives its length, in input order. Outputs
// asked for with "binary_data": true (or all of them, with the request
// parameter "binary_data_output": true) come back the same way.

const headerLengthHeader = "Inference-Header-Content-Length"

// decodeInferRequest reads an OIP request body, JSON or binary, for the
// model of session s (which bounds what it may build). Every length in it
// is checked against the bytes that are there before it is used.
func (g *Gateway) decodeInferRequest(c *fiber.Ctx, s *models.Session, req *models.InferRequest) error {
	body, err := g.requestBody(c)
	if err != nil {
		return err
	}
	if err := g.chargeBody(c, len(body), tensorFactor); err != nil {
		return err
	}
	h := c.Get(headerLengthHeader)
	if h == "" {
		if err := s.DecodeInferRequest(body, req); err != nil {
			return weirerr.Invalidf("request body is not a valid inference request: %w", err)
		}
		for _, in := range req.Inputs {
			if _, ok := in.Parameters["binary_data_size"]; ok {
				return weirerr.Invalidf("input %q has a binary_data_size parameter, but the request has no %s header to say where its binary data starts", in.Name, headerLengthHeader)
			}
		}
		return nil
	}
	n, err := strconv.ParseUint(h, 10, 63)
	if err != nil {
		return weirerr.Invalidf("%s %q is not a byte count", headerLengthHeader, h)
	}
	if n == 0 {
		return decodeRawBinary(s, body, req)
	}
	if n > uint64(len(body)) {
		return weirerr.Invalidf("%s is %d, but the body has only %d bytes", headerLengthHeader, n, len(body))
	}
	if err := s.DecodeInferRequest(body[:n], req); err != nil {
		return weirerr.Invalidf("the request's JSON header (the first %d bytes, per %s) is not a valid inference request: %w", n, headerLengthHeader, err)
	}
	return attachBinaryInputs(req, body[n:])
}

// attachBinaryInputs decodes the binary data after the JSON header into the
// inputs that declare a binary_data_size. An input's values may be a view
// of rest (models.DecodeRaw), so rest must stay as it is until the request
// has run; a request that outlives the handler is Detached first.
func attachBinaryInputs(req *models.InferRequest, rest []byte) error {
	off := 0
	for i := range req.Inputs {
		in := &req.Inputs[i]
		p, ok := in.Parameters["binary_data_size"]
		if !ok {
			continue
		}
		size, ok := paramCount(p)
		if !ok {
			return weirerr.Invalidf("input %q: binary_data_size %v is not a byte count", in.Name, p)
		}
		if len(in.Data) > 0 && string(in.Data) != "null" {
			return weirerr.Invalidf("input %q has both \"data\" and a binary_data_size parameter: give one", in.Name)
		}
		if size > uint64(len(rest)-off) {
			return weirerr.Invalidf("input %q: binary_data_size %d runs past the end of the body (%d bytes of binary data left)", in.Name, size, len(rest)-off)
		}
		chunk := rest[off : off+int(size)]
		off += int(size)
		if !in.Datatype.Valid() {
			return weirerr.Invalidf("input %q: unknown datatype %q", in.Name, in.Datatype)
		}
		count, err := models.ElementCount(in.Shape)
		if err != nil {
			return weirerr.Invalidf("input %q has shape %v: %w", in.Name, in.Shape, err)
		}
		vals, err := models.DecodeRaw(in.Datatype, chunk, count)
		if err != nil {
			return weirerr.Invalidf("input %q (%s, shape %v): %w", in.Name, in.Datatype, in.Shape, err)
		}
		in.Values = vals
	}
	if off != len(rest) {
		return weirerr.Invalidf("%d bytes follow the JSON header, but the inputs' binary_data_size parameters account for %d", len(rest), off)
	}
	return nil
}

// paramCount reads a non-negative integer parameter (JSON numbers decode as
// float64).
func paramCount(p any) (uint64, bool) {
	f, ok := p.(float64)
	if !ok || f < 0 || f != math.Trunc(f) || f > 1<<53 {
		return 0, false
	}
	return uint64(f), true
}

// binaryOutputs says which of resp's outputs the caller wants as binary
// data: the request parameter binary_data_output sets the default, and an
// output's own binary_data parameter overrides it.
func binaryOutputs(req *models.InferRequest, resp *models.InferResponse) ([]bool, error) {
	all := false
	if p, ok := req.Parameters["binary_data_output"]; ok {
		b, ok := p.(bool)
		if !ok {
			return nil, weirerr.Invalidf("parameter binary_data_output is %v, expected true or false", p)
		}
		all = b
	}
	// Requested outputs are distinct (models.CheckOutputs): one lookup
	// each, not a scan of the request per output.
	wanted := make(map[string]*models.RequestedOutput, len(req.Outputs))
	for i := range req.Outputs {
		wanted[req.Outputs[i].Name] = &req.Outputs[i]
	}
	out := make([]bool, len(resp.Outputs))
	some := false
	for i, o := range resp.Outputs {
		out[i] = all
		if want, ok := wanted[o.Name]; ok {
			if p, ok := want.Parameters["binary_data"]; ok {
				b, ok := p.(bool)
				if !ok {
					return nil, weirerr.Invalidf("output %q: parameter binary_data is %v, expected true or false", o.Name, p)
				}
				out[i] = b
			}
		}
		some = some || out[i]
	}
	if !some {
		return nil, nil
	}
	return out, nil
}

// binaryOutput is an output in a binary response's JSON header.
type binaryOutput struct {
	Name       string             `json:"name"`
	Shape      []int64            `json:"shape"`
	Datatype   models.Datatype    `json:"datatype"`
	Parameters map[string]any     `json:"parameters,omitempty"`
	Data       *models.TensorData `json:"data,omitempty"`
}

// writeInferResponse answers in JSON, or with the binary extension when
// the request asked for binary outputs.
func writeInferResponse(c *fiber.Ctx, req *models.InferRequest, resp *models.InferResponse) error {
	bin, err := binaryOutputs(req, resp)
	if err != nil {
		return err
	}
	if bin == nil {
		return writeInferJSON(c, resp)
	}
	header := struct {
		ModelName    string         `json:"model_name"`
		ModelVersion string         `json:"model_version"`
		ID           string         `json:"id,omitempty"`
		Outputs      []binaryOutput `json:"outputs"`
	}{ModelName: resp.ModelName, ModelVersion: resp.ModelVersion, ID: resp.ID, Outputs: make([]binaryOutput, len(resp.Outputs))}
	for i, o := range resp.Outputs {
		header.Outputs[i] = binaryOutput{Name: o.Name, Shape: o.Shape, Datatype: o.Datatype}
		if bin[i] {
			n := models.RawSize(o.Datatype, o.Data.Values)
			header.Outputs[i].Parameters = map[string]any{"binary_data_size": n}
		} else {
			header.Outputs[i].Data = &resp.Outputs[i].Data
		}
	}
	b, err := json.Marshal(header)
	if err != nil {
		return err
	}
	// The outputs' memory goes into the response's pooled body buffer as
	// it is (one copy), when it is already the raw layout.
	raws := make([][]byte, len(resp.Outputs))
	for i, o := range resp.Outputs {
		if !bin[i] {
			continue
		}
		var ok bool
		if raws[i], ok = models.RawBytes(o.Datatype, o.Data.Values); !ok {
			if raws[i], err = models.AppendRaw(nil, o.Datatype, o.Data.Values); err != nil {
				return err
			}
		}
	}
	c.Set(headerLengthHeader, strconv.Itoa(len(b)))
	c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
	r := c.Response()
	r.ResetBody()
	r.AppendBody(b)
	for _, raw := range raws {
		r.AppendBody(raw)
	}
	return nil
}

// decodeRawBinary reads Triton's raw binary request (header length 0, no JSON
// header, the whole body one input's raw data) for the model of session s,
// as Triton does: the model has one input; its datatype and shape come from
// the model, the one dynamic dimension it may have (all of them set to 1
// for BYTES, whose body is one element) from the body's length; every
// output comes back as binary data.
func decodeRawBinary(s *models.Session, body []byte, req *models.InferRequest) error {
	ins := s.Inputs()
	if len(ins) != 1 {
		return weirerr.Invalidf("a raw binary request (%s: 0) needs a model with one input; this model has %d", headerLengthHeader, len(ins))
	}
	in := ins[0]
	shape, err := rawShape(in, len(body))
	if err != nil {
		return weirerr.Invalidf("raw binary request (%s: 0) for input %q (%s, shape %v): %w", headerLengthHeader, in.Name, in.Datatype, in.Shape, err)
	}
	var vals any = []string{string(body)}
	if in.Datatype != models.Bytes {
		count, err := models.ElementCount(shape)
		if err != nil {
			return weirerr.Invalidf("input %q has shape %v: %w", in.Name, shape, err)
		}
		if vals, err = models.DecodeRaw(in.Datatype, body, count); err != nil {
			return weirerr.Invalidf("raw binary request for input %q (%s, shape %v): %w", in.Name, in.Datatype, shape, err)
		}
	}
	req.Inputs = []models.InputTensor{{Name: in.Name, Datatype: in.Datatype, Shape: shape, Values: vals}}
	req.Parameters = map[string]any{"binary_data_output": true}
	return nil
}

// rawShape is the shape of a raw binary input of size bytes: the model's,
// with its one dynamic dimension (-1) deduced from size.
func rawShape(in models.TensorInfo, size int) ([]int64, error) {
	shape := append([]int64(nil), in.Shape...)
	if in.Datatype == models.Bytes {
		for i, d := range shape {
			if d != 1 && d != -1 {
				return nil, fmt.Errorf("a raw BYTES input is one element, so every dimension must be 1 or dynamic")
			}
			shape[i] = 1
		}
		return shape, nil
	}
	dynamic, fixed := -1, int64(1)
	for i, d := range shape {
		if d >= 0 {
			fixed *= d
			continue
		}
		if dynamic >= 0 {
			return nil, fmt.Errorf("more than one dynamic dimension: the body's length cannot give them; send a JSON header")
		}
		dynamic = i
	}
	elem := int64(models.ElementSize(in.Datatype)) * fixed
	switch {
	case dynamic < 0 && int64(size) != elem:
		return nil, fmt.Errorf("the body has %d bytes, the shape needs %d", size, elem)
	case dynamic >= 0 && (elem == 0 || int64(size)%elem != 0):
		return nil, fmt.Errorf("the body's %d bytes are not a whole number of %d-byte rows", size, elem)
	case dynamic >= 0:
		shape[dynamic] = int64(size) / elem
	}
	return shape, nil
}
