package monitor

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
)

// idPrefix is 64 random bits drawn once per process, so IDs from different
// gateway processes do not collide; idSeq makes them unique within one.
var (
	idPrefix [16]byte
	idSeq    atomic.Uint64
)

func init() {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("monitor: no randomness for event IDs: " + err.Error())
	}
	hex.Encode(idPrefix[:], b[:])
	// Start the counter at a random point too: a restarted process with the
	// same prefix is then still unlikely to repeat a recent ID.
	idSeq.Store(binary.LittleEndian.Uint64(b[:]) >> 40)
}

// NewID returns a new event ID: 16 hex digits of per-process prefix and 16 of
// a counter, 32 characters in all. It is cheap (one atomic add, one small
// allocation) and safe for concurrent use.
func NewID() string {
	n := idSeq.Add(1)
	var buf [32]byte
	copy(buf[:16], idPrefix[:])
	const digits = "0123456789abcdef"
	for i := 31; i >= 16; i-- {
		buf[i] = digits[n&0xf]
		n >>= 4
	}
	return string(buf[:])
}
