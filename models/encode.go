package models

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// AppendInferResponse appends r as JSON to b, byte for byte what
// json.Marshal writes, without reflection: numbers are formatted straight
// from the typed output buffers (see TensorData for NaN and infinities).
func AppendInferResponse(b []byte, r *InferResponse) ([]byte, error) {
	b = append(b, `{"model_name":`...)
	b = appendString(b, r.ModelName)
	b = append(b, `,"model_version":`...)
	b = appendString(b, r.ModelVersion)
	if r.ID != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, r.ID)
	}
	b = append(b, `,"outputs":`...)
	if r.Outputs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Outputs {
			o := &r.Outputs[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, o.Name)
			b = append(b, `,"shape":`...)
			if o.Shape == nil {
				b = append(b, "null"...)
			} else {
				b = append(b, '[')
				for k, d := range o.Shape {
					b = strconv.AppendInt(appendSep(b, k), d, 10)
				}
				b = append(b, ']')
			}
			b = append(b, `,"datatype":`...)
			b = appendString(b, string(o.Datatype))
			b = append(b, `,"data":`...)
			var err error
			if b, err = o.Data.AppendJSON(b); err != nil {
				return nil, err
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string, escaped as json.Marshal
// escapes it (HTML-safe).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // rare: let encoding/json escape it
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
