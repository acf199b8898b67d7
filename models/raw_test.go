package models

import (
	"encoding/binary"
	"reflect"
	"testing"
)

func TestRawRoundTrip(t *testing.T) {
	for _, c := range []struct {
		dt   Datatype
		vals any
	}{
		{Bool, []bool{true, false}}, {Uint8, []uint8{0, 255}}, {Int8, []int8{-128, 127}},
		{Uint16, []uint16{1, 65535}}, {Int16, []int16{-1, 2}}, {FP16, []float32{1.5, -2}},
		{Uint32, []uint32{1, 1 << 31}}, {Int32, []int32{-1, 7}}, {FP32, []float32{0.25, -8}},
		{Uint64, []uint64{1, 1 << 63}}, {Int64, []int64{-1, 1 << 62}}, {FP64, []float64{1e300, -0.5}},
		{Bytes, []string{"", "héllo"}},
	} {
		b, err := AppendRaw(nil, c.dt, c.vals)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != RawSize(c.dt, c.vals) {
			t.Errorf("%s: %d bytes, RawSize says %d", c.dt, len(b), RawSize(c.dt, c.vals))
		}
		got, err := DecodeRaw(c.dt, b, 2)
		if err != nil || !reflect.DeepEqual(got, c.vals) {
			t.Errorf("%s: %v %v, want %v", c.dt, got, err, c.vals)
		}
		if _, err := DecodeRaw(c.dt, b, 3); err == nil {
			t.Errorf("%s: 3 elements decoded from the bytes of 2", c.dt)
		}
	}
}

// FuzzDecodeRaw checks that no buffer and count make DecodeRaw read past
// its input or allocate for elements that are not there.
func FuzzDecodeRaw(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 'a'}, 1, uint8(12))
	f.Add(binary.LittleEndian.AppendUint32(nil, 1<<31), 1, uint8(12))
	f.Add([]byte{0, 0, 128, 63}, 1, uint8(10))
	dts := []Datatype{Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, FP16, FP32, FP64, Bytes}
	f.Fuzz(func(t *testing.T, b []byte, n int, d uint8) {
		dt := dts[int(d)%len(dts)]
		vals, err := DecodeRaw(dt, b, n)
		if err != nil {
			return
		}
		if got := (TensorData{Values: vals}).Len(); got != n {
			t.Fatalf("%s: %d elements, asked for %d", dt, got, n)
		}
		again, err := AppendRaw(nil, dt, vals)
		if err != nil {
			t.Fatal(err)
		}
		if dt != Bool && dt != FP16 && dt != FP32 && dt != FP64 && string(again) != string(b) {
			t.Fatalf("%s: re-encoded %x, read %x", dt, again, b)
		}
	})
}
