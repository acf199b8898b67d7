package jsonx

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxDepth bounds nesting as encoding/json does.
const MaxDepth = 10000

// Scanner is a strict JSON reader over B, at offset I, that refuses what
// encoding/json refuses with encoding/json's error messages. DecodeObject
// builds values with it; models embeds it to decode inference requests
// straight into their types. Each method reads at I and leaves I after
// what it read.
type Scanner struct {
	B []byte
	I int

	useNumber bool // numbers as json.Number (DecodeObjectUseNumber)
}

// EOF reports whether the input is used up.
func (s *Scanner) EOF() bool { return s.I >= len(s.B) }

// WS skips white space.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Syntax is the error for the byte at I (or the end of the input), as
// encoding/json words it; context says what was being read.
func (s *Scanner) Syntax(context string) error {
	if s.EOF() {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid character %s %s (offset %d)", quoteChar(s.B[s.I]), context, s.I)
}

// quoteChar formats c as encoding/json's errors do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// NextKey steps to the next member of the object whose '{' has been
// consumed (first says no member has been read yet) and returns its key
// (as Str does), leaving I at the start of its value; ok is false after
// the closing '}'.
func (s *Scanner) NextKey(first bool) (key []byte, ok bool, err error) {
	s.WS()
	if s.EOF() {
		return nil, false, s.Syntax("")
	}
	switch c := s.B[s.I]; {
	case c == '}' && first:
		s.I++
		return nil, false, nil
	case first:
	case c == ',':
		s.I++
		s.WS()
	case c == '}':
		s.I++
		return nil, false, nil
	default:
		return nil, false, s.Syntax("after object key:value pair")
	}
	if s.EOF() || s.B[s.I] != '"' {
		return nil, false, s.Syntax("looking for beginning of object key string")
	}
	if key, err = s.Str(); err != nil {
		return nil, false, err
	}
	s.WS()
	if s.EOF() || s.B[s.I] != ':' {
		return nil, false, s.Syntax("after object key")
	}
	s.I++
	s.WS()
	if s.EOF() {
		return nil, false, s.Syntax("")
	}
	return key, true, nil
}

// NextElem steps to the next element of the array whose '[' has been
// consumed, leaving I at its start; ok is false after the closing ']'.
func (s *Scanner) NextElem(first bool) (ok bool, err error) {
	s.WS()
	if s.EOF() {
		return false, s.Syntax("")
	}
	switch c := s.B[s.I]; {
	case c == ']' && first:
		s.I++
		return false, nil
	case first:
	case c == ',':
		s.I++
		s.WS()
	case c == ']':
		s.I++
		return false, nil
	default:
		return false, s.Syntax("after array element")
	}
	if s.EOF() {
		return false, s.Syntax("")
	}
	return true, nil
}

// Str reads the string at I and returns its contents: a view of B when it
// has no escapes and is ASCII, else a new, unescaped copy in which invalid
// UTF-8 is U+FFFD, as with encoding/json.
func (s *Scanner) Str() ([]byte, error) {
	start, plain, err := s.scanStr()
	if err != nil {
		return nil, err
	}
	if plain {
		return s.B[start+1 : s.I-1], nil
	}
	var v string
	if err := json.Unmarshal(s.B[start:s.I], &v); err != nil {
		return nil, err
	}
	return []byte(v), nil
}

// StrAsString is Str returning a string.
func (s *Scanner) StrAsString() (string, error) {
	start, plain, err := s.scanStr()
	if err != nil {
		return "", err
	}
	if plain {
		return string(s.B[start+1 : s.I-1]), nil
	}
	var v string
	if err := json.Unmarshal(s.B[start:s.I], &v); err != nil {
		return "", err
	}
	return v, nil
}

// scanStr moves past the string at I, which starts at start; plain says
// it has neither escapes nor non-ASCII bytes (which encoding/json, on the
// slow path, unescapes and repairs).
func (s *Scanner) scanStr() (start int, plain bool, err error) {
	start = s.I
	s.I++
	plain = true
	for {
		if s.EOF() {
			return start, false, errors.New("unexpected end of JSON input")
		}
		c := s.B[s.I]
		switch {
		case c == '"':
			s.I++
			return start, plain, nil
		case c == '\\':
			plain = false
			s.I++
			if s.EOF() {
				return start, false, errors.New("unexpected end of JSON input")
			}
			switch s.B[s.I] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.I++
			case 'u':
				s.I++
				for range 4 {
					if s.EOF() {
						return start, false, errors.New("unexpected end of JSON input")
					}
					if !isHex(s.B[s.I]) {
						return start, false, s.Syntax("in \\u hexadecimal character escape")
					}
					s.I++
				}
			default:
				return start, false, s.Syntax("in string escape code")
			}
		case c < 0x20:
			return start, false, s.Syntax("in string literal")
		case c >= utf8.RuneSelf:
			plain = false
			s.I++
		default:
			s.I++
		}
	}
}

