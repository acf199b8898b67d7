package features

import (
	"regexp"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/weirerr"
)

var kvKeyRE = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func TestEncodeKey(t *testing.T) {
	for _, in := range []string{"acct-42", "user.42", "a b/c", "é€", "=3D", "..", "x=", "_", strings.Repeat("z", MaxEntityLen), "a*b>c"} {
		enc := encodeKey(in)
		if !kvKeyRE.MatchString(enc) || strings.Contains(enc, ".") {
			t.Errorf("encodeKey(%q) = %q: not a safe KV key", in, enc)
		}
		dec, ok := decodeKey(enc)
		if !ok || dec != in {
			t.Errorf("decodeKey(encodeKey(%q)) = %q, %v", in, dec, ok)
		}
	}
	if got := encodeKey("acct-42"); got != "acct-42" {
		t.Errorf("safe key changed: %q", got)
	}
	if encodeKey("a.b") == encodeKey("a=2Eb") {
		t.Error("encoding is not one to one")
	}
	if _, ok := decodeKey("a=4"); ok {
		t.Error("truncated escape decoded")
	}
}

func TestValidateEntity(t *testing.T) {
	for _, bad := range []string{"", strings.Repeat("x", MaxEntityLen+1)} {
		if err := validateEntity(bad); weirerr.KindOf(err) != weirerr.Invalid {
			t.Errorf("validateEntity(%d bytes) = %v, want Invalid", len(bad), err)
		}
	}
	if err := validateEntity("ok"); err != nil {
		t.Error(err)
	}
}
