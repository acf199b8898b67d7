package fnv1a

// Offset is FNV-1a's 64-bit offset basis: the hash of nothing, to start
// from.
const Offset = 14695981039346656037

const prime = 1099511628211

// String continues the hash h over the bytes of s.
func String(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	return h
}

// Byte continues the hash h over one byte.
func Byte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * prime }

// Mix is MurmurHash3's 64-bit finaliser (the router's sticky buckets).
func Mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// MixSplit is splitmix64's finaliser (the feature store's persisted
// sketches).
func MixSplit(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
