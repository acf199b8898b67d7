package clip

import (
	"strconv"
	"unicode/utf8"
)

// String cuts s to at most n bytes, at a UTF-8 boundary, and says how much
// was cut: "<first bytes>... (123 more bytes)".
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "... (" + strconv.Itoa(len(s)-cut) + " more bytes)"
}