// Literal reads word (true, false or null).
func (s *Scanner) Literal(word string) error {
	for k := 0; k < len(word); k++ {
		if s.EOF() || s.B[s.I] != word[k] {
			return s.Syntax("in literal " + word + " (expecting " + quoteChar(word[k]) + ")")
		}
		s.I++
	}
	return nil
}

// Number reads a number and returns its text.
func (s *Scanner) Number() ([]byte, error) {
	start := s.I
	if s.B[s.I] == '-' {
		s.I++
	}
	if s.EOF() {
		return nil, s.Syntax("")
	}
	switch c := s.B[s.I]; {
	case c == '0':
		s.I++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return nil, s.Syntax("in numeric literal")
	}
	if s.I < len(s.B) && s.B[s.I] == '.' {
		s.I++
		if s.EOF() || !IsDigit(s.B[s.I]) {
			return nil, s.Syntax("after decimal point in numeric literal")
		}
		s.digits()
	}
	if s.I < len(s.B) && (s.B[s.I] == 'e' || s.B[s.I] == 'E') {
		s.I++
		if s.I < len(s.B) && (s.B[s.I] == '+' || s.B[s.I] == '-') {
			s.I++
		}
		if s.EOF() || !IsDigit(s.B[s.I]) {
			return nil, s.Syntax("in exponent of numeric literal")
		}
		s.digits()
	}
	return s.B[start:s.I], nil
}

func (s *Scanner) digits() {
	for s.I < len(s.B) && IsDigit(s.B[s.I]) {
		s.I++
	}
}

// CheckDepth refuses an object or array at I nested depth deep (0 for the
// document): like encoding/json, at most MaxDepth may be open at once, and
// the error is its syntax error.
func (s *Scanner) CheckDepth(depth int) error {
	if depth >= MaxDepth && (s.B[s.I] == '{' || s.B[s.I] == '[') {
		return s.Syntax("exceeded max depth")
	}
	return nil
}

// Skip checks the value at I without building it; depth is its nesting.
func (s *Scanner) Skip(depth int) error {
	if err := s.CheckDepth(depth); err != nil {
		return err
	}
	switch c := s.B[s.I]; {
	case c == '{':
		s.I++
		for first := true; ; first = false {
			_, ok, err := s.NextKey(first)
			if !ok || err != nil {
				return err
			}
			if err := s.Skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '[':
		s.I++
		for first := true; ; first = false {
			ok, err := s.NextElem(first)
			if !ok || err != nil {
				return err
			}
			if err := s.Skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '"':
		_, _, err := s.scanStr()
		return err
	case c == 't':
		return s.Literal("true")
	case c == 'f':
		return s.Literal("false")
	case c == 'n':
		return s.Literal("null")
	case c == '-' || IsDigit(c):
		_, err := s.Number()
		return err
	}
	return s.Syntax("looking for beginning of value")
}

// IsDigit reports whether c is an ASCII digit.
func IsDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
