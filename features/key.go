package features

import (
	"strings"

	"github.com/weirhq/weir/internal/weirerr"
)

// MaxEntityLen is the longest entity key accepted, in bytes, before encoding.
const MaxEntityLen = 256

// validateEntity checks an entity key as the user gave it.
func validateEntity(entity string) error {
	if entity == "" {
		return weirerr.Invalidf("entity key is empty: expected 1 to %d bytes", MaxEntityLen)
	}
	if len(entity) > MaxEntityLen {
		return weirerr.Invalidf("entity key is %d bytes long: expected at most %d", len(entity), MaxEntityLen)
	}
	return nil
}

// kvSafe reports whether b may appear unescaped in an encoded key. NATS KV
// allows [-/_=.a-zA-Z0-9]; '=' is our escape character and '.' separates
// subject tokens (a leading, trailing or doubled dot is invalid), so both are
// escaped too.
func kvSafe(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '-' || b == '_' || b == '/'
}

// encodeKey turns any entity key into a valid KV key: every byte outside
// [-_/a-zA-Z0-9] becomes "=HH" (upper-case hex). The mapping is one to one,
// so decodeKey reverses it. A key that needs no escaping is returned as is,
// without allocating.
func encodeKey(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !kvSafe(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if kvSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// decodeKey reverses encodeKey. ok is false when s is not an encoded key.
func decodeKey(s string) (string, bool) {
	if strings.IndexByte(s, '=') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
