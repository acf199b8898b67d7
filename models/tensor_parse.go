// Reading TensorData: its raw JSON array, kept until the input's datatype
// is known, parsed into a typed slice bounded by the bytes received.

package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// UnmarshalJSON reads a flat or nested JSON array whose element type is
// decided by the caller later (see parseData); it keeps the raw bytes.
func (d *TensorData) UnmarshalJSON(b []byte) error {
	d.Values = json.RawMessage(append([]byte(nil), b...))
	return nil
}

// parseFloatTok parses a JSON number, or the strings NaN/Infinity/-Infinity.
func parseFloatTok(tok []byte, bits int) (float64, error) {
	if len(tok) > 0 && tok[0] == '"' {
		switch string(tok) {
		case `"NaN"`, `"nan"`:
			return math.NaN(), nil
		case `"Infinity"`, `"inf"`, `"+Infinity"`:
			return math.Inf(1), nil
		case `"-Infinity"`, `"-inf"`:
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	f, err := strconv.ParseFloat(string(tok), bits)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is out of range for FP%d", tok, bits)
	}
	if err != nil {
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	return f, nil
}

func parseIntTok(tok []byte, bits int) (int64, error) {
	v, err := strconv.ParseInt(string(tok), 10, bits)
	if err == nil {
		return v, nil
	}
	// Accept integral floats such as 3.0 or 1e3 that some clients send.
	f, ferr := strconv.ParseFloat(string(tok), 64)
	if ferr == nil && f == math.Trunc(f) && f >= -math.Exp2(float64(bits-1)) && f < math.Exp2(float64(bits-1)) {
		return int64(f), nil
	}
	return 0, fmt.Errorf("%s is not an integer that fits in %d bits", tok, bits)
}

func parseUintTok(tok []byte, bits int) (uint64, error) {
	v, err := strconv.ParseUint(string(tok), 10, bits)
	if err == nil {
		return v, nil
	}
	f, ferr := strconv.ParseFloat(string(tok), 64)
	if ferr == nil && f == math.Trunc(f) && f >= 0 && f < math.Exp2(float64(bits)) {
		return uint64(f), nil
	}
	return 0, fmt.Errorf("%s is not an unsigned integer that fits in %d bits", tok, bits)
}

// parseData reads raw JSON data of datatype dt (flat or nested, row major)
// into a typed slice of capacity n, the number of scalars the data holds
// (counted, never a claimed shape; it is capped anyway by what raw can
// hold, every element taking at least two bytes with its separator).
// Numeric and boolean slices come from a pool: buf is what Release gives
// back.
func parseData(raw []byte, dt Datatype, n int) (vals any, buf any, err error) {
	n = max(0, min(n, len(raw)/2+1))
	switch dt {
	case FP32, FP16: // FP16 is converted to half precision when the tensor is built
		return parsePooled(raw, &poolF32, n, convF32)
	case FP64:
		return parsePooled(raw, &poolF64, n, convF64)
	case Int8:
		return parsePooled(raw, &poolI8, n, convI8)
	case Int16:
		return parsePooled(raw, &poolI16, n, convI16)
	case Int32:
		return parsePooled(raw, &poolI32, n, convI32)
	case Int64:
		return parsePooled(raw, &poolI64, n, convI64)
	case Uint8:
		return parsePooled(raw, &poolU8, n, convU8)
	case Uint16:
		return parsePooled(raw, &poolU16, n, convU16)
	case Uint32:
		return parsePooled(raw, &poolU32, n, convU32)
	case Uint64:
		return parsePooled(raw, &poolU64, n, convU64)
	case Bool:
		return parsePooled(raw, &poolBool, n, convBool)
	case Bytes:
		out, err := parseElements(raw, make([]string, 0, n), convString)
		return out, nil, err
	}
	return nil, nil, fmt.Errorf("unsupported datatype %s", dt)
}

// countScalars checks raw as JSON data and counts its scalars.
func countScalars(raw []byte) (int, error) {
	d := newDecoder(raw)
	d.WS()
	if d.EOF() {
		return 0, nil
	}
	n, err := d.scalars(1)
	if err == nil {
		d.WS()
		if !d.EOF() {
			err = d.Syntax("after data")
		}
	}
	return n, err
}

// parseElements appends each scalar of raw (checked JSON: a scalar or
// nested arrays of them) converted by conv to out.
func parseElements[T any](raw []byte, out []T, conv func([]byte) (T, error)) ([]T, error) {
	i, n, idx := 0, len(raw), 0
	for i < n {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r', '[', ']', ',':
			i++
			continue
		case '{':
			return out, fmt.Errorf("found an object where a value was expected")
		}
		j := i
		if raw[i] == '"' {
			j++
			for j < n && raw[j] != '"' {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			if j >= n {
				return out, fmt.Errorf("unterminated string")
			}
			j++
		} else {
			for j < n && !isDelim(raw[j]) {
				j++
			}
		}
		v, err := conv(raw[i:j])
		if err != nil {
			return out, fmt.Errorf("element %d: %w", idx, err)
		}
		out = append(out, v)
		idx++
		i = j
	}
	return out, nil
}

func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '[', ']', ',', '"', '{', '}':
		return true
	}
	return false
}

func convF32(tok []byte) (float32, error) {
	f, err := parseFloatTok(tok, 32)
	return float32(f), err
}

func convF64(tok []byte) (float64, error) { return parseFloatTok(tok, 64) }

func convI8(tok []byte) (int8, error) {
	v, err := parseIntTok(tok, 8)
	return int8(v), err
}

func convI16(tok []byte) (int16, error) {
	v, err := parseIntTok(tok, 16)
	return int16(v), err
}

func convI32(tok []byte) (int32, error) {
	v, err := parseIntTok(tok, 32)
	return int32(v), err
}

func convI64(tok []byte) (int64, error) { return parseIntTok(tok, 64) }

func convU8(tok []byte) (uint8, error) {
	v, err := parseUintTok(tok, 8)
	return uint8(v), err
}

func convU16(tok []byte) (uint16, error) {
	v, err := parseUintTok(tok, 16)
	return uint16(v), err
}

func convU32(tok []byte) (uint32, error) {
	v, err := parseUintTok(tok, 32)
	return uint32(v), err
}

func convU64(tok []byte) (uint64, error) { return parseUintTok(tok, 64) }

func convBool(tok []byte) (bool, error) {
	switch string(tok) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s is not a boolean", tok)
}

func convString(tok []byte) (string, error) {
	if len(tok) == 0 || tok[0] != '"' {
		return "", fmt.Errorf("%s is not a string", tok)
	}
	plain := true
	for _, c := range tok[1 : len(tok)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(tok[1 : len(tok)-1]), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", err
	}
	return s, nil
}
