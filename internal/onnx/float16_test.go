package onnx

import (
	"math"
	"testing"
)

func TestFloat16KnownBits(t *testing.T) {
	cases := []struct {
		bits uint16
		f    float32
	}{
		{0x0000, 0},
		{0x3C00, 1},
		{0xC000, -2},
		{0x3555, 0.333251953125},
		{0x7BFF, 65504},                  // largest normal
		{0x0400, 6.103515625e-05},        // smallest normal, 2^-14
		{0x0001, 5.9604644775390625e-08}, // smallest subnormal, 2^-24
		{0x03FF, 6.097555160522461e-05},  // largest subnormal
		{0x7C00, float32(math.Inf(1))},
		{0xFC00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := Float16ToFloat32(c.bits); got != c.f {
			t.Errorf("Float16ToFloat32(%#04x) = %g, want %g", c.bits, got, c.f)
		}
		if got := Float32ToFloat16(c.f); got != c.bits {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
	// Negative zero keeps its sign both ways.
	if got := Float32ToFloat16(float32(math.Copysign(0, -1))); got != 0x8000 {
		t.Errorf("Float32ToFloat16(-0) = %#04x, want 0x8000", got)
	}
	if got := Float16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("Float16ToFloat32(0x8000) = %g, want -0", got)
	}
	// NaN stays NaN both ways, whatever the payload.
	for _, h := range []uint16{0x7E00, 0x7C01, 0xFE00, 0x7FFF} {
		if f := Float16ToFloat32(h); !math.IsNaN(float64(f)) {
			t.Errorf("Float16ToFloat32(%#04x) = %g, want NaN", h, f)
		}
	}
	for _, f := range []float32{float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00000)} {
		h := Float32ToFloat16(f)
		if h&0x7C00 != 0x7C00 || h&0x03FF == 0 {
			t.Errorf("Float32ToFloat16(NaN %#08x) = %#04x, want a NaN", math.Float32bits(f), h)
		}
	}
}

func TestFloat16Rounding(t *testing.T) {
	cases := []struct {
		f    float32
		bits uint16
	}{
		{65519, 0x7BFF},                  // below the midpoint to Inf
		{65520, 0x7C00},                  // midpoint, odd 0x7BFF rounds up: Inf
		{1e6, 0x7C00},                    // overflow
		{-1e6, 0xFC00},                   //
		{2.9802322387695312e-08, 0x0000}, // 2^-25: tie between 0 and 0x0001, even is 0
		{2.98023259e-08, 0x0001},         // just above 2^-25
		{8.940696716308594e-08, 0x0002},  // 1.5 * 2^-24: tie, rounds to even 2
		{1e-10, 0x0000},                  // underflow
		{math.Float32frombits(1), 0},     // float32 subnormal
		{1.00048828125, 0x3C00},          // 1 + 2^-11: tie, even is 1.0
		{1.00146484375, 0x3C02},          // 1 + 3*2^-11: tie, even is 0x3C02
		{6.1005353927612305e-05, 0x0400}, // tie between 0x03FF and 0x0400: even, the smallest normal
	}
	for _, c := range cases {
		if got := Float32ToFloat16(c.f); got != c.bits {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
}

// TestFloat16Exhaustive checks every half value: widening then narrowing is
// the identity, and the float32 midpoint between two neighbours rounds to
// the even one (midpoints are exact in float32).
func TestFloat16Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := Float16ToFloat32(h)
		if math.IsNaN(float64(f)) {
			if h&0x7C00 != 0x7C00 || h&0x3FF == 0 {
				t.Fatalf("%#04x widened to NaN", h)
			}
			continue
		}
		if back := Float32ToFloat16(f); back != h {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
		// Neighbour above (same sign, magnitude +1 ulp) while finite.
		if h&0x7FFF >= 0x7BFF {
			continue
		}
		up := Float16ToFloat32(h + 1)
		mid := float32((float64(f) + float64(up)) / 2)
		want := h
		if h&1 == 1 {
			want = h + 1
		}
		if got := Float32ToFloat16(mid); got != want {
			t.Fatalf("midpoint of %#04x and %#04x (%g) -> %#04x, want %#04x", h, h+1, mid, got, want)
		}
	}
}

func BenchmarkFloat32ToFloat16(b *testing.B) {
	b.ReportAllocs()
	var sink uint16
	for i := 0; b.Loop(); i++ {
		sink ^= Float32ToFloat16(float32(i) * 0.001)
	}
	_ = sink
}
