package features

import (
	"fmt"

	"github.com/weirhq/weir/internal/jsonx"
)

// splitArray returns the elements of the JSON array b, undecoded. An object
// or array element is matched bracket to bracket but not checked: decodeEvent
// refuses a broken event on its own, and the others of the array still
// count.
func splitArray(b []byte) ([][]byte, error) {
	s := jsonx.Scanner{B: b}
	s.WS()
	if s.EOF() || b[s.I] != '[' {
		return nil, s.Syntax("looking for the beginning of an array")
	}
	s.I++
	var out [][]byte
	for first := true; ; first = false {
		ok, err := s.NextElem(first)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		start := s.I
		if c := b[s.I]; c == '{' || c == '[' {
			if s.I, err = skipComposite(b, s.I); err != nil {
				return nil, err
			}
		} else if err := s.Skip(0); err != nil {
			return nil, err
		}
		out = append(out, b[start:s.I])
	}
	s.WS()
	if !s.EOF() {
		return nil, s.Syntax("after top-level value")
	}
	return out, nil
}

// skipComposite returns the end of the object or array at b[i], matching
// brackets outside strings only.
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
	return 0, fmt.Errorf("unterminated object or array at offset %d", i)
}
