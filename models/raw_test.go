package models

import (
	"encoding/binary"
	"reflect"
	"testing"
	"unsafe"
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

// TestDecodeRawAlignment decodes every fixed-size datatype from buffers at
// each offset of an 8-aligned allocation: the values are right whatever
// the alignment, and they share the buffer's memory (no copy) exactly when
// its address suits the element type on a little-endian machine.
func TestDecodeRawAlignment(t *testing.T) {
	for _, c := range []struct {
		dt   Datatype
		vals any
	}{
		{Bool, []bool{true, false, true}}, {Uint8, []uint8{0, 255, 7}}, {Int8, []int8{-128, 127, 0}},
		{Uint16, []uint16{1, 65535, 2}}, {Int16, []int16{-1, 2, -3}},
		{Uint32, []uint32{1, 1 << 31, 3}}, {Int32, []int32{-1, 7, -9}}, {FP32, []float32{0.25, -8, 1e-3}},
		{Uint64, []uint64{1, 1 << 63, 5}}, {Int64, []int64{-1, 1 << 62, 6}}, {FP64, []float64{1e300, -0.5, 3}},
	} {
		raw, err := AppendRaw(nil, c.dt, c.vals)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]uint64, 1+len(raw)/8+1) // 8-aligned
		mem := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 8*len(buf))
		for off := 0; off < 8; off++ {
			b := mem[off : off+len(raw)]
			copy(b, raw)
			got, err := DecodeRaw(c.dt, b, 3)
			if err != nil || !reflect.DeepEqual(got, c.vals) {
				t.Fatalf("%s at offset %d: %v %v, want %v", c.dt, off, got, err, c.vals)
			}
			view, _ := fixedBytes(got)
			shared := &view[0] == &b[0]
			if want := littleEndian && off%ElementSize(c.dt) == 0; shared != want {
				t.Errorf("%s at offset %d: shares the buffer %v, want %v", c.dt, off, shared, want)
			}
		}
	}
}

// TestRawBytesSharesOutput checks that RawBytes gives a fixed-size
// output's own memory in the raw layout, and refuses FP16 and BYTES.
func TestRawBytesSharesOutput(t *testing.T) {
	v := []float32{1, -2.5}
	b, ok := RawBytes(FP32, v)
	want, _ := AppendRaw(nil, FP32, v)
	if littleEndian && (!ok || !reflect.DeepEqual(b, want) || unsafe.Pointer(&b[0]) != unsafe.Pointer(&v[0])) {
		t.Errorf("RawBytes(FP32) = %v %v, want %v in the slice's memory", b, ok, want)
	}
	if _, ok := RawBytes(FP16, v); ok {
		t.Error("RawBytes(FP16) gave []float32's memory, which is not FP16's layout")
	}
	if _, ok := RawBytes(Bytes, []string{"a"}); ok {
		t.Error("RawBytes(BYTES) gave a view")
	}
}

// BenchmarkDecodeRawImage decodes a 1x3x224x224 FP32 tensor, aligned (a
// view) and one byte off (one copy).
func BenchmarkDecodeRawImage(b *testing.B) {
	n := 3 * 224 * 224
	buf := make([]byte, 4*n+1)
	for _, off := range []int{0, 1} {
		b.Run([]string{"Aligned", "Unaligned"}[off], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(4 * n))
			for i := 0; i < b.N; i++ {
				if _, err := DecodeRaw(FP32, buf[off:off+4*n], n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
