package fnv1a

import (
	"hash/fnv"
	"testing"
)

func TestStringIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", "user-1", "é", "a longer key with spaces"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := String(Offset, s), h.Sum64(); got != want {
			t.Errorf("String(Offset, %q) = %d, hash/fnv says %d", s, got, want)
		}
		if got, want := String(Byte(Offset, 's'), s), String(Offset, "s"+s); got != want {
			t.Errorf("Byte then String of %q = %d, want %d", s, got, want)
		}
	}
}

// The values sticky buckets and stored sketches were computed with before
// this package existed (router/choose.go's mix64 of fnvString, and
// features/agg.go's hashValue): they must never change.
func TestFinalisersArePinned(t *testing.T) {
	for _, c := range []struct {
		s                string
		sticky, distinct uint64
	}{
		{"", 4235457497581862285, 13686876020940694624},
		{"a", 9944796006165647742, 2988333966143959496},
		{"user-1", 13000312152147993813, 17198703307860303402},
		{"é", 1233543673132660788, 15181904510310756772},
	} {
		if got := Mix(String(Offset^0xff, c.s)); got != c.sticky {
			t.Errorf("Mix of %q = %d, want %d", c.s, got, c.sticky)
		}
		if got := MixSplit(String(Byte(Offset, 's'), c.s)); got != c.distinct {
			t.Errorf("MixSplit of %q = %d, want %d", c.s, got, c.distinct)
		}
	}
}
