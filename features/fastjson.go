package features

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// A small decoder for the shape every raw event has: one JSON object whose
// values are mostly scalars. It yields what encoding/json with UseNumber
// yields (string, json.Number, bool, nil; nested objects and arrays are
// handed to encoding/json) at a fraction of the cost, which matters because
// decoding is most of the per-event CPU of ingestion. TestParseObject checks
// it against encoding/json.

var errSyntax = errors.New("invalid JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// parseObject decodes b, which must hold exactly one JSON object.
func parseObject(b []byte) (map[string]any, error) {
	i := skipSpace(b, 0)
	obj, i, err := parseObjectAt(b, i)
	if err != nil {
		return nil, err
	}
	if skipSpace(b, i) != len(b) {
		return nil, fmt.Errorf("%w: data after the object", errSyntax)
	}
	return obj, nil
}

func parseObjectAt(b []byte, i int) (map[string]any, int, error) {
	if i >= len(b) || b[i] != '{' {
		return nil, i, fmt.Errorf("%w: expected an object", errSyntax)
	}
	obj := make(map[string]any, 8)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return obj, i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, i, fmt.Errorf("%w: expected a field name at offset %d", errSyntax, i)
		}
		key, j, err := parseString(b, i)
		if err != nil {
			return nil, j, err
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, i, fmt.Errorf("%w: expected ':' at offset %d", errSyntax, i)
		}
		i = skipSpace(b, i+1)
		v, j, err := parseValue(b, i)
		if err != nil {
			return nil, j, err
		}
		obj[key] = v
		i = skipSpace(b, j)
		if i >= len(b) {
			return nil, i, fmt.Errorf("%w: unterminated object", errSyntax)
		}
		if b[i] == '}' {
			return obj, i + 1, nil
		}
		if b[i] != ',' {
			return nil, i, fmt.Errorf("%w: expected ',' or '}' at offset %d", errSyntax, i)
		}
		i = skipSpace(b, i+1)
	}
}

func parseValue(b []byte, i int) (any, int, error) {
	if i >= len(b) {
		return nil, i, fmt.Errorf("%w: missing value", errSyntax)
	}
	switch c := b[i]; {
	case c == '"':
		return parseString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		j := scanNumber(b, i)
		if j < 0 {
			return nil, i, fmt.Errorf("%w: bad number at offset %d", errSyntax, i)
		}
		return json.Number(b[i:j]), j, nil
	case c == 't' && bytes.HasPrefix(b[i:], []byte("true")):
		return true, i + 4, nil
	case c == 'f' && bytes.HasPrefix(b[i:], []byte("false")):
		return false, i + 5, nil
	case c == 'n' && bytes.HasPrefix(b[i:], []byte("null")):
		return nil, i + 4, nil
	case c == '{' || c == '[':
		j, err := skipComposite(b, i)
		if err != nil {
			return nil, i, err
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(b[i:j]))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, i, err
		}
		return v, j, nil
	}
	return nil, i, fmt.Errorf("%w: unexpected %q at offset %d", errSyntax, b[i], i)
}

// parseString decodes the string starting at b[i] == '"'.
func parseString(b []byte, i int) (string, int, error) {
	j := i + 1
	simple := true
	for ; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			break
		}
		if c == '\\' {
			simple = false
			j++
			continue
		}
		if c < 0x20 {
			return "", j, fmt.Errorf("%w: control character in string at offset %d", errSyntax, j)
		}
		if c >= utf8.RuneSelf {
			simple = false
		}
	}
	if j >= len(b) {
		return "", j, fmt.Errorf("%w: unterminated string", errSyntax)
	}
	if simple {
		return string(b[i+1 : j]), j + 1, nil
	}
	var s string
	if err := json.Unmarshal(b[i:j+1], &s); err != nil {
		return "", j, err
	}
	return s, j + 1, nil
}

// scanNumber returns the end of the JSON number at b[i], or -1.
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return -1
		}
	}
	return i
}

// skipComposite returns the end of the object or array at b[i].
func skipComposite(b []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			j++
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: unterminated object or array", errSyntax)
}

// splitArray returns the elements of the JSON array b, undecoded.
func splitArray(b []byte) ([][]byte, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, fmt.Errorf("%w: expected an array", errSyntax)
	}
	var out [][]byte
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return out, skipEnd(b, i+1)
	}
	for {
		if i >= len(b) {
			return nil, fmt.Errorf("%w: unterminated array", errSyntax)
		}
		var j int
		var err error
		switch c := b[i]; {
		case c == '{' || c == '[':
			j, err = skipComposite(b, i)
		default:
			_, j, err = parseValue(b, i)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b[i:j])
		i = skipSpace(b, j)
		if i < len(b) && b[i] == ']' {
			return out, skipEnd(b, i+1)
		}
		if i >= len(b) || b[i] != ',' {
			return nil, fmt.Errorf("%w: expected ',' or ']' at offset %d", errSyntax, i)
		}
		i = skipSpace(b, i+1)
	}
}

func skipEnd(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return fmt.Errorf("%w: data after the array", errSyntax)
	}
	return nil
}
