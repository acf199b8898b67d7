package onnx

import "math"

// Float16ToFloat32 widens an IEEE 754 half-precision value (its bits) to
// float32. Every half value, subnormals included, is exact in float32; NaN
// payloads are kept.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0:
		// Zero or subnormal: mant * 2^-24, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case exp == 0x1f:
		// Inf (mant == 0) or NaN (payload moved to the top of the mantissa).
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
	}
}

// Float32ToFloat16 narrows f to IEEE 754 half precision (its bits), rounding
// to nearest, ties to even. Values beyond the half range become ±Inf, values
// below half the smallest subnormal become ±0, NaN stays NaN.
func Float32ToFloat16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff

	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		// Keep the top payload bits and force the quiet bit so the result
		// cannot collapse to Inf.
		return sign | 0x7c00 | 0x200 | uint16(mant>>13)
	}
	e := exp - 127 // unbiased exponent
	if e > 15 {
		return sign | 0x7c00
	}
	if e >= -14 {
		// Normal half: drop 13 mantissa bits with round-half-even. A carry
		// out of the mantissa correctly bumps the exponent (up to Inf).
		r := roundShift(mant, 13)
		return sign | (uint16(e+15)<<10 + uint16(r))
	}
	if exp == 0 {
		// float32 subnormals are far below half's smallest subnormal.
		return sign
	}
	// Half subnormal: value in units of 2^-24 is m * 2^(e+1).
	m := mant | 0x800000
	shift := uint(-e - 1) // >= 14
	if shift > 24 {
		return sign // < 2^-25: below half the smallest subnormal
	}
	// A carry into bit 10 yields the smallest normal, which is right.
	return sign | uint16(roundShift(m, shift))
}

// roundShift returns m >> s rounded to nearest, ties to even (s >= 1).
func roundShift(m uint32, s uint) uint32 {
	r := m >> s
	rem := m & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	return r
}

// BFloat16ToFloat32 widens a bfloat16 value (its bits) to float32.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
