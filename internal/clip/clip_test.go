package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 5, "short"},
		{"abcdef", 3, "abc... (3 more bytes)"},
		{"aé", 2, "a... (2 more bytes)"}, // é is two bytes: never cut inside it
		{"ééé", 3, "é... (4 more bytes)"},
		{"€x", 1, "... (4 more bytes)"},
		{"abc", 0, "... (3 more bytes)"},
	} {
		got := String(c.s, c.n)
		if got != c.want {
			t.Errorf("String(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("String(%q, %d) = %q: not UTF-8", c.s, c.n, got)
		}
	}
	long := strings.Repeat("ü", 1000)
	for n := range 40 {
		got := String(long, n)
		if kept, _, _ := strings.Cut(got, "... ("); !utf8.ValidString(got) || len(kept) > n || len(kept) < n-1 {
			t.Errorf("String(ü x 1000, %d) = %q", n, got)
		}
	}
}
