// Package reqbody parses request bodies that come from the network before
// anything else sees them: the predict body (a JSON object, or an array of
// objects bounded by --max-rows). It is small and imports nothing from weir
// but internal/weirerr, so its fuzz target builds and runs fast.
package reqbody

import (
	"bytes"
	"encoding/json"

	"github.com/weirhq/weir/internal/weirerr"
)

// DecodeRows reads a JSON object (one row) or an array of at most maxRows
// objects. An array is decoded one element at a time, so a body of a
// million empty objects is refused after maxRows+1 of them, not after a
// million maps were built.
func DecodeRows(body []byte, maxRows int) ([]map[string]any, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, weirerr.Invalidf("the request body is empty: send a JSON object (or an array of objects)")
	}
	if b[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil {
			return nil, weirerr.Invalidf("request body is not a JSON array of objects: %w", err)
		}
		var rows []map[string]any
		for dec.More() {
			if len(rows) == maxRows {
				return nil, weirerr.TooLargef("request body has more than %d rows, the gateway's limit (--max-rows)", maxRows)
			}
			var r map[string]any
			if err := dec.Decode(&r); err != nil {
				return nil, weirerr.Invalidf("request body is not a JSON array of objects: element %d: %w", len(rows), err)
			}
			if r == nil {
				return nil, weirerr.Invalidf("element %d of the request array is not an object", len(rows))
			}
			rows = append(rows, r)
		}
		if _, err := dec.Token(); err != nil {
			return nil, weirerr.Invalidf("request body is not a JSON array of objects: %w", err)
		}
		if dec.More() || dec.InputOffset() != int64(len(b)) {
			return nil, weirerr.Invalidf("request body has data after its JSON array")
		}
		if len(rows) == 0 {
			return nil, weirerr.Invalidf("request body is an empty array")
		}
		return rows, nil
	}
	var row map[string]any
	if err := json.Unmarshal(b, &row); err != nil || row == nil {
		if err == nil {
			return nil, weirerr.Invalidf("request body must be a JSON object, got null")
		}
		return nil, weirerr.Invalidf("request body is not a JSON object: %w", err)
	}
	return []map[string]any{row}, nil
}
