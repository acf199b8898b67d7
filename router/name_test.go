package router

import (
	"regexp"
	"strings"
	"testing"
)

// contractName is docs/api.md's rule for names, as written there.
var contractName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"fraud", true},
		{"fraud-v2.1_b", true},
		{"9", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"-fraud", false},
		{".hidden", false},
		{"_x", false},
		{"a/b", false},
		{"a b", false},
		{"a\n", false},
		{"é", false},
		{"a\x00", false},
	} {
		if got := ValidName(tc.name); got != tc.want {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzValidName checks the hand-written rule against the contract's regexp.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"fraud", "a.b-c_d", "-a", "", strings.Repeat("z", 64), strings.Repeat("z", 65), "ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidName(s), contractName.MatchString(s); got != want {
			t.Fatalf("ValidName(%q) = %v, the contract's regexp says %v", s, got, want)
		}
	})
}
